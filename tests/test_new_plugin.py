"""``ganlab new-plugin``: generated packages install, pass their own tests, and show up.

One package per kind is generated, and one with several kinds (a head, a loss, a
regulariser and lifecycle hooks); all are installed with one offline pip call into a
temporary ``--target`` directory (seen only by this module's subprocesses), their
generated tests run in one pytest process, ``ganlab components`` / ``ganlab plugins``
list them, and the several-kind package trains through ``ganlab run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, run_in_process
from test_example_plugin import env_with, pip_install


KINDS = {"head": "my-head", "loss": "my-loss", "architecture": "my-arch", "dataset": "my-data",
         "metric": "my-metric", "regularizer": "my-reg", "augmentation": "my-augment", "optimizer": "my-optim",
         "lifecycle": "my-watch"}
PACK = ("head", "loss", "regularizer", "lifecycle")
#: the several-kind package's components: the first takes its name, each other one NAME-KIND
PACK_NAMES = {"head": "my-pack", "loss": "my-pack-loss", "regularizer": "my-pack-regularizer"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ganlab.cli.app import main

    parent = tmp_path_factory.mktemp("plugins")
    for kind, name in KINDS.items():
        assert main(["new-plugin", name, "--kind", kind, "--dir", str(parent)]) == 0
    # one package with several components
    assert main(["new-plugin", "my-pack", *[a for k in PACK for a in ("--kind", k)], "--dir", str(parent)]) == 0
    return parent


@pytest.fixture(scope="module")
def installed(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site-packages")
    pip_install(sorted(generated.iterdir()), target)
    return env_with(target)


def test_layout_of_a_generated_package(generated):
    package = generated / "ganlab-my-head"
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "src/ganlab_my_head/__init__.py", "src/ganlab_my_head/impl.py",
                     "src/ganlab_my_head/plugin.py", "tests/test_ganlab_my_head.py"]
    import tomllib

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ganlab-my-head"
    assert project["entry-points"]["ganlab"] == {"my-head": "ganlab_my_head.plugin"}
    assert "ganlab run --head my-head" in (package / "README.md").read_text()
    # every generated file is valid Python (or TOML, above)
    for path in package.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert not [p for p in generated.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_command_output_says_what_to_do_next(tmp_path, cli_inproc, capsys):
    assert cli_inproc(["new-plugin", "ganlab-fancy", "--kind", "arch", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"created {tmp_path / 'ganlab-fancy'}/ with architecture 'fancy'" in out
    assert "pip install -e" in out and "pytest" in out
    plugin = (tmp_path / "ganlab-fancy" / "src" / "ganlab_fancy" / "plugin.py").read_text()
    assert "def register_architectures(register" in plugin and '"fancy", _make' in plugin


@pytest.mark.parametrize("args, message", [
    (["Bad_Name"], "plugin name 'Bad_Name' is not valid"),
    (["9lives"], "plugin name '9lives' is not valid"),
    (["a--b"], "plugin name 'a--b' is not valid"),
    (["x" * 41], "is not valid"),
    (["ok", "--kind", "hed"], "unknown plugin kind 'hed'; did you mean 'head'?"),
    (["sigmoid", "--kind", "head"], "a head named 'sigmoid' already exists (plugin 'heads')"),
    (["adam", "--kind", "optimizer"], "an optimizer named 'adam' already exists (plugin 'optimizers')"),
    (["ok", "--kind", "head", "--kind", "hed"], "unknown plugin kind 'hed'; did you mean 'head'?"),
    (["sigmoid", "--kind", "head", "--kind", "lifecycle"], "a head named 'sigmoid' already exists"),
    (["ok", "--dir", "no/such/dir"], "--dir no/such/dir is not a directory"),
])
def test_bad_input_is_refused_in_one_line(tmp_path, monkeypatch, cli_inproc, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert cli_inproc(["new-plugin", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganlab: error: ") and message in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_existing_directory_is_never_overwritten(tmp_path, cli_inproc, capsys):
    existing = tmp_path / "ganlab-mine"
    existing.mkdir()
    (existing / "precious.txt").write_text("keep me")
    assert cli_inproc(["new-plugin", "mine", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ganlab: error: {existing} already exists; remove it or choose another NAME or --dir "
                   "(nothing was written)"]
    assert [p.name for p in existing.iterdir()] == ["precious.txt"]
    assert (existing / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ganlab-mine"]


@pytest.mark.slow
def test_generated_tests_pass_once_installed(generated, installed):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, sorted(generated.iterdir()))],
        cwd=generated, env={**os.environ, **installed}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # 2 common tests per package + head 2, loss 3, architecture 3, dataset 2, metric 1, regularizer 1,
    # augmentation 1, optimizer 1; lifecycle 3 of its own; the multi-kind package: 2 common per component
    # kind + head 2, loss 3, regularizer 1, and its lifecycle's 3
    assert "48 passed" in done.stdout


@pytest.mark.slow
def test_generated_plugins_are_listed_and_light(installed, cli):
    done = cli(["components", "--json"], env=installed)
    assert done.returncode == 0, done.stderr
    listed = {(c["kind"], c["name"]): c["plugin"] for c in json.loads(done.stdout)}
    for kind, name in KINDS.items():
        if kind != "lifecycle":  # registers no component: it is in `ganlab plugins` below
            assert listed.get((kind, name)) == name
    for kind, name in PACK_NAMES.items():
        assert listed.get((kind, name)) == "my-pack"
    assert not [key for key in listed if key[1] == "my-pack" and key[0] != "head"]  # one name per component

    done = cli(["plugins", "--json"], env=installed)
    rows = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    for name in [*KINDS.values(), "my-pack"]:
        assert rows[name]["builtin"] is False and rows[name]["version"] == "0.1.0" and rows[name]["error"] is None
    assert {"plugin_options", "on_step_end", "register_heads"} <= set(rows["my-pack"]["hooks"])

    # registration modules must not import torch: `ganlab components` stays fast
    modules = ", ".join(f"ganlab_{name.replace('-', '_')}.plugin" for name in [*KINDS.values(), "my-pack"])
    probe = subprocess.run([sys.executable, "-c", f"import sys, {modules}; print('torch' in sys.modules)"],
                           env={**os.environ, **installed}, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "False", probe.stderr


def test_a_multi_kind_package_registers_each_component_from_one_module(generated):
    package = generated / "ganlab-my-pack"
    # (installing and testing the package may have left build/, *.egg-info and caches: not part of it)
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.parts[len(package.parts)] != "build"
                   and ".egg-info" not in str(p))
    assert files == ["README.md", "pyproject.toml", "src/ganlab_my_pack/__init__.py", "src/ganlab_my_pack/head.py",
                     "src/ganlab_my_pack/lifecycle.py", "src/ganlab_my_pack/loss.py", "src/ganlab_my_pack/plugin.py",
                     "src/ganlab_my_pack/regularizer.py", "tests/test_ganlab_my_pack_head.py",
                     "tests/test_ganlab_my_pack_lifecycle.py", "tests/test_ganlab_my_pack_loss.py",
                     "tests/test_ganlab_my_pack_regularizer.py"]
    for path in package.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    plugin = (package / "src" / "ganlab_my_pack" / "plugin.py").read_text()
    for hook in ("register_heads", "register_losses", "register_regularizers", "plugin_options", "on_step_end"):
        assert plugin.count(f"def {hook}(") == 1
    assert "ganlab_my_pack.impl" not in plugin
    for kind, name in PACK_NAMES.items():
        assert f'"{name}", _make_{kind},' in plugin
    assert 'NAME = "my-pack"' in plugin  # the lifecycle hooks' options: plugins.my-pack.*
    import tomllib

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["ganlab"] == {"my-pack": "ganlab_my_pack.plugin"}
    readme = (package / "README.md").read_text()
    for command in ("--head my-pack ", "--loss my-pack-loss ", "--reg my-pack-regularizer ",
                    "--set plugins.my-pack.enabled=true"):
        assert command in readme


def test_several_kinds_get_one_name_each(tmp_path, cli_inproc, capsys):
    """The first component kind takes NAME (a lifecycle part first has none), each other one NAME-KIND."""
    args = ["new-plugin", "my-kit", "--kind", "lifecycle", "--kind", "arch", "--kind", "metric", "--dir", str(tmp_path)]
    assert cli_inproc(args) == 0
    out = capsys.readouterr().out
    assert f"created {tmp_path / 'ganlab-my-kit'}/ with architecture 'my-kit', metric 'my-kit-metric' and " \
           "lifecycle hooks:" in out
    assert "src/ganlab_my_kit/lifecycle.py" in out and "ganlab plugins" in out
    plugin = (tmp_path / "ganlab-my-kit" / "src" / "ganlab_my_kit" / "plugin.py").read_text()
    assert '"my-kit", _make_architecture,' in plugin and '"my-kit-metric", _make_metric,' in plugin
    # the metric's keys and the lifecycle's carry their own names
    package = tmp_path / "ganlab-my-kit"
    assert '"my-kit-metric.mean_gap"' in (package / "src" / "ganlab_my_kit" / "metric.py").read_text()
    lifecycle_test = (package / "tests" / "test_ganlab_my_kit_lifecycle.py").read_text()
    assert "sets=[\"plugins.my-kit.enabled=true\"" in lifecycle_test


@pytest.mark.slow
def test_a_generated_head_and_lifecycle_package_trains_through_run_plugin(tmp_path, workdir, mlflow_client,
                                                                          monkeypatch):
    """``ganlab run --plugin MODULE`` with every component of a several-kind package, recorded."""
    from ganlab.cli.app import main

    assert main(["new-plugin", "my-duo", "--kind", "head", "--kind", "loss", "--kind", "regularizer",
                 "--kind", "lifecycle", "--dir", str(tmp_path)]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "ganlab-my-duo" / "src"))
    done = run_in_process(["run", "--plugin", "ganlab_my_duo.plugin", *TINY, "--dataset", "ring8",
                           "--set", "arch.hidden_scale=0.125", "--device", "cpu", "--head", "my-duo",
                           "--loss", "my-duo-loss", "--reg", "my-duo-regularizer"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["head.name"] == "my-duo" and run.data.params["loss.name"] == "my-duo-loss"
    assert run.data.params["reg"] == "my-duo-regularizer" and "loss.d.my-duo-regularizer" in run.data.metrics
    for section in ("head", "loss"):
        assert run.data.tags[f"ganlab.{section}.plugin"] == "ganlab_my_duo.plugin"
    assert not [key for key in run.data.metrics if key.endswith("loss_gap")]  # the hooks are opt-in


@pytest.mark.slow
def test_an_installed_several_kind_package_trains_with_its_hooks(installed, cli, workdir, mlflow_client):
    """Installed, the package is plugin my-pack: its hooks are enabled by that name beside its components."""
    done = cli(["run", *TINY, "--dataset", "ring8", "--set", "arch.hidden_scale=0.125", "--device", "cpu",
                "--head", "my-pack", "--loss", "my-pack-loss", "--reg", "my-pack-regularizer",
                "--set", "plugins.my-pack.enabled=true", "--set", "plugins.my-pack.every=2"],
               cwd=workdir, env=installed)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    assert {"my-pack.loss_gap", "loss.d.my-pack-regularizer"} <= set(run.data.metrics)
    for section in ("head", "loss"):
        assert run.data.tags[f"ganlab.{section}.plugin"] == "my-pack"
