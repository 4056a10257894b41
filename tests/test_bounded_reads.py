"""Bounded reads and dataset contracts (issue 30), in process: the pure checks behind the catalogue's cases.

* every TOML file ganlab reads from a user goes through ``ganlab.config.read_toml``: a regular file of at
  most 1 MiB, nested no deeper than Python's parser can descend, or one ConfigError line;
* binary dataset files (MNIST's IDX, CIFAR-10's batches) are judged by type, header and size before
  torchvision reads them (``ganlab_plugins.datasets.binary``);
* whatever a dataset returns meets the TensorData contract (counts, integer labels in [0, num_classes),
  token ids in the vocabulary), checked by the engine for built-in and third-party datasets alike.

The CLI end of each (exit 2, one line, no run) is in tests/test_bad_input.py.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from test_datasets import dataset, load, registry, write_cifar, write_mnist  # noqa: F401  (registry: a fixture)

from ganlab.config import MAX_TOML_BYTES, read_toml
from ganlab.config.sweep import load_sweep, parse_grid_override
from ganlab.contracts import check_dataset_data, dataset_data_problem
from ganlab.data import DataRequest, StreamingData, TensorData, data_problem, load_cached, save_cached
from ganlab.errors import ComponentError, ConfigError, GanlabError
from ganlab.testing import TinyDatasets, make_plugin_manager
from ganlab_plugins.datasets.binary import IdxHeader, idx_file_problem, parse_idx_header

DEEP = 100_000


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message
    return message


# ---- TOML files ------------------------------------------------------------------------------------
def test_a_device_is_refused_unread():
    with pytest.raises(ConfigError) as info:
        read_toml("/dev/zero")
    assert one_line(info.value) == ("config file /dev/zero is a character device, not a regular file; "
                                    "give the path of a TOML file")


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        read_toml(tmp_path)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opening a FIFO blocks until something writes to it: the type is checked before opening."""
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_toml(fifo)
        except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so that the thread ends, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("read_toml waited on a named pipe")
    assert isinstance(outcome[0], ConfigError) and "is a named pipe" in str(outcome[0])


def test_the_size_cap_is_one_mebibyte(tmp_path):
    exact = tmp_path / "exact.toml"
    exact.write_text("#" * (MAX_TOML_BYTES - 1) + "\n")
    assert MAX_TOML_BYTES == 2**20 and read_toml(exact) == {}
    over = tmp_path / "over.toml"
    over.write_text("#" * MAX_TOML_BYTES + "\n")
    with pytest.raises(ConfigError) as info:
        read_toml(over)
    assert one_line(info.value) == (f"config file {over} is too large (1,048,577 bytes); ganlab reads TOML files of "
                                    "at most 1,048,576 bytes (1 MiB): is it the right file?")


@pytest.mark.parametrize("text", [
    "a = " + "[" * DEEP + "]" * DEEP,
    "a = " + "{b = " * DEEP + "1" + "}" * DEEP,
], ids=["arrays", "inline-tables"])
def test_nesting_too_deep_for_the_parser_is_one_line(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert one_line(info.value) == f"{path} is not valid TOML: arrays or tables nested too deeply for the parser"


def test_nesting_that_parses_is_still_read(tmp_path):
    path = tmp_path / "nested.toml"
    path.write_text("a = " + "[" * 50 + "1" + "]" * 50)
    value = read_toml(path)["a"]
    for _ in range(50):
        (value,) = value
    assert value == 1


def test_sweep_files_go_through_the_same_reader(tmp_path):
    with pytest.raises(ConfigError, match="^sweep file /dev/zero is a character device"):
        load_sweep("/dev/zero")
    deep = tmp_path / "sweep.toml"
    deep.write_text("[grid]\nseed = " + "[" * DEEP + "]" * DEEP)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_sweep(deep)
    with pytest.raises(ConfigError, match="^sweep file not found"):
        load_sweep(tmp_path / "nope.toml")


def test_a_grid_value_nested_too_deeply_is_refused():
    with pytest.raises(ConfigError) as info:
        parse_grid_override("seed=" + "[" * DEEP)
    assert "--grid value [[[" in one_line(info.value) and "nested too deeply" in str(info.value)
    assert parse_grid_override("seed=0,1,x") == ("seed", [0, 1, "x"])  # unchanged: what is not TOML is text


def test_text_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b"name = '\xe9'\n")
    with pytest.raises(ConfigError, match=r"^cannot read config file .*latin.toml: not UTF-8 text"):
        read_toml(path)


