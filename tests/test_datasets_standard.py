"""The image sets of the GAN literature at their standard sizes: CIFAR-100, STL-10, image folders with a crop.

Nothing downloads. Each test writes a few images in the dataset's own on-disk format, and the real
readers read them: torchvision's CIFAR100 unpickles Python 2 pickles (written here with Python 2 string
opcodes, keys ``b'data'``, ``b'fine_labels'``, ... as the CIFAR page's loader sees them), torchvision's
STL10 reads headerless files of 27,648-byte records, each channel stored column by column. The one thing
patched is the table of published checksums torchvision checks on every load (no self-written file can
match it), pointed at the files written here, as tests/test_datasets.py does for CIFAR-10.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY
from PIL import Image

from ganlab.data import DataRequest, StreamingBatches, StreamingData, TensorData
from ganlab.errors import ConfigError, GanlabError
from ganlab.plugins import PluginManager
from ganlab_plugins.datasets.streaming import preview_indices


@pytest.fixture(scope="module")
def registry():
    return PluginManager(warn=lambda message: None).load().registry


def load(registry, name: str, root: Path | str = "data", download: bool = False, **options):
    made = registry.get("dataset", name).create(options)
    return made.load(DataRequest(root=Path(root), download=download))


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def signed(images: np.ndarray) -> torch.Tensor:
    """uint8 images as the datasets' float32 in [-1, 1], computed here independently of the code under test."""
    return torch.from_numpy(images.astype(np.float32)) / 127.5 - 1


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---- Python 2 pickles ------------------------------------------------------------------------------------
class Python2Pickler(pickle._Pickler):
    """Protocol 2 with ``bytes`` written as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as CIFAR's files
    were written: loaded with ``encoding="latin1"`` (torchvision) they are ``str``, with ``encoding="bytes"``
    (the CIFAR page's loader) ``bytes``; a numpy array's raw buffer is one such string, as in Python 2."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def python2_pickle(obj: object, path: Path) -> None:
    with path.open("wb") as handle:
        Python2Pickler(handle, protocol=2).dump(obj)


# ---- CIFAR-100 -----------------------------------------------------------------------------------------
FINE = [f"fine_{i:02d}".encode() for i in range(100)]
COARSE = [f"coarse_{i:02d}".encode() for i in range(20)]


def write_cifar100(root: Path, train: int = 6, test: int = 4) -> dict[str, dict]:
    """``cifar-100-python/{train,test,meta}``: rows of 3,072 bytes (red plane, green, blue), fine and coarse labels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    files = {}
    for name, count, offset in (("train", train, 0), ("test", test, 50)):
        fine = [(offset + 17 * j) % 100 for j in range(count)]
        files[name] = {
            b"filenames": [f"{name}_{j}.png".encode() for j in range(count)],
            b"batch_label": f"{name} batch 1 of 1".encode(),
            b"fine_labels": fine, b"coarse_labels": [label // 5 for label in fine],
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        }
    files["meta"] = {b"fine_label_names": FINE, b"coarse_label_names": COARSE}
    for name, content in files.items():
        python2_pickle(content, folder / name)
    return files


@pytest.fixture
def cifar100_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    files = write_cifar100(tmp_path)
    folder = tmp_path / "cifar-100-python"
    monkeypatch.setattr(tvd.CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(tvd.CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(tvd.CIFAR100, "meta", {**tvd.CIFAR100.meta, "md5": md5(folder / "meta")})
    return tmp_path, files


def test_the_written_pickles_have_cifar100s_python2_format(cifar100_root):
    root, files = cifar100_root
    with (root / "cifar-100-python" / "train").open("rb") as handle:
        as_bytes = pickle.load(handle, encoding="bytes")  # the loader on the CIFAR page
    assert set(as_bytes) == {b"filenames", b"batch_label", b"fine_labels", b"coarse_labels", b"data"}
    assert np.array_equal(as_bytes[b"data"], files["train"][b"data"])
    with (root / "cifar-100-python" / "meta").open("rb") as handle:
        assert pickle.load(handle, encoding="latin1")["coarse_label_names"][3] == "coarse_03"


def test_cifar100_fine_labels(registry, cifar100_root):
    root, files = cifar100_root
    data = load(registry, "cifar100", root=root)
    assert isinstance(data, TensorData) and data.shape == (3, 32, 32) and data.num_classes == 100
    rows = files["train"][b"data"]
    assert torch.equal(data.x, signed(rows.reshape(-1, 3, 32, 32)))  # the planes in order: red, green, blue
    assert data.y.tolist() == files["train"][b"fine_labels"]
    assert data.test_y.tolist() == files["test"][b"fine_labels"]
    assert torch.equal(data.test_x, signed(files["test"][b"data"].reshape(-1, 3, 32, 32)))
    assert data.class_names == [n.decode() for n in FINE]


def test_cifar100_coarse_labels_and_exclude_class(registry, cifar100_root):
    root, files = cifar100_root
    data = load(registry, "cifar100", root=root, coarse=True)
    assert data.num_classes == 20 and data.class_names == [n.decode() for n in COARSE]
    assert data.y.tolist() == files["train"][b"coarse_labels"]
    assert data.test_y.tolist() == files["test"][b"coarse_labels"]
    dropped = files["train"][b"fine_labels"][1]
    fewer = load(registry, "cifar100", root=root, exclude_class=dropped)
    assert len(fewer) == 5 and dropped not in fewer.y.tolist()
    with pytest.raises(ConfigError, match="0..19"):
        load(registry, "cifar100", root=root, coarse=True, exclude_class=50)


def test_cifar100_streamed_equals_in_memory(registry, cifar100_root):
    root, _ = cifar100_root
    in_memory = load(registry, "cifar100", root=root, size=16)
    streamed = load(registry, "cifar100", root=root, size=16, memory_limit_mb=0, num_workers=0)
    assert isinstance(in_memory, TensorData) and isinstance(streamed, StreamingData)
    assert streamed.shape == (3, 16, 16) and len(streamed) == 6 and streamed.num_classes == 100
    for i in range(len(streamed)):
        x, y = streamed.dataset[i]
        assert torch.allclose(x, in_memory.x[i], atol=1e-6) and y.item() == in_memory.y[i].item()
    preview = streamed.preview
    assert torch.allclose(preview.x, in_memory.x[preview_indices(6)], atol=1e-6)
    assert torch.allclose(preview.test_x, in_memory.test_x, atol=1e-6) and torch.equal(preview.test_y, in_memory.test_y)
    bx, by = StreamingBatches(streamed, batch_size=4, seed=0, device="cpu").next()
    assert bx.shape == (4, 3, 16, 16) and by.dtype == torch.int64


def test_cifar100_missing_files_name_the_layout(registry, tmp_path):
    with pytest.raises(GanlabError) as info:
        load(registry, "cifar100", root=tmp_path)
    message = one_line(info)
    assert f"not found in {tmp_path / 'cifar-100-python'}: missing train, test, meta" in message
    assert "--download" in message and "cifar-100-python.tar.gz" in message


def test_cifar100_bad_files_are_one_line(registry, cifar100_root):
    root, _ = cifar100_root
    train = root / "cifar-100-python" / "train"
    whole = train.read_bytes()
    train.write_bytes(whole[: len(whole) // 2])  # truncated: torchvision's checksum refuses it
    with pytest.raises(GanlabError) as info:
        load(registry, "cifar100", root=root)
    assert "the files are there but corrupted or unreadable" in one_line(info)
    with train.open("r+b") as handle:  # 300 MiB, sparse: refused by its size before minutes of hashing
        handle.truncate(300 * 2**20)
    with pytest.raises(GanlabError) as info:
        load(registry, "cifar100", root=root)
    assert f"{train}: it is 314,572,800 bytes, more than the 268,435,456 expected at most" in one_line(info)


# ---- STL-10 --------------------------------------------------------------------------------------------
STL_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
RECORD = 3 * 96 * 96


def stl_images(count: int, seed: int) -> np.ndarray:
    """``count`` upright (C, H, W) images; the first of each file white in its top 20 rows, black in its
    bottom 20, red in its left 10 columns between them: a picture whose way up a transpose would change."""
    images = np.random.default_rng(seed).integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)
    images[0, :, :20, :] = 255
    images[0, :, -20:, :] = 0
    images[0, :, 20:-20, :10] = np.array([255, 0, 0], dtype=np.uint8)[:, None, None]
    return images


def write_stl10(root: Path, train: int = 4, test: int = 3, unlabeled: int = 6) -> dict[str, np.ndarray]:
    """``stl10_binary/``: each image channel by channel, each channel column by column, labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    written = {}
    for i, (split, count) in enumerate((("train", train), ("test", test), ("unlabeled", unlabeled))):
        images = stl_images(count, seed=i)
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
        written[split] = images
        if split != "unlabeled":
            labels = np.array([(7 * j + i) % 10 for j in range(count)], dtype=np.uint8)
            (folder / f"{split}_y.bin").write_bytes((labels + 1).tobytes())
            written[f"{split}_labels"] = labels
    (folder / "class_names.txt").write_text("\n".join(STL_NAMES) + "\n")
    return written


@pytest.fixture
def stl_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    written = write_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    monkeypatch.setattr(tvd.STL10, "train_list", [[n, md5(folder / n)] for n in
                                                  ("train_X.bin", "train_y.bin", "unlabeled_X.bin")])
    monkeypatch.setattr(tvd.STL10, "test_list", [[n, md5(folder / n)] for n in ("test_X.bin", "test_y.bin")])
    return tmp_path, written


def shrunk(images: np.ndarray, size: int) -> torch.Tensor:
    """What an STL-10 image becomes at ``size``: bilinear, antialiased (docs/datasets.md)."""
    return F.interpolate(signed(images), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp(-1, 1)


def test_stl10_train_split_comes_out_upright_with_labels(registry, stl_root):
    root, written = stl_root
    data = load(registry, "stl10", root=root, split="train", size=96)
    assert isinstance(data, TensorData) and data.shape == (3, 96, 96) and data.num_classes == 10
    assert torch.equal(data.x, signed(written["train"]))
    first = data.x[0]
    assert torch.all(first[:, :20, :] == 1.0) and torch.all(first[:, -20:, :] == -1.0)  # white on top
    assert torch.all(first[0, 20:-20, :10] == 1.0) and torch.all(first[1:, 20:-20, :10] == -1.0)  # red on the left
    assert data.y.tolist() == written["train_labels"].tolist()
    assert data.test_y.tolist() == written["test_labels"].tolist()
    assert torch.equal(data.test_x, signed(written["test"])) and data.class_names == STL_NAMES


def test_stl10_default_is_the_unlabelled_split_at_48(registry, stl_root):
    root, written = stl_root
    made = registry.get("dataset", "stl10").create({})
    assert made.labelled is False
    data = made.load(DataRequest(root=root))
    assert data.shape == (3, 48, 48) and len(data) == 6 and data.y is None and data.num_classes == 0
    assert torch.allclose(data.x, shrunk(written["unlabeled"], 48), atol=1e-5)
    assert torch.allclose(data.test_x, shrunk(written["test"], 48), atol=1e-5) and data.test_y is None
    both = load(registry, "stl10", root=root, split="train+unlabeled", size=96)
    assert len(both) == 10 and both.y is None
    assert torch.equal(both.x, signed(np.concatenate([written["train"], written["unlabeled"]])))


@pytest.mark.parametrize("split", ["unlabeled", "train", "train+unlabeled"])
def test_stl10_streamed_equals_in_memory(registry, stl_root, monkeypatch, split):
    root, _ = stl_root
    in_memory = load(registry, "stl10", root=root, split=split, size=40)
    reads: list[str] = []
    fromfile = np.fromfile

    def spy(file, *args, **kwargs):  # records what is read whole, and reads it
        reads.append(Path(getattr(file, "name", file)).name)
        return fromfile(file, *args, **kwargs)

    monkeypatch.setattr(np, "fromfile", spy)
    streamed = load(registry, "stl10", root=root, split=split, size=40, in_memory="false", num_workers=0)
    assert isinstance(streamed, StreamingData) and len(streamed) == len(in_memory)
    assert not {"unlabeled_X.bin", "train_X.bin"} & set(reads), reads  # the training images: never read whole
    assert streamed.num_classes == in_memory.num_classes and streamed.shape == (3, 40, 40)
    for i in range(len(streamed)):
        x, y = streamed.dataset[i]
        assert torch.allclose(x, in_memory.x[i], atol=1e-6)
        assert y.item() == (-1 if in_memory.y is None else in_memory.y[i].item())
    preview = streamed.preview
    assert torch.allclose(preview.test_x, in_memory.test_x, atol=1e-6)
    assert (preview.test_y is None) == (in_memory.test_y is None) and preview.class_names == in_memory.class_names
    assert len(pickle.dumps(streamed.dataset)) < RECORD  # a worker gets the paths, not the records
    bx, _ = StreamingBatches(streamed, batch_size=3, seed=0, device="cpu").next()
    assert bx.shape == (3, 3, 40, 40)


def test_stl10_preview_keeps_what_fits_of_the_test_split(registry, stl_root, monkeypatch):
    import ganlab_plugins.datasets.streaming as streaming

    root, _ = stl_root
    monkeypatch.setattr(streaming, "PREVIEW_SAMPLES", 2)  # then the test split (3 images) is larger than a preview
    streamed = load(registry, "stl10", root=root, split="train", memory_limit_mb=0, num_workers=0)
    full = load(registry, "stl10", root=root, split="train")
    keep = preview_indices(3, 2)
    assert len(streamed.preview.x) == 2 and torch.equal(streamed.preview.test_y, full.test_y[keep])
    assert torch.allclose(streamed.preview.test_x, full.test_x[keep], atol=1e-6)


def test_stl10_missing_files_name_the_layout(registry, tmp_path):
    with pytest.raises(GanlabError) as info:
        load(registry, "stl10", root=tmp_path)
    message = one_line(info)
    assert f"not found in {tmp_path / 'stl10_binary'}: missing train_X.bin, train_y.bin, test_X.bin, " in message
    assert "unlabeled_X.bin" in message and "--download" in message and "stl10_binary.tar.gz" in message


def test_stl10_failed_download_says_so(registry, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.STL10, "url", f"file://{tmp_path}/nowhere/stl10_binary.tar.gz")
    with pytest.raises(GanlabError, match="download failed") as info:
        load(registry, "stl10", root=tmp_path, download=True)
    assert str(tmp_path / "stl10_binary") in one_line(info)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda f: (f / "train_X.bin").write_bytes((f / "train_X.bin").read_bytes()[:-100]),
     "train_X.bin: it is 110,492 bytes, not a whole number of 27,648-byte records"),
    (lambda f: (f / "train_y.bin").write_bytes(b"\x01\x02\x03"),
     "train_y.bin: it is 3 bytes; its image file holds 4 images, one label byte each"),
    (lambda f: (f / "test_y.bin").write_bytes(b"\x01\x0b\x02"), "test_y.bin: its labels range over 1..11"),
    (lambda f: (f / "train_y.bin").write_bytes(b"\x00\x01\x02\x03"), "train_y.bin: its labels range over 0..3"),
    (lambda f: (f / "class_names.txt").write_text("cat\ndog\n"), "class_names.txt: it names 2 classes, not 10"),
    (lambda f: (f / "unlabeled_X.bin").unlink() or (f / "unlabeled_X.bin").symlink_to("/dev/zero"),
     "unlabeled_X.bin: it is a character device"),
    (lambda f: (f / "train_X.bin").open("r+b").truncate(5001 * RECORD),  # sparse: no disk used
     "train_X.bin: it holds 5,001 records of 27,648 bytes; the dataset has 5,000"),
], ids=["truncated", "labels-count", "label-11", "label-0", "class-names", "dev-zero", "oversized"])
def test_stl10_bad_files_are_one_line(registry, stl_root, damage, words):
    root, _ = stl_root
    damage(root / "stl10_binary")
    with pytest.raises(GanlabError) as info:
        load(registry, "stl10", root=root, split="train")
    assert words in one_line(info) and "truncated, corrupted or not STL-10's" in str(info.value)


# ---- image-folder: crop and layouts ---------------------------------------------------------------------
def position_image(width: int, height: int) -> np.ndarray:
    """Every pixel different: red = 20 x column, green = 30 x row, blue = 7."""
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([cols * 20, rows * 30, np.full_like(cols, 7)], axis=-1).astype(np.uint8)


def test_image_folder_crop_is_the_centre_square_before_resizing(registry, tmp_path):
    picture = position_image(9, 7)
    Image.fromarray(picture).save(tmp_path / "a.png")
    data = load(registry, "image-folder", path=str(tmp_path), size=5, crop=5)
    # offsets round((9 - 5) / 2) = 2 columns, round((7 - 5) / 2) = 1 row
    assert torch.equal(data.x[0], signed(picture[1:6, 2:7].transpose(2, 0, 1)))
    plain = load(registry, "image-folder", path=str(tmp_path), size=5)  # crop 0: resized first, then the centre
    assert not torch.equal(plain.x[0], data.x[0])


def test_image_folder_celeba_protocol_crop_108_to_64(registry, tmp_path):
    face = np.random.default_rng(5).integers(0, 256, (218, 178, 3), dtype=np.uint8)  # img_align_celeba: 178x218
    Image.fromarray(face).save(tmp_path / "000001.png")
    data = load(registry, "image-folder", path=str(tmp_path), size=64, crop=108)
    # by hand: rows 55..163, columns 35..143, then 108 -> 64 with PIL's bicubic filter
    expected = np.array(Image.fromarray(face[55:163, 35:143]).resize((64, 64), Image.Resampling.BICUBIC))
    assert torch.equal(data.x[0], signed(expected.transpose(2, 0, 1)))
    streamed = load(registry, "image-folder", path=str(tmp_path), size=64, crop=108, in_memory="false", num_workers=0)
    assert torch.equal(streamed.dataset[0][0], data.x[0])
    with pytest.raises(GanlabError) as info:
        load(registry, "image-folder", path=str(tmp_path), size=64, crop=200)
    assert "000001.png is 178x218, smaller than dataset.crop=200" in one_line(info)


@pytest.mark.parametrize(("width", "height", "crop", "size"), [
    (178, 218, 178, 64),  # Mimicry's CelebA: CenterCrop(178), Resize(64)
    (341, 256, 256, 128),  # Mimicry's LSUN bedroom: CenterCrop(256), Resize(128)
])
def test_image_folder_bilinear_is_torchvisions_resize(registry, tmp_path, width, height, crop, size):
    from torchvision import transforms

    picture = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "a.png")
    data = load(registry, "image-folder", path=str(tmp_path), size=size, crop=crop, resample="bilinear")
    protocol = transforms.Compose([transforms.CenterCrop(crop), transforms.Resize(size), transforms.PILToTensor()])
    assert torch.equal(data.x[0], signed(protocol(Image.fromarray(picture)).numpy()))


def test_stl10_at_48_is_within_one_level_of_torchvisions_resize(registry, stl_root):
    """Mimicry resizes STL-10 with torchvision's Resize(48) on PIL images, which rounds to bytes; the same
    bilinear, antialiased filter on floats differs from it by at most that rounding, one level of 255."""
    from torchvision import transforms

    root, written = stl_root
    data = load(registry, "stl10", root=root, size=48)
    protocol = transforms.Compose([transforms.Resize(48), transforms.PILToTensor()])
    reference = torch.stack([protocol(Image.fromarray(image.transpose(1, 2, 0))) for image in written["unlabeled"]])
    assert (data.x - signed(reference.numpy())).abs().max() <= 1 / 127.5 + 1e-6


def test_image_folder_one_subfolder_is_the_parent_of_the_images(registry, tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save((tmp_path / "img_align_celeba").mkdir(exist_ok=True)
                                                 or tmp_path / "img_align_celeba" / f"{i}.png")
    with pytest.raises(GanlabError) as info:
        load(registry, "image-folder", path=str(tmp_path), size=8)
    message = one_line(info)
    assert "every image of" in message and "in one subfolder, img_align_celeba (3 images)" in message
    assert f"dataset.path={tmp_path / 'img_align_celeba'}" in message and "dataset.labels=none" in message
    data = load(registry, "image-folder", path=str(tmp_path), size=8, labels="none")
    assert len(data) == 3 and data.y is None


def test_image_folder_labels_none_reads_ffhq_subfolders_unlabelled(registry, tmp_path):
    # FFHQ: images1024x1024/00000/00000.png ... 69000/69999.png; the folders are not classes
    for folder, first in (("00000", 0), ("01000", 1000)):
        for i in range(first, first + 2):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.new("RGB", (16, 16), (i % 256, 0, 0)).save(tmp_path / folder / f"{i:05d}.png")
    (tmp_path / ".cache").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / ".cache" / "hidden.png")
    made = registry.get("dataset", "image-folder").create({"path": str(tmp_path), "size": 8, "labels": "none"})
    assert [p.name for p in made.scan().files] == ["00000.png", "00001.png", "01000.png", "01001.png"]
    assert made.labelled is False and made.load(DataRequest(root=Path("data"))).num_classes == 0
    labelled = load(registry, "image-folder", path=str(tmp_path), size=8)  # auto: two folders, two classes
    assert labelled.num_classes == 2
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "empty" / "deeper" / "notes.txt").write_text("not an image")
    with pytest.raises(GanlabError, match="no images under .*empty .*at any depth"):
        load(registry, "image-folder", path=str(tmp_path / "empty"), labels="none")
    with pytest.raises(ConfigError, match="labels"):
        registry.get("dataset", "image-folder").create({"path": str(tmp_path), "labels": "folders"})


def test_docs_datasets_md_tables_every_builtin_image_dataset(registry):
    from ganlab_plugins.datasets import MIXTURES

    table = (Path(__file__).parents[1] / "docs" / "datasets.md").read_text(encoding="utf-8").split("\n## ")[0]
    builtin = [n for n in registry.names("dataset") if registry.get("dataset", n).provenance.builtin]
    images = [n for n in builtin if n not in MIXTURES and not registry.get("dataset", n).metadata.get("text")]
    assert {"cifar100", "stl10", "image-folder"} <= set(images)
    assert [n for n in images if f"`{n}`" not in table] == []


# ---- through the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data-cache"
    monkeypatch.setenv("GANLAB_CACHE", str(path))
    return path


def finished_card(mlflow_client, tmp_path: Path) -> dict:
    import json

    [found] = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert found.info.status == "FINISHED"
    local = mlflow_client.download_artifacts(found.info.run_id, "data_card/data_card.json", str(tmp_path / "card"))
    return json.loads(Path(local).read_text())


SMALL_MLP = ["--arch", "mlp", "--set", "arch.hidden_scale=0.05", "--set", "metrics=none", "--device", "cpu"]


@pytest.mark.slow
def test_cifar100_run_finishes(cli_inproc, capsys, workdir, cache, mlflow_client, cifar100_root, tmp_path):
    root, _ = cifar100_root
    code = cli_inproc(["run", *TINY, *SMALL_MLP, "--steps", "2", "--dataset", "cifar100", "--set", f"data_root={root}",
                       "--set", "dataset.size=8", "--set", "dataset.coarse=true"])
    assert code == 0, capsys.readouterr().err
    card = finished_card(mlflow_client, tmp_path)
    assert card["shape"] == [3, 8, 8] and card["num_classes"] == 20 and card["size"] == 6


@pytest.mark.slow
def test_stl10_streamed_run_finishes(cli_inproc, capsys, workdir, cache, mlflow_client, stl_root, tmp_path):
    root, _ = stl_root
    code = cli_inproc(["run", *TINY, *SMALL_MLP, "--steps", "2", "--batch-size", "4", "--dataset", "stl10",
                       "--data-root", str(root), "--set", "dataset.size=8", "--set", "dataset.in_memory=false",
                       "--set", "dataset.num_workers=0"])
    assert code == 0, capsys.readouterr().err
    card = finished_card(mlflow_client, tmp_path)
    assert card["storage"] == "streamed" and card["shape"] == [3, 8, 8] and card["size"] == 6
    assert card["num_classes"] == 0
