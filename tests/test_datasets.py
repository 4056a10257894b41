"""The built-in datasets, loaded from files the tests write in each format's own layout.

Nothing downloads: MNIST and Fashion-MNIST read IDX files, CIFAR-10 pickled
batches, image-folder PNGs, all written here. The torchvision classes are the
real ones; see ``cifar_root`` for the one thing patched there (checksums).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.data import DataRequest, StreamingBatches, StreamingData, TensorData
from ganlab.errors import ConfigError, GanlabError
from ganlab.plugins import PluginManager


@pytest.fixture(scope="module")
def registry():
    return PluginManager(warn=lambda message: None).load().registry


def dataset(registry, name: str, **options):
    return registry.get("dataset", name).create(options)


def load(registry, name: str, root: Path | str = "data", run_seed: int = 0, download: bool = False, **options):
    """Create dataset ``name`` with ``options`` and load it for a run seeded ``run_seed``."""
    return dataset(registry, name, **options).load(DataRequest(root=Path(root), download=download, seed=run_seed))


def check_tensor_data(data: TensorData, shape, num_classes: int) -> None:
    assert isinstance(data, TensorData)
    assert data.shape == tuple(shape) and data.x.dtype == torch.float32
    assert data.x.min() >= -1.0 and data.x.max() <= 1.0
    assert data.num_classes == num_classes
    if num_classes:
        assert data.y.dtype == torch.int64 and data.y.shape == (len(data),)
        assert 0 <= data.y.min() and data.y.max() < num_classes
    assert data.source


def test_every_builtin_dataset_declares_cacheable_and_labelled(registry, tmp_path):
    # Both are optional for third-party datasets (docs/plugins.md); the built-ins say them.
    (tmp_path / "a.png").write_bytes(b"")
    builtins = [name for name in registry.names("dataset") if registry.get("dataset", name).provenance.builtin]
    assert {"digits", "mnist", "cifar10", "ring8", "image-folder"} <= set(builtins)
    for name in builtins:
        options = {"path": str(tmp_path)} if name == "image-folder" else {}
        made = dataset(registry, name, **options)
        assert isinstance(made.cacheable, bool) and isinstance(made.labelled, bool), name


# ---- digits -------------------------------------------------------------------
def test_digits_default(registry):
    data = load(registry, "digits")
    check_tensor_data(data, (1, 32, 32), 10)
    assert data.x.min() == -1.0 and data.x.max() == 1.0
    total = len(data) + len(data.test_x)
    assert total == 1797 and len(data.test_x) == pytest.approx(0.2 * total, abs=1)
    assert data.test_x.shape[1:] == (1, 32, 32) and data.test_y.dtype == torch.int64
    # stratified: every class has about a fifth of its samples in the test split
    test_counts = torch.bincount(data.test_y, minlength=10)
    assert test_counts.min() >= 35 and test_counts.max() <= 37
    assert data.class_names == [str(d) for d in range(10)]


def test_digits_are_the_sklearn_digits_scaled(registry):
    from sklearn.datasets import load_digits

    data = load(registry, "digits", size=8)
    raw = torch.from_numpy(load_digits().images).float() / 16 * 2 - 1
    # every converted training image is one of the raw images, unresized at size 8
    flat_raw = raw.reshape(len(raw), -1)
    distances = torch.cdist(data.x.reshape(len(data), -1), flat_raw)
    assert torch.all(distances.min(dim=1).values < 1e-5)


def test_digits_split_is_deterministic_and_independent_of_the_run_seed(registry):
    a, b = load(registry, "digits", size=16, run_seed=0), load(registry, "digits", size=16, run_seed=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.test_y, b.test_y)


def test_digits_exclude_class_drops_it_from_training_only(registry):
    data = load(registry, "digits", size=8, exclude_class=3)
    assert 3 not in data.y.tolist() and 3 in data.test_y.tolist()
    assert data.num_classes == 10
    with pytest.raises(ConfigError, match="exclude_class"):
        dataset(registry, "digits", exclude_class=10)


# ---- MNIST / Fashion-MNIST from IDX files ---------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    arrays["train-images-idx3-ubyte"][0] = 0  # make the extremes exact
    arrays["train-images-idx3-ubyte"][1] = 255
    for name, array in arrays.items():
        write_idx(root / folder / "raw" / name, array)
    return arrays


@pytest.mark.parametrize(("name", "folder", "first_class"), [
    ("mnist", "MNIST", "0 - zero"), ("fashion-mnist", "FashionMNIST", "T-shirt/top"),
])
def test_mnist_family_from_idx_files(registry, tmp_path, name, folder, first_class):
    arrays = write_mnist(tmp_path, folder)
    data = load(registry, name, root=tmp_path)
    check_tensor_data(data, (1, 28, 28), 10)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().unsqueeze(1) / 255 * 2 - 1
    assert torch.allclose(data.x, expected, atol=1e-6)
    assert data.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_x.shape == (12, 1, 28, 28) and data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.class_names[0] == first_class
    assert str(tmp_path / folder / "raw") in data.source


def test_mnist_resize_and_exclude_class(registry, tmp_path):
    write_mnist(tmp_path, "MNIST")
    data = load(registry, "mnist", root=tmp_path, size=32, exclude_class=4)
    check_tensor_data(data, (1, 32, 32), 10)
    assert 4 not in data.y.tolist() and len(data) == 27
    assert data.test_x.shape == (12, 1, 32, 32) and 4 in data.test_y.tolist()


# ---- CIFAR-10 from pickled batches ----------------------------------------------
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, per_batch: int = 4) -> dict[str, dict]:
    """The python-pickle batches: rows of 3072 bytes, the red plane then green then blue."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        batches[name] = {
            "batch_label": name, "labels": [(i * per_batch + j) % 10 for j in range(per_batch)],
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "filenames": [f"{name}_{j}.png" for j in range(per_batch)],
        }
    batches["batches.meta"] = {"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    for name, content in batches.items():
        (folder / name).write_bytes(pickle.dumps(content))
    return batches


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """CIFAR-10 files written here, with torchvision's checksum table pointed at them.

    torchvision's CIFAR10 checks every batch file's md5 against the published
    archive's on every load, download or not, so no self-written file can
    pass. The test replaces only that table (train_list, test_list, meta) with
    the md5s of the files it wrote; the reading code is torchvision's own.
    """
    import torchvision.datasets as tvd

    batches = write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{k}", md5(f"data_batch_{k}")] for k in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5("batches.meta")})
    return tmp_path, batches


def test_cifar10_from_pickled_batches(registry, cifar_root):
    root, batches = cifar_root
    data = load(registry, "cifar10", root=root)
    check_tensor_data(data, (3, 32, 32), 10)
    assert len(data) == 20 and data.test_x.shape == (4, 3, 32, 32)
    rows = np.concatenate([batches[f"data_batch_{k}"]["data"] for k in range(1, 6)])
    expected = torch.from_numpy(rows).float().reshape(-1, 3, 32, 32) / 255 * 2 - 1  # channel planes in order
    assert torch.allclose(data.x, expected, atol=1e-6)
    assert data.y.tolist() == [label for k in range(1, 6) for label in batches[f"data_batch_{k}"]["labels"]]
    assert data.class_names == CIFAR_NAMES


def test_cifar10_resize_and_exclude_class(registry, cifar_root):
    root, _ = cifar_root
    data = load(registry, "cifar10", root=root, size=16, exclude_class=0)
    check_tensor_data(data, (3, 16, 16), 10)
    assert len(data) == 18 and 0 not in data.y.tolist() and 0 in data.test_y.tolist()


def test_cifar10_with_wrong_checksums_is_called_corrupted(registry, tmp_path):
    write_cifar(tmp_path)  # torchvision's real checksums: these files cannot match them
    with pytest.raises(GanlabError, match="corrupted") as info:
        load(registry, "cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)


# ---- missing files ---------------------------------------------------------------
@pytest.mark.parametrize(("name", "folder", "a_file"), [
    ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
    ("fashion-mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_1"),
])
def test_missing_files_say_where_and_how(registry, tmp_path, name, folder, a_file):
    with pytest.raises(GanlabError) as info:
        load(registry, name, root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / folder) in message and a_file in message
    assert "--download" in message and "copy" in message


def test_failed_download_says_so(registry, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    # a mirror that fails at once, without a network
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"file://{tmp_path}/nowhere/"])
    monkeypatch.setattr(tvd.CIFAR10, "url", f"file://{tmp_path}/nowhere/cifar-10-python.tar.gz")
    for name, folder in (("mnist", "MNIST/raw"), ("cifar10", "cifar-10-batches-py")):
        with pytest.raises(GanlabError, match="download failed") as info:
            load(registry, name, root=tmp_path, download=True)
        assert "\n" not in str(info.value) and str(tmp_path / folder) in str(info.value)


# ---- image-folder --------------------------------------------------------------
def write_png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_image_folder_unlabelled_resizes_and_centre_crops(registry, tmp_path):
    # 30x10: red, green, blue thirds; the centre 10x10 crop is the green third
    stripes = np.zeros((10, 30, 3), dtype=np.uint8)
    stripes[:, :10, 0] = stripes[:, 10:20, 1] = stripes[:, 20:, 2] = 255
    Image.fromarray(stripes).save(tmp_path / "a_stripes.png")
    write_png(tmp_path / "b_tall.png", (20, 40), (255, 255, 255))
    write_png(tmp_path / "c_small.jpg", (5, 5), (0, 0, 0))
    (tmp_path / "notes.txt").write_text("not an image")
    data = load(registry, "image-folder", path=str(tmp_path), size=10)
    check_tensor_data(data, (3, 10, 10), 0)
    assert len(data) == 3 and data.y is None and data.class_names is None
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 10, 10)
    assert torch.allclose(data.x[0], green)
    assert torch.all(data.x[1] == 1.0) and torch.allclose(data.x[2], torch.full((3, 10, 10), -1.0), atol=0.02)


