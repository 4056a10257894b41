"""The field's setting end to end on a CPU: SNGAN's 32×32 ResNets on CIFAR-10 files, every head, the
Inception metrics from a local weights file.

The CIFAR-10 files are 512 training and 128 test images written here in the dataset's own format (the
pickled batches torchvision reads); torchvision's checksum table is pointed at them, as in
tests/test_datasets.py (``cifar_root``), since no self-written file can match the published archive's
checksums. The weights file is Inception-v3 with random weights (``weights_file`` in conftest.py).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import cli_in_process

TRAIN_BATCHES = (103, 103, 102, 102, 102)  # 512 images, as CIFAR-10's five training batches
TEST_IMAGES = 128
#: every head: the four maps on their default scores, and the one-score controls of the two-class sparse heads
HEADS = [("sigmoid", []), ("softmax", []), ("sparsemax", []), ("entmax", []),
         ("sparsemax", ["--set", "head.scores=1"]), ("entmax", ["--set", "head.scores=1"])]


def write_cifar10(root: Path) -> Path:
    """Smooth random colour images (a 4×4 pattern, upsampled) as CIFAR-10's pickled batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        coarse = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
        return coarse.repeat(8, axis=2).repeat(8, axis=3).reshape(n, 3072)  # rows: red plane, green, blue

    names = [f"data_batch_{k}" for k in range(1, 6)]
    for name, n in [*zip(names, TRAIN_BATCHES), ("test_batch", TEST_IMAGES)]:
        batch = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, n)], "data": images(n),
                 "filenames": [f"{name}_{j}.png" for j in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{c}" for c in range(10)], "num_cases_per_batch": 103, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture
def cifar10_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torchvision.datasets as tvd

    folder = write_cifar10(tmp_path / "data")

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{k}", md5(f"data_batch_{k}")] for k in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5("batches.meta")})
    return tmp_path / "data"


def runs(client: Any, experiment: str) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


@pytest.mark.slow
def test_sngan_32_on_cifar10_files_with_every_head_logs_the_inception_metrics(
        workdir: Path, mlflow_client: Any, cifar10_files: Path, weights_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANLAB_INCEPTION_WEIGHTS", str(weights_file))
    # SNGAN's settings (hinge for the sigmoid head's published run, n_dis, Adam(0, 0.9)) at a CPU's size:
    # two steps, narrow networks; every evaluation still passes its images through the whole Inception-v3
    common = ["run", "--arch", "sngan", "--dataset", "cifar10", "--data-root", str(cifar10_files),
              "--steps", "2", "--batch-size", "8", "--latent-dim", "16", "--eval-every", "0", "--sample-every", "0",
              "--device", "cpu", "--set", "arch.ngf=16", "--set", "arch.ndf=16", "--set", "d_steps=2",
              "--set", "beta1=0", "--set", "beta2=0.9", "--set", "metrics=inception",
              "--set", "metric.inception.samples=10", "--set", "metric.inception.is_splits=2",
              "--set", "metric.inception.kid_subsets=2", "--set", "metric.inception.kid_subset_size=5"]
    variants = [(head, extra, "nonsaturating") for head, extra in HEADS] + [("sigmoid", [], "hinge")]
    for head, extra, loss in variants:
        code = cli_in_process([*common, "--head", head, *extra, "--loss", loss, "--experiment", "cifar-sngan"])
        assert code == 0, (head, extra, loss)

    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    finished = runs(mlflow_client, "cifar-sngan")
    assert len(finished) == len(variants) and all(run.info.status == "FINISHED" for run in finished)
    for run in finished:
        params, metrics = run.data.params, run.data.metrics
        assert params["arch.name"] == "sngan" and params["data.shape"] == "[3, 32, 32]"
        assert params["inception.weights"] == digest and params["inception.samples"] == "10"
        assert params["inception.reference"] == "train"
        for key in ("fid", "kid", "is", "precision", "recall"):
            assert math.isfinite(metrics[f"inception.{key}"]), (params["head.name"], key)
        assert metrics["inception.fid"] > 0 and metrics["inception.is"] >= 1.0
        assert 0.0 <= metrics["inception.precision"] <= 1.0 and 0.0 <= metrics["inception.recall"] <= 1.0
    assert sorted((r.data.params["head.name"], r.data.params.get("head.scores", "-"), r.data.params["loss.name"])
                  for r in finished) == sorted(
        [("entmax", "1", "nonsaturating"), ("entmax", "2", "nonsaturating"), ("sigmoid", "-", "hinge"),
         ("sigmoid", "-", "nonsaturating"), ("softmax", "2", "nonsaturating"), ("sparsemax", "1", "nonsaturating"),
         ("sparsemax", "2", "nonsaturating")])
