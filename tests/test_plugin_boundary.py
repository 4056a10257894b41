"""What plugins hand over is checked at the boundary, once, before training: a dataset's samples (dtype,
shape, finiteness, the range of images), a head's outputs (shapes, distributions), a metric's values
(named numbers); a module that registers nothing and a package without an entry point are named.
A refusal is one line naming the component and its plugin, exit 2, and no MLflow run is created.
The same checks are assertions in ``ganlab.testing`` for a plugin's own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY, run_in_process

DATASET = '''
import torch
from ganlab import hookimpl
from ganlab.data import TensorData


class Points:
    def load(self, request):
        g = torch.Generator().manual_seed(0)
        x = {points}
        return TensorData(x=x)


@hookimpl
def register_datasets(register):
    register("points", Points, summary="test points")
'''

HEAD = '''
import torch
from ganlab import hookimpl
from ganlab_plugins.heads.torch_heads import SigmoidHead


class Broken(SigmoidHead):
    def real_loss(self, logits):
        return {real_loss}


@hookimpl
def register_heads(register):
    register("broken", Broken, summary="a sigmoid head whose real_loss has the wrong shape")
'''

METRIC = '''
from ganlab import hookimpl


class Chatty:
    def applies_to(self, ctx):
        return True

    def evaluate(self, ectx):
        return {{"chatty.value": {value}}}


@hookimpl
def register_metrics(register):
    register("chatty", Chatty, summary="a metric returning a fixed value")
'''


def runs(client: Any) -> list[Any]:
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.mark.parametrize("points, said", [
    ("torch.randn(256, 2, generator=g, dtype=torch.float64)", "training samples are float64; ganlab's networks take "
                                                              "float32: return x.float()"),
    ("torch.randint(-3, 3, (256, 2), generator=g)", "training samples are int64"),
    ("torch.full((256, 2), float('nan'))", "training samples hold NaN or infinite values"),
    ("torch.rand(256, 1, 8, 8, generator=g) * 255", "training images must lie in [-1, 1]"),
    ("torch.randn(256)", "training samples must be (N, *shape)"),
], ids=["float64", "int64", "nan", "images-0-255", "one-dimensional"])
def test_a_dataset_breaking_the_contract_is_refused_before_any_run(workdir: Path, mlflow_client: Any, points: str,
                                                                    said: str) -> None:
    (workdir / "points.py").write_text(DATASET.format(points=points))
    done = run_in_process(["run", "--plugin", "points.py", "--dataset", "points", "--arch", "mlp", *TINY], workdir)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "dataset 'points' (plugin 'points')" in lines[-1] and said in lines[-1], lines[-1]
    assert runs(mlflow_client) == []


def test_vectors_outside_minus_one_to_one_train_since_they_are_unscaled_by_design(workdir: Path) -> None:
    (workdir / "points.py").write_text(DATASET.format(points="4 * torch.randn(256, 2, generator=g)"))
    done = run_in_process(["run", "--plugin", "points.py", "--dataset", "points", "--arch", "mlp", *TINY], workdir)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("real_loss, said", [
    ("super().real_loss(logits)[:, None]", "real_loss() returned shape [3, 1]"),
    ("super().real_loss(logits).mean()", "real_loss() returned shape []"),
], ids=["column", "scalar"])
def test_a_head_whose_loss_has_the_wrong_shape_is_refused(workdir: Path, mlflow_client: Any, real_loss: str,
                                                          said: str) -> None:
    (workdir / "broken.py").write_text(HEAD.format(real_loss=real_loss))
    done = run_in_process(["run", "--plugin", "broken.py", "--head", "broken", "--dataset", "ring8", "--arch", "mlp",
                           *TINY], workdir)
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "head 'broken' (plugin 'broken') breaks the head contract" in line, done.stderr
    assert said in line and "(B,)" in line
    assert runs(mlflow_client) == []


def test_a_metric_returning_a_non_number_is_named_and_the_run_goes_on(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "chatty.py").write_text(METRIC.format(value='"high"'))
    done = run_in_process(["run", "--plugin", "chatty.py", "--dataset", "ring8", "--arch", "mlp", *TINY,
                           "--set", "metrics=chatty"], workdir)
    assert done.returncode == 0, done.stderr
    assert ("metric 'chatty' (plugin 'chatty') evaluate() returned str for 'chatty.value', not a number"
            in done.stderr)
    [run] = runs(mlflow_client)
    assert run.info.status == "FINISHED" and "chatty.value" not in run.data.metrics


def test_a_module_whose_hooks_lack_hookimpl_is_said_to_add_nothing(workdir: Path) -> None:
    (workdir / "forgot.py").write_text("def register_heads(register):\n    pass\n")
    done = run_in_process(["plugins", "--plugin", "forgot.py"], workdir)
    assert done.returncode == 0
    assert ("plugin 'forgot' (forgot.py) implements no ganlab hook, so it adds nothing: its register_heads lack "
            "@hookimpl") in done.stderr


def test_an_installed_package_without_a_ganlab_entry_point_is_named(workdir: Path, monkeypatch: Any) -> None:
    site = workdir / "site"
    info = site / "ganlab_spiral-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ganlab-spiral\nVersion: 0.1\n"
                                   "Requires-Dist: ganlab>=0.1\nRequires-Dist: torch\n")
    monkeypatch.syspath_prepend(str(site))
    done = run_in_process(["plugins"], workdir)
    assert "package 'ganlab-spiral' requires ganlab but declares no 'ganlab' entry point" in done.stderr
    (info / "entry_points.txt").write_text("[ganlab]\nspiral = ganlab_spiral\n")
    from ganlab.plugins import packages_without_entry_point

    assert "ganlab-spiral" not in packages_without_entry_point()


def test_the_same_checks_are_assertions_for_a_plugins_own_tests() -> None:
    from ganlab.data import TensorData
    from ganlab.testing import assert_dataset_contract, assert_head_contract, assert_metric_values
    from ganlab_plugins.heads.torch_heads import SigmoidHead, SparsemaxHead

    assert_head_contract(SparsemaxHead(), num_classes=3)
    assert_dataset_contract(TensorData(x=torch.zeros(4, 1, 2, 2)))
    assert_metric_values({"m.a": 1, "m.b": torch.tensor(0.5), "m.c": float("nan")})

    class Column(SigmoidHead):
        def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
            return super().fake_loss(logits)[:, None]

    with pytest.raises(AssertionError, match=r"fake_loss\(\) returned shape \[3, 1\]"):
        assert_head_contract(Column())
    with pytest.raises(AssertionError, match="float64"):
        assert_dataset_contract(TensorData(x=torch.zeros(4, 2, dtype=torch.float64)))
    with pytest.raises(AssertionError, match="inf"):
        assert_metric_values({"m.a": float("inf")})
