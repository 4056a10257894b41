"""The example plugin package (plugins/examples/ganlab-temperature), installed and used.

The package is installed with pip, from a copy of its local path and without
network, into a temporary ``--target`` directory that only this module's
subprocesses see on PYTHONPATH: nothing leaks into other tests or into the
environment. It is then used the way a user would: ``ganlab components``,
``ganlab plugins`` and ``ganlab run`` in real processes, and its own tests run
against the installed copy.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import TINY


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "ganlab-temperature"
RUN_ARGS = ["run", *TINY, "--head", "temperature-sigmoid", "--loss", "margin-hinge", "--dataset", "moons",
            "--arch", "mlp", "--set", "arch.hidden_scale=0.125", "--set", "dataset.samples=256",
            "--set", "metrics=diagnostics"]


def pip_install(sources: list[Path], target: Path) -> None:
    """Install local source trees into ``target`` with no network and no build isolation."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), *map(str, sources)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr


def env_with(target: Path) -> dict[str, str]:
    """Environment for subprocesses that see the installed plugin; one torch thread (tiny nets)."""
    paths = [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the repository.
    source = tmp_path_factory.mktemp("source") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                   ".pytest_cache"))
    target = tmp_path_factory.mktemp("site-packages")
    pip_install([source], target)
    return {"env": env_with(target), "source": source, "target": target}


def test_installed_files_are_in_the_target_only(installed):
    target = installed["target"]
    assert (target / "ganlab_temperature" / "plugin.py").is_file()
    assert (target / "ganlab_temperature-0.1.0.dist-info").is_dir()
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("ganlab-temperature")  # this process never sees it


def test_components_lists_the_example(installed, cli):
    done = cli(["components", "--json"], env=installed["env"])
    assert done.returncode == 0, done.stderr
    listed = {(c["kind"], c["name"]): c for c in json.loads(done.stdout)}
    head = listed[("head", "temperature-sigmoid")]
    assert head["plugin"] == "temperature"
    assert head["options"] == {"temperature": {"type": "float", "default": 1.0,
                                               "help": "T > 0: divides D's score before the sigmoid"}}
    assert listed[("loss", "margin-hinge")]["plugin"] == "temperature"
    assert listed[("dataset", "moons")]["plugin"] == "temperature"
    assert ("head", "sigmoid") in listed  # the built-ins are still there


def test_plugins_shows_it_as_not_built_in_with_its_version(installed, cli):
    done = cli(["plugins", "--json"], env=installed["env"])
    assert done.returncode == 0, done.stderr
    row = next(p for p in json.loads(done.stdout)["plugins"] if p["name"] == "temperature")
    assert row["builtin"] is False and row["error"] is None
    assert row["distribution"] == "ganlab-temperature" and row["version"] == "0.1.0"
    assert row["module"] == "ganlab_temperature.plugin"
    assert row["hooks"] == ["register_datasets", "register_heads", "register_losses", "register_metrics",
                            "register_regularizers"]

    text = cli(["plugins"], env={**installed["env"], "COLUMNS": "200"})
    line = next(line for line in text.stdout.splitlines() if "temperature" in line)
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells[:3] == ["temperature", "0.1.0", "no"]


@pytest.mark.slow
def test_run_with_the_example_components_is_recorded(installed, cli, workdir, mlflow_client):
    done = cli([*RUN_ARGS, "--set", "head.temperature=2"], cwd=workdir, env=installed["env"])
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    params, tags = run.data.params, run.data.tags
    assert params["head.name"] == "temperature-sigmoid" and float(params["head.temperature"]) == 2.0
    assert params["loss.name"] == "margin-hinge" and float(params["loss.margin"]) == 1.0
    assert params["dataset.name"] == "moons" and params["dataset.samples"] == "256"
    for section in ("head", "loss", "dataset"):
        assert tags[f"ganlab.{section}.plugin"] == "temperature"
        assert tags[f"ganlab.{section}.version"] == "0.1.0"
    assert tags["ganlab.arch.plugin"] == "architectures"
    assert {"loss.d", "loss.g", "diag.p_real_real"} <= set(run.data.metrics)


@pytest.mark.slow
def test_the_examples_picture_is_drawn_into_the_record(installed, cli, workdir, mlflow_client):
    """A third-party metric's picture: prepared in the training process, drawn by the plugin's own function in
    the process that writes the record, logged as an image card and animated at the end."""
    from PIL import Image

    from ganlab.record.logged_images import logged_images, read_image

    args = [a if a != "metrics=diagnostics" else "metrics=margins" for a in RUN_ARGS]
    done = cli([*args, "--eval-every", "2"], cwd=workdir, env=installed["env"])
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert "margins.gap" in run.data.metrics
    images = sorted((i for i in logged_images(mlflow_client, run) if i.key == "margins"), key=lambda i: i.step)
    assert [i.step for i in images] == [2, 4]
    drawn = Image.open(io.BytesIO(read_image(mlflow_client, run, images[-1])))
    assert drawn.size == (500, 340)  # draw_margins' own 5 × 3.4 inches, not the card of a failed drawing
    gif = Image.open(mlflow_client.download_artifacts(run.info.run_id, "margins/animation.gif", str(workdir)))
    assert gif.n_frames == 2


def test_bad_option_of_the_example_is_refused_in_one_line(installed, cli, workdir, mlflow_client):
    done = cli([*RUN_ARGS, "--set", "head.temperature=0"], cwd=workdir, env=installed["env"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["ganlab: error: head.temperature must be > 0.0, not 0.0"]
    experiment = mlflow_client.get_experiment_by_name("ganlab")
    assert experiment is None or not mlflow_client.search_runs([experiment.experiment_id])


@pytest.mark.slow
def test_the_example_packages_own_tests_pass_against_the_installed_copy(installed):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed["source"] / "tests")],
        cwd=installed["source"], env={**os.environ, **installed["env"]}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "16 passed" in done.stdout


def test_the_example_is_not_part_of_ganlab(cli_inproc, capsys):
    """Only the example's own pyproject declares it: ganlab neither ships nor registers it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location("ganlab_setup", ROOT / "setup.py")
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)  # its packages() is what a wheel installs
    packages = setup_py.packages()
    assert "ganlab_plugins" in packages and not [p for p in packages if "example" in p or "temperature" in p]
    entry_points = config["project"].get("entry-points", {}).get("ganlab", {}).values()
    assert not [value for value in entry_points if "example" in value or "temperature" in value]
    assert not [ep for ep in metadata.distribution("ganlab").entry_points if "temperature" in ep.value]
    assert not (ROOT / "plugins" / "examples" / "__init__.py").exists()
    assert cli_inproc(["components", "head", "--json"]) == 0
    assert "temperature-sigmoid" not in capsys.readouterr().out