# ---- IDX headers against file sizes ----------------------------------------------------------------
def idx_bytes(dims: tuple[int, ...], payload: bytes = b"", type_code: int = 0x08, ndim: int | None = None) -> bytes:
    return (struct.pack(">BBBB", 0, 0, type_code, len(dims) if ndim is None else ndim)
            + struct.pack(f">{len(dims)}I", *dims) + payload)


def test_parse_idx_header():
    assert parse_idx_header(idx_bytes((60000, 28, 28)), 3) == IdxHeader(0x08, (60000, 28, 28))
    header = parse_idx_header(idx_bytes((60000, 100000, 100000)), 3)
    assert header.expected_size == 16 + 60000 * 100000 * 100000
    assert header.claims() == "60000 x 100000 x 100000 unsigned bytes"


@pytest.mark.parametrize(("head", "ndim", "words"), [
    (b"\0\0", 3, "it is 2 bytes long, too short for the IDX magic number (0x00000803)"),
    (b"GIF89a", 3, "its magic number 0x47494638 is not an IDX one (expected 0x00000803)"),
    (b"\0\0\x07\x03", 3, "its magic number 0x00000703 is not an IDX one (expected 0x00000803)"),
    (idx_bytes((10, 28, 28)), 1, "its header says 3 dimensions (magic number 0x00000803), expected 1 (0x00000801)"),
    (idx_bytes((10, 28, 28))[:9], 3, "it is 9 bytes long, too short for the 16-byte header of 3 dimensions"),
], ids=["short", "gif", "bad-type", "images-as-labels", "truncated-header"])
def test_parse_idx_header_refusals(head, ndim, words):
    assert parse_idx_header(head, ndim) == words


def test_idx_file_problem(tmp_path):
    good = tmp_path / "good"
    good.write_bytes(idx_bytes((3, 2, 2), bytes(12)))
    assert idx_file_problem(good, 3) is None
    huge = tmp_path / "huge"
    huge.write_bytes(idx_bytes((60000, 100000, 100000), b"\0"))
    assert idx_file_problem(huge, 3) == ("its header claims 60000 x 100000 x 100000 unsigned bytes (600,000,000,"
                                         "000,016 bytes with the 16-byte header), but the file is 17 bytes")
    longer = tmp_path / "longer"
    longer.write_bytes(idx_bytes((4,), bytes(5)))
    assert "claims 4 unsigned bytes (12 bytes with the 8-byte header), but the file is 13 bytes" \
        in idx_file_problem(longer, 1)
    floats = tmp_path / "floats"
    floats.write_bytes(idx_bytes((2,), bytes(8), type_code=0x0D))
    assert idx_file_problem(floats, 1) == "it holds floats; unsigned bytes are expected"
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    assert idx_file_problem(zero, 3) == "it is a character device, not a regular file"


def test_mnist_header_is_judged_before_torchvision_reads_the_file(registry, tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tvm

    write_mnist(tmp_path, "MNIST")
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(idx_bytes((60000, 100000, 100000), b"\0"))

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torchvision read a file whose header was not checked")

    monkeypatch.setattr(tvm, "read_sn3_pascalvincent_tensor", never)
    with pytest.raises(GanlabError) as info:
        load(registry, "mnist", root=tmp_path)
    assert one_line(info.value) == (
        f"dataset 'mnist': {images}: its header claims 60000 x 100000 x 100000 unsigned bytes "
        "(600,000,000,000,016 bytes with the 16-byte header), but the file is 17 bytes; the file is truncated, "
        "corrupted or not this dataset's: replace it (the .gz files of the dataset's site, decompressed)")


def test_mnist_labels_that_are_not_one_dimensional(registry, tmp_path):
    write_mnist(tmp_path, "FashionMNIST")
    labels = tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes((12, 1, 1), bytes(12)))
    with pytest.raises(GanlabError, match="t10k-labels-idx1-ubyte: its header says 3 dimensions"):
        load(registry, "fashion-mnist", root=tmp_path)


