"""``ganlab sample``: outputs refused up front, the .png cap, batched .npy writing, and what a vector plot shows."""

from __future__ import annotations


import numpy as np
import pytest
from conftest import make, run_in_process
from test_sample import finished_run

NO_RUN = "0123456789abcdef0123456789abcdef"  # no such run: a refusal must come before the run is looked up

# A dataset of four Gaussian blobs in `dims` dimensions: vector data beyond (and below) 2-D.
BLOBS_PLUGIN = '''
from ganlab import Option, hookimpl


class Blobs:
    cacheable = False

    def __init__(self, dims, samples):
        self.dims, self.samples = dims, samples

    def load(self, request):
        import torch

        from ganlab.data import TensorData

        g = torch.Generator().manual_seed(request.seed)
        centres = torch.randn(4, self.dims, generator=g) * 0.5
        y = torch.randint(4, (self.samples,), generator=g)
        x = centres[y] + 0.05 * torch.randn(self.samples, self.dims, generator=g)
        return TensorData(x=x.clamp(-1, 1), y=y, num_classes=4, source="blobs")


@hookimpl
def register_datasets(register):
    register("blobs", Blobs, summary="four Gaussian blobs in D dimensions",
             options={"dims": Option(int, 5, min=1), "samples": Option(int, 500, min=2)})
'''


@pytest.fixture
def ring_run(workdir, cli_inproc, mlflow_client):
    return finished_run(cli_inproc, mlflow_client, "--dataset", "ring8", "--set", "dataset.samples=2000")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: "), stderr
    return lines[0]


# ---- refused before anything is generated ---------------------------------------
def test_unwritable_outputs_are_refused_up_front(workdir):
    (workdir / "dir.png").mkdir()
    cases = [
        (["--out", "/proc/x.png"], "cannot write '/proc/x.png': cannot create a file in /proc"),
        (["--out", "dir.png"], "cannot write 'dir.png': it is a directory"),
        (["--out", "missing/x.png"], "cannot write 'missing/x.png': directory missing does not exist"),
        (["--out", "x.jpg"], "unsupported extension '.jpg'"),
        (["--out", "x"], "unsupported extension '(none)'"),
        (["--n", "10000000", "--out", "big.png"], "above the cap of 10000 samples for a .png"),
    ]
    before = sorted(p.name for p in workdir.iterdir())
    for args, expected in cases:
        result = run_in_process(["sample", NO_RUN, *args], workdir)
        assert result.returncode == 2, (args, result.stderr)
        line = one_error_line(result.stderr)
        # the output is refused, not the (missing) run: the check comes first
        assert expected in line and NO_RUN not in line, (args, line)
    assert "write a .npy" in line  # the cap says what to do instead
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing written, no partial file left


def test_a_valid_output_reaches_the_run_lookup(workdir):
    """The control for the test above: with a writable .npy the same command fails on the run instead."""
    result = run_in_process(["sample", NO_RUN, "--n", "10000000", "--out", "fine.npy"], workdir)
    assert result.returncode == 2
    assert f"no run '{NO_RUN}'" in one_error_line(result.stderr)
    assert not list(workdir.glob("*.npy")) and not list(workdir.glob(".fine.npy*"))


# ---- batched .npy ------------------------------------------------------------------
def test_batched_npy_equals_one_big_batch(tmp_path):
    """Batches of 512 streamed into a memory-mapped .npy: the same samples as one forward pass of all the noise."""
    import torch

    from ganlab.cli.sample import sample_batches, write_npy

    torch.manual_seed(0)
    generator = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    n = 1300  # three batches, the last one short
    path = tmp_path / "batched.npy"
    write_npy(sample_batches(generator, n, 8, seed=5), path, n, (2,))
    with torch.no_grad():
        whole = generator(torch.randn(n, 8, generator=torch.Generator().manual_seed(5))).numpy()
    written = np.load(path)
    assert written.shape == (n, 2) and written.dtype == np.float32
    np.testing.assert_allclose(written, whole, rtol=1e-5, atol=1e-6)
    # and a different batching of the same stream gives the same file
    write_npy(sample_batches(generator, n, 8, seed=5, batch=1024), tmp_path / "other.npy", n, (2,))
    np.testing.assert_allclose(np.load(tmp_path / "other.npy"), written, rtol=1e-5, atol=1e-6)