def write_classes(root: Path) -> None:
    for i in range(3):
        write_png(root / "dogs" / f"{i}.png", (12, 16), (200, 10 * i, 0))
    for i in range(2):
        write_png(root / "cats" / "nested" / f"{i}.png", (16, 12), (0, 10 * i, 200))


def test_image_folder_labels_from_class_subfolders(registry, tmp_path):
    write_classes(tmp_path)
    made = dataset(registry, "image-folder", path=str(tmp_path), size=8, channels=1)
    assert made.labelled is True
    data = made.load(DataRequest(root=Path("data")))
    check_tensor_data(data, (1, 8, 8), 2)
    assert data.class_names == ["cats", "dogs"] and data.y.tolist() == [0, 0, 1, 1, 1]


def test_image_folder_streams_large_folders(registry, tmp_path):
    write_classes(tmp_path)
    in_memory = load(registry, "image-folder", path=str(tmp_path), size=8)
    streamed = load(registry, "image-folder", path=str(tmp_path), size=8, memory_limit_mb=0, num_workers=0)
    assert isinstance(streamed, StreamingData)
    assert streamed.shape == (3, 8, 8) and len(streamed) == 5 and streamed.num_classes == 2
    x, y = streamed.dataset[3]
    assert x.dtype == torch.float32 and torch.allclose(x, in_memory.x[3], atol=1e-6) and y.item() == 1
    assert isinstance(streamed.preview, TensorData) and streamed.preview.shape == (3, 8, 8)
    pickle.dumps(streamed.dataset)  # DataLoader workers started with spawn must receive it
    batches = StreamingBatches(streamed, batch_size=4, seed=0, device="cpu")
    bx, by = batches.next()
    assert bx.shape == (4, 3, 8, 8) and by.dtype == torch.int64
    forced = load(registry, "image-folder", path=str(tmp_path), size=8, in_memory="false", num_workers=0)
    assert isinstance(forced, StreamingData)
    assert isinstance(load(registry, "image-folder", path=str(tmp_path), size=8, in_memory="true",
                           memory_limit_mb=0), TensorData)