def test_with_download_files_torchvision_replaces_are_left_to_it(registry, tmp_path):
    """A missing file makes torchvision download all four again, overwriting the others: a bad one present is
    not refused then; one that is not a regular file is (a link to /dev/zero stays one)."""
    write_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "train-images-idx3-ubyte").write_bytes(b"garbage")
    mnist = dataset(registry, "mnist")
    mnist.check_files(tmp_path, download=True)
    with pytest.raises(GanlabError, match="train-images-idx3-ubyte: its magic number 0x67617262 is not an IDX one"):
        mnist.check_files(tmp_path, download=False)
    (raw / "train-images-idx3-ubyte").unlink()
    (raw / "train-images-idx3-ubyte").symlink_to("/dev/zero")
    with pytest.raises(GanlabError, match="train-images-idx3-ubyte: it is a character device"):
        mnist.check_files(tmp_path, download=True)


def test_cifar_files_are_bounded_before_checksumming(registry, tmp_path, monkeypatch):
    import ganlab_plugins.datasets.torchvision_sets as tvs

    write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    cifar = dataset(registry, "cifar10")
    monkeypatch.setattr(tvs, "CIFAR_MAX_BYTES", 1000)
    with pytest.raises(GanlabError) as info:
        cifar.check_files(tmp_path, download=False)
    assert f"dataset 'cifar10': {folder / 'data_batch_1'}: it is " in one_line(info.value)
    assert "bytes, more than the 1,000 expected at most" in str(info.value)
    monkeypatch.setattr(tvs, "CIFAR_MAX_BYTES", 64 * 2**20)
    cifar.check_files(tmp_path, download=False)
    (folder / "test_batch").unlink()
    (folder / "test_batch").symlink_to("/dev/zero")  # torchvision would checksum it for ever
    with pytest.raises(GanlabError, match="test_batch: it is a character device"):
        cifar.check_files(tmp_path, download=True)


def test_an_image_whose_header_claims_too_many_pixels_is_named(tmp_path):
    from PIL import Image

    from ganlab_plugins.datasets.image_folder import load_image

    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 10000)).save(path)  # 200 million pixels in 24 kB
    with pytest.raises(GanlabError, match=f"cannot read image {path}: DecompressionBombError"):
        load_image(path, 8, 1)


def test_an_image_past_pils_warning_limit_is_said_in_ganlabs_own_line(tmp_path, capfd):
    """PIL warns (not refuses) between its limit for untrusted images and twice that: the warning
    reaches stderr as a line of ganlab's, never as Python's warning text."""
    from PIL import Image

    from ganlab_plugins.datasets.image_folder import load_images

    path = tmp_path / "large.png"
    Image.new("1", (12000, 8000)).save(path)  # 96 million pixels: above 89 478 485, below twice that
    images = load_images([path], 4, 1)
    assert images.shape == (1, 1, 4, 4)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganlab: warning: dataset 'image-folder': Image size"), lines
    assert "loaded anyway" in lines[0]


# ---- the dataset contract ----------------------------------------------------------------------------
def images(n: int) -> torch.Tensor:
    return torch.zeros(n, 1, 4, 4)


@pytest.mark.parametrize(("data", "words"), [
    (TensorData(images(600), torch.zeros(10, dtype=torch.long), 10), "600 training samples but 10 labels"),
    (TensorData(images(4), torch.tensor([0, 1, 10, 3]), 10), "training labels range over 0..10, outside 0..9"),
    (TensorData(images(4), torch.tensor([0, -1, 2, 3]), 10), "training labels range over -1..3, outside 0..9"),
    (TensorData(images(4), torch.zeros(4), 10), "training labels must be integer class indices, not torch.float32"),
    (TensorData(images(4), torch.ones(4, dtype=torch.bool), 2), "not torch.bool"),
    (TensorData(images(4), torch.zeros(4, 1, dtype=torch.long), 2), "must be a 1-D tensor of class indices, not "
                                                                     "shape [4, 1]"),
    (TensorData(images(4), torch.zeros(4, dtype=torch.long), 0), "labels are given (0..0) but num_classes is 0"),
    (TensorData(images(4), None, -1), "num_classes must be an integer >= 0, not -1"),
    (TensorData(images(4), None, True), "num_classes must be an integer >= 0, not True"),
    (TensorData(images(4), None, 2.5), "num_classes must be an integer, not 2.5"),
    (TensorData(images(4), None, 0, test_y=torch.zeros(2, dtype=torch.long)), "test labels are given without test"),
    (TensorData(images(4), torch.zeros(4, dtype=torch.long), 3, test_x=images(2), test_y=torch.tensor([0, 7])),
     "test labels range over 0..7, outside 0..2"),
    (TensorData(images(4), torch.zeros(4, dtype=torch.long), 3, test_x=images(2), test_y=torch.tensor([0])),
     "2 test samples but 1 labels"),
    (TensorData(torch.tensor([[0, 1], [2, 3]]), vocab=["a", "b", "c"]), "training token ids range over 0..3, "
                                                                         "outside the vocabulary 0..2"),
], ids=["count", "past-classes", "negative", "float", "bool", "2-d", "no-classes", "negative-classes",
        "bool-classes", "float-classes", "test-labels-alone", "test-range", "test-count", "tokens"])
