"""``ganlab sample``: samples from a finished run's generator weights, as .npy and .png."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY


def finished_run(cli_inproc, mlflow_client, *args: str):
    assert cli_inproc(["run", *TINY, "--set", "metrics=none", "--experiment", "s", *args]) == 0
    exp = mlflow_client.get_experiment_by_name("s")
    run = mlflow_client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "FINISHED"
    return run


@pytest.fixture
def image_run(workdir, cli_inproc, mlflow_client):
    return finished_run(cli_inproc, mlflow_client, "--dataset", "digits", "--set", "dataset.size=16")


def test_npy_and_png_from_an_image_run(image_run, workdir, cli_inproc, capsys):
    from PIL import Image

    run_id = image_run.info.run_id
    assert cli_inproc(["sample", run_id, "--n", "10", "--out", "s.npy"]) == 0
    samples = np.load(workdir / "s.npy")
    assert samples.shape == (10, 1, 16, 16) and samples.dtype == np.float32
    assert samples.min() >= -1.0 and samples.max() <= 1.0 and samples.std() > 0

    # the same seed gives the same samples; another seed other samples
    assert cli_inproc(["sample", run_id, "--n", "10", "--out", "again.npy"]) == 0
    assert np.array_equal(np.load(workdir / "again.npy"), samples)
    assert cli_inproc(["sample", run_id, "--n", "10", "--out", "other.npy", "--seed", "1"]) == 0
    assert not np.array_equal(np.load(workdir / "other.npy"), samples)

    assert cli_inproc(["sample", run_id, "--n", "9", "--out", "grid.png"]) == 0
    with Image.open(workdir / "grid.png") as image:
        # a 3 x 3 grid of 16 px images with make_grid's 2 px padding
        assert image.format == "PNG" and image.size == (3 * 18 + 2, 3 * 18 + 2)
    assert "wrote 9 samples of shape (1, 16, 16)" in capsys.readouterr().err


def test_the_samples_come_with_the_headline_scores_of_the_run(image_run, workdir, cli_inproc, mlflow_client,
                                                               capsys):
    run_id = image_run.info.run_id
    assert cli_inproc(["sample", run_id, "--n", "4", "--out", "s.npy"]) == 0
    assert "last evaluation" not in capsys.readouterr().err, "a run without metrics scores nothing"
    for key, value in {"images.fld": 2.5, "images.class_kl": 0.125, "inception.fid": 41.0, "inception.is": 3.25}.items():
        mlflow_client.log_metric(run_id, key, value, step=4)
    assert cli_inproc(["sample", run_id, "--n", "4", "--out", "t.npy"]) == 0
    err = capsys.readouterr().err
    # the metrics' declared headline, in their order; the class KL is no headline
    assert "ganlab: the run's last evaluation: images.fld=2.5 inception.fid=41 inception.is=3.25\n" in err


def test_samples_come_from_the_stored_weights(image_run, workdir, cli_inproc):
    """Zeroed weights make every output tanh(0) = 0: proof that generator.pt is what is sampled."""
    import torch

    from ganlab.record.store import local_artifact_dir

    weights = local_artifact_dir(image_run.info.artifact_uri) / "generator.pt"
    state = torch.load(weights, weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, weights)
    assert cli_inproc(["sample", image_run.info.run_id, "--n", "4", "--out", "zero.npy"]) == 0
    assert np.abs(np.load(workdir / "zero.npy")).max() == 0.0


def test_points_from_a_2d_run(workdir, cli_inproc, mlflow_client):
    from PIL import Image

    run = finished_run(cli_inproc, mlflow_client, "--dataset", "ring8", "--set", "dataset.samples=2000")
    assert cli_inproc(["sample", run.info.run_id, "--n", "300", "--out", "points.npy"]) == 0
    assert np.load(workdir / "points.npy").shape == (300, 2)
    assert cli_inproc(["sample", run.info.run_id, "--n", "300", "--out", "points.png"]) == 0
    with Image.open(workdir / "points.png") as image:
        assert image.format == "PNG"


def test_errors(image_run, workdir, cli_inproc, capsys):
    from ganlab.record.store import local_artifact_dir

    run_id = image_run.info.run_id
    cases = [
        (["sample", run_id, "--out", "s.jpg"], "unsupported extension '.jpg'; use .npy (any data), .png (images, 2-D points) or .txt (text)"),
        (["sample", run_id, "--out", "nowhere/s.npy"], "directory nowhere does not exist"),
        (["sample", "0123456789abcdef", "--out", "s.npy"], "no run '0123456789abcdef'"),
    ]
    for args, expected in cases:
        assert cli_inproc(args) == 2, args
        assert expected in capsys.readouterr().err
    (local_artifact_dir(image_run.info.artifact_uri) / "generator.pt").unlink()
    assert cli_inproc(["sample", run_id, "--out", "s.npy"]) == 2
    assert "has no generator weights (generator.pt)" in capsys.readouterr().err
    assert not Path(workdir / "s.npy").exists()