def test_image_folder_unlabelled_stream_marks_labels_missing(registry, tmp_path):
    write_png(tmp_path / "a.png", (8, 8), (1, 2, 3))
    streamed = load(registry, "image-folder", path=str(tmp_path), size=8, in_memory="no")
    assert streamed.num_classes == 0 and streamed.dataset[0][1].item() == -1


def test_image_folder_cache_token_follows_the_contents(registry, tmp_path):
    write_classes(tmp_path)
    before = dataset(registry, "image-folder", path=str(tmp_path)).cache_token()
    assert dataset(registry, "image-folder", path=str(tmp_path)).cache_token() == before
    write_png(tmp_path / "cats" / "2.png", (8, 8), (1, 2, 3))
    assert dataset(registry, "image-folder", path=str(tmp_path)).cache_token() != before


def test_image_folder_refusals(registry, tmp_path):
    with pytest.raises(ConfigError, match="dataset.path"):
        dataset(registry, "image-folder")
    with pytest.raises(ConfigError, match="in_memory"):
        dataset(registry, "image-folder", path=str(tmp_path), in_memory="sometimes")
    with pytest.raises(GanlabError, match="does not exist"):
        load(registry, "image-folder", path=str(tmp_path / "absent"))
    with pytest.raises(GanlabError, match="no images"):
        load(registry, "image-folder", path=str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(GanlabError, match="cannot read image .*broken.png"):
        load(registry, "image-folder", path=str(tmp_path))
    (tmp_path / "broken.png").unlink()
    write_png(tmp_path / "loose.png", (8, 8), (0, 0, 0))
    write_png(tmp_path / "class_a" / "x.png", (8, 8), (0, 0, 0))
    with pytest.raises(GanlabError, match="class subfolder"):
        load(registry, "image-folder", path=str(tmp_path))


# ---- 2-D mixtures ------------------------------------------------------------------
@pytest.mark.parametrize(("name", "count", "sigma"), [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixture_modes_match_science_md(name, count, sigma):
    from ganlab_plugins.datasets.mixtures import mixture_modes

    means, got_sigma = mixture_modes(name)
    assert got_sigma == sigma and means.shape == (count, 2)
    assert len({(round(a, 6), round(b, 6)) for a, b in means.tolist()}) == count  # all distinct
    if name == "ring8":
        expected = [(math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)) for i in range(8)]
        assert torch.allclose(means, torch.tensor(expected), atol=1e-6)
        assert torch.allclose(means.norm(dim=1), torch.ones(8))
    else:
        grid = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
        assert {tuple(m) for m in means.tolist()} == grid


@pytest.mark.parametrize(("name", "count", "sigma"), [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixture_samples_concentrate_on_the_modes(registry, name, count, sigma):
    from ganlab_plugins.datasets.mixtures import mixture_modes

    made = dataset(registry, name, samples=20_000)
    assert made.cacheable is False and made.sigma == sigma
    data = made.load(DataRequest(root=Path("data"), seed=3))
    assert isinstance(data, TensorData) and data.shape == (2,) and len(data) == 20_000
    assert data.num_classes == count and data.y.dtype == torch.int64
    means, _ = mixture_modes(name)
    distances = torch.cdist(data.x, means)
    nearest = distances.argmin(dim=1)
    assert torch.equal(nearest, data.y)  # each sample lies nearest the mode it was drawn from
    within = distances.min(dim=1).values <= 3 * sigma
    # a 2-D Gaussian puts exp(-9/2) ≈ 1.1 % of its mass beyond 3σ
    assert within.float().mean() > 0.985
    assert torch.bincount(nearest[within], minlength=count).min() > 0  # every mode is hit
    assert (distances.min(dim=1).values <= 6 * sigma).all()
    per_axis_std = (data.x - means[data.y]).std(dim=0)
    assert torch.allclose(per_axis_std, torch.full((2,), sigma), rtol=0.05)
    counts = torch.bincount(data.y, minlength=count).float()
    assert counts.min() > 0.8 * counts.mean()  # modes equally likely


def test_mixture_seeds(registry):
    a = load(registry, "ring8", run_seed=1, samples=100)  # option seed -1: the run's seed
    assert torch.equal(a.x, load(registry, "ring8", run_seed=1, samples=100).x)
    assert not torch.equal(a.x, load(registry, "ring8", run_seed=2, samples=100).x)
    pinned = load(registry, "ring8", run_seed=5, samples=100, seed=1)
    assert torch.equal(pinned.x, a.x)  # the dataset's own seed overrides the run's