def test_data_problem(data, words):
    assert words in data_problem(data)


@pytest.mark.parametrize("data", [
    TensorData(images(4), torch.tensor([0, 1, 2, 1]), 3, test_x=images(2), test_y=torch.tensor([2, 0])),
    TensorData(images(4), torch.tensor([0, 1, 2, 1], dtype=torch.uint8), 3),
    TensorData(images(4)),
    TensorData(images(4), None, 10, test_x=images(2)),
    TensorData(torch.tensor([[0, 1], [2, 2]]), vocab=["a", "b", "c"], test_x=torch.tensor([[2, 0]])),
], ids=["labelled", "uint8-labels", "unlabelled", "classes-without-labels", "text"])
def test_data_that_keeps_the_contract(data):
    assert data_problem(data) is None


def test_streaming_data_is_checked_by_its_class_count_and_preview():
    preview = TensorData(images(4), torch.tensor([0, 1, 5, 1]), 3)
    assert "training labels range over 0..5" in dataset_data_problem(StreamingData([], (1, 4, 4), 3, preview=preview))
    assert "num_classes must be an integer >= 0" in dataset_data_problem(StreamingData([], (1, 4, 4), -2))
    assert dataset_data_problem(StreamingData([], (1, 4, 4), 3)) is None


def test_the_refusal_names_the_dataset_and_its_plugin():
    bad = TensorData(images(600), torch.zeros(10, dtype=torch.long), 10)
    with pytest.raises(ComponentError) as info:
        check_dataset_data("mnist", "datasets", bad)
    assert one_line(info.value) == ("dataset 'mnist' (plugin 'datasets') returned data that breaks the dataset "
                                    "contract: 600 training samples but 10 labels")


def test_the_engine_checks_a_third_party_dataset_when_it_loads(tmp_path):
    from ganlab.train.build import load_data

    bad = TensorData(images(8), torch.arange(8) % 4 + 1, 4, source="labels 1..4 of 4 classes")
    registry = make_plugin_manager(TinyDatasets(extra={"off-by-one": bad}, tiny=False), builtins=False,
                                   tiny_data=False).registry
    component = registry.get("dataset", "off-by-one")
    with pytest.raises(ComponentError) as info:
        load_data(component, component.create({}), {}, DataRequest(root=tmp_path), None)
    assert one_line(info.value).startswith(f"dataset 'off-by-one' (plugin '{component.provenance.plugin}') returned "
                                           "data that breaks the dataset contract: training labels range over 1..4")


class _Cacheable:
    cacheable = True

    def __init__(self, data: TensorData) -> None:
        self.data = data

    def load(self, request: DataRequest) -> TensorData:
        return self.data


def test_a_cache_that_breaks_the_contract_is_loaded_afresh(tmp_path):
    """A cache written before the check existed (MNIST with labels past its classes) is not trusted."""
    from ganlab.train.build import load_data

    good = TensorData(images(8), torch.arange(8) % 4, 4)
    registry = make_plugin_manager(TinyDatasets(extra={"cached": good}, tiny=False), builtins=False,
                                   tiny_data=False).registry
    component = registry.get("dataset", "cached")
    cache = tmp_path / "cache"
    _, hit = load_data(component, _Cacheable(good), {}, DataRequest(root=tmp_path), cache)
    (written,) = cache.glob("*.pt")
    assert not hit and load_cached(written) is not None
    save_cached(written, TensorData(images(8), torch.arange(8) + 10, 4))  # as an older ganlab would have kept it
    data, hit = load_data(component, _Cacheable(good), {}, DataRequest(root=tmp_path), cache)
    assert not hit and data.y.tolist() == good.y.tolist()
    _, hit = load_data(component, _Cacheable(good), {}, DataRequest(root=tmp_path), cache)
    assert hit  # rewritten good