def test_cli_npy_is_batched_with_progress_and_matches_the_weights(ring_run, workdir):
    import torch

    from ganlab.record.store import local_artifact_dir

    n = 1300
    result = run_in_process(["sample", ring_run.info.run_id, "--n", str(n), "--out", "many.npy", "--seed", "3"], workdir)
    assert result.returncode == 0, result.stderr
    # stderr is not a terminal here: plain progress lines, the last one complete
    progress = [line for line in result.stderr.splitlines() if line.startswith("ganlab: sampled ")]
    assert len(progress) >= 2 and progress[-1].startswith(f"ganlab: sampled {n}/{n} (100%)"), result.stderr
    # what one big batch through the run's own weights gives (the mlp generator is per-sample)
    generator, _ = make("architecture", "mlp").build((2,), 8, 1)
    state = torch.load(local_artifact_dir(ring_run.info.artifact_uri) / "generator.pt", weights_only=True)
    generator.load_state_dict(state)
    with torch.no_grad():
        whole = generator(torch.randn(n, 8, generator=torch.Generator().manual_seed(3))).numpy()
    np.testing.assert_allclose(np.load(workdir / "many.npy"), whole, rtol=1e-5, atol=1e-6)
    assert not list(workdir.glob(".many.npy*"))  # the partial file was renamed into place


def test_a_npy_the_disk_cannot_hold_is_refused(ring_run, workdir, cli_inproc, capsys):
    n = 10**13  # 2 float32 each: 80 TB
    assert cli_inproc(["sample", ring_run.info.run_id, "--n", str(n), "--out", "huge.npy"]) == 2
    err = capsys.readouterr().err
    assert f"{n} samples of shape (2,) take 80.0 TB" in err and "free in" in err
    assert "ganlab: sampled" not in err and not list(workdir.glob("*huge.npy*"))  # refused before sampling


# ---- what a plot of vector data shows -----------------------------------------------
def test_a_2d_plot_draws_the_real_data_and_names_run_step_and_counts():
    from ganlab.record.pictures import scatter_of

    rng = np.random.default_rng(0)
    samples, real = rng.normal(size=(300, 2)), rng.normal(size=(200, 2))
    plot = scatter_of(samples, real, "run ring-test (abc123)", 40)
    assert plot.kind == "scatter" and plot.note == ""
    np.testing.assert_array_equal(plot.samples, samples)  # 2-D points are drawn as they are
    np.testing.assert_array_equal(plot.real, real)
    for text in ("run ring-test (abc123)", "step 40", "300 samples", "200 real points"):
        assert text in plot.title, plot.title

    alone = scatter_of(samples, None, "run r (x)", None)
    assert alone.real is None and "no real data" in alone.title and "step ?" in alone.title


def test_beyond_2d_the_plot_says_it_shows_a_projection():
    from ganlab.record.pictures import scatter_of

    rng = np.random.default_rng(1)
    # real data on a tilted plane in 5-D: its first two principal components span that plane exactly
    plane = np.linalg.qr(rng.normal(size=(5, 2)))[0].T  # 2 orthonormal rows
    real = rng.normal(size=(400, 2)) * [3.0, 1.0] @ plane + 0.5
    samples = rng.normal(size=(100, 2)) @ plane + 0.5
    plot = scatter_of(samples, real, "run blobs (r1)", 4)
    assert plot.kind == "scatter" and plot.samples.shape == (100, 2) and plot.real.shape == (400, 2)
    assert "5 dimensions" in plot.note and "principal components of the real data" in plot.note
    assert "projected onto the first 2 principal components of the real data (5-D)" in plot.title
    assert plot.xlabel.startswith("PC1 of the real data") and plot.ylabel.startswith("PC2 of the real data")
    assert "100% of the variance" in plot.note
    # a projection onto the plane the points lie in keeps their distances
    def distances(points):
        return np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.testing.assert_allclose(distances(plot.samples[:20]), distances(samples[:20]), atol=1e-9)

    one_d = scatter_of(samples[:, :1], real[:, :1], "run r (x)", 4)
    assert one_d.kind == "histogram" and one_d.samples.shape == (100, 1)


def test_cli_2d_plot(ring_run, workdir):
    from PIL import Image

    from ganlab.cli.sample import run_label, run_step

    # the title's parts as the command makes them from the stored run
    assert run_step(ring_run) == 4
    assert ring_run.info.run_id in run_label(ring_run) and ring_run.info.run_name in run_label(ring_run)
    result = run_in_process(["sample", ring_run.info.run_id, "--n", "300", "--out", "ring.png"], workdir)
    assert result.returncode == 0, result.stderr
    assert "ganlab: note:" not in result.stderr  # 2-D: nothing to explain
    with Image.open(workdir / "ring.png") as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 300


def test_cli_plot_of_5d_data_notes_the_projection(workdir, cli_inproc, mlflow_client):
    blobs = workdir / "blobs.py"
    blobs.write_text(BLOBS_PLUGIN)
    run = finished_run(cli_inproc, mlflow_client, "--dataset", "blobs", "--plugin", str(blobs))
    result = run_in_process(["sample", run.info.run_id, "--n", "200", "--out", "blobs.png", "--plugin", str(blobs)], workdir)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("ganlab: note:")]
    assert len(notes) == 1 and "5 dimensions" in notes[0] and "principal components of the real data" in notes[0]
    assert (workdir / "blobs.png").stat().st_size > 0
