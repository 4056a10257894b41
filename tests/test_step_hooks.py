"""Hooks inside the training step (``on_after_d_step``, ``on_after_g_step``) and what a lifecycle
plugin records through its context (``ctx.log_metrics``), in single runs and in populations.

The plugins used are the examples printed in docs/plugins.md (weight clipping, a logged norm),
written out by the test, plus a recorder of the calls made here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_in_process

from ganlab import hookimpl

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
TINY = {"steps": 5, "batch_size": 16, "latent_dim": 4, "tracking": False, "metrics": "none", "eval_every": 0,
        "sample_every": 0, "device": "cpu", "dataset": {"name": "ring8"},
        "arch": {"name": "mlp", "hidden_scale": 0.0625}}


def doc_example(name: str, directory: Path) -> Path:
    """The ``# file: NAME`` block of docs/plugins.md, written into ``directory``."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"```python\n# file: {name}\n") + len("```python\n")
    path = directory / name
    path.write_text(text[start:text.index("```", start)], encoding="utf-8")
    return path


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    @hookimpl
    def on_after_d_step(self, ctx: Any, step: int, d_step: int, loss: Any) -> None:
        assert not loss.requires_grad
        self.seen.append((id(ctx), "d", step, d_step, ctx.step))

    @hookimpl
    def on_after_g_step(self, ctx: Any, step: int, loss: Any) -> None:
        self.seen.append((id(ctx), "g", step, ctx.step))

    @hookimpl
    def on_step_end(self, ctx: Any, step: int) -> None:
        self.seen.append((id(ctx), "end", step))


def _run(tmp_path: Path, **settings: Any) -> tuple[list[Any], Calls]:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins
    from ganlab.train.population.launch import run_population
    from ganlab.train.runner import run

    plugins = load_plugins([str(doc_example("weight_clip.py", tmp_path))])
    calls = Calls()
    plugins.register_object(calls, "test.calls")
    config = ConfigBuilder().add_mapping({**TINY, **settings}, "test").build(plugins.registry)
    if config.seeds:
        return run_population(config, plugins, progress=False), calls
    return [run(config, plugins, progress=False)], calls


@pytest.mark.parametrize("seeds", ["", "0-1"], ids=["single run", "population"])
def test_hooks_fire_inside_the_step_in_order_and_clipping_holds(tmp_path: Path, seeds: str) -> None:
    import torch

    contexts, calls = _run(tmp_path, d_steps=2, seeds=seeds)
    for ctx in contexts:
        mine = [c[1:] for c in calls.seen if c[0] == id(ctx)]
        expected = []
        for step in range(1, 6):  # ctx.step still counts the steps before this one
            expected += [("d", step, 0, step - 1), ("d", step, 1, step - 1), ("g", step, step - 1), ("end", step)]
        assert mine == expected
        weights = torch.cat([w.detach().flatten() for w in ctx.discriminator.parameters()])
        assert float(weights.abs().max()) <= 0.01 + 1e-7, "clipped after every D update"
        assert float(weights.abs().max()) > 0.009, "the clip is reached: the test would see it missing"


def test_without_clipping_the_weights_leave_the_box(tmp_path: Path) -> None:
    import torch

    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins
    from ganlab.train.runner import run

    plugins = load_plugins([])
    ctx = run(ConfigBuilder().add_mapping(TINY, "test").build(plugins.registry), plugins, progress=False)
    assert float(torch.cat([w.detach().flatten() for w in ctx.discriminator.parameters()]).abs().max()) > 0.05


@pytest.mark.parametrize("seeds", [[], ["--seeds", "0-1"]], ids=["single run", "population"])
def test_log_metrics_records_into_the_run(workdir: Path, mlflow_client: Any, seeds: list[str]) -> None:
    plugin = doc_example("d_norm_log.py", workdir)
    done = run_in_process(["run", "--dataset", "ring8", "--steps", "5", "--batch-size", "16", "--latent-dim", "4",
                           "--set", "arch.hidden_scale=0.0625", "--log-every", "2", "--sample-every", "0",
                           "--eval-every", "0", "--set", "metrics=none", "--device", "cpu", "--plugin", str(plugin),
                           *seeds], cwd=workdir)
    assert done.returncode == 0, done.stderr
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    trained = [r for r in runs if "loss.d" in r.data.metrics]
    assert len(trained) == (2 if seeds else 1)
    for run in trained:
        history = mlflow_client.get_metric_history(run.info.run_id, "d_norm_log.l2")
        assert sorted(m.step for m in history) == [2, 4, 5]
        assert all(m.value > 0 for m in history)
    if seeds:
        assert len({r.data.metrics["d_norm_log.l2"] for r in trained}) == 2, "each replica its own value"


def test_log_metrics_without_tracking_records_nothing_and_does_not_fail(tmp_path: Path) -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins
    from ganlab.train.runner import run

    plugins = load_plugins([str(doc_example("d_norm_log.py", tmp_path))])
    ctx = run(ConfigBuilder().add_mapping(TINY, "test").build(plugins.registry), plugins, progress=False)
    assert ctx.step == 5 and ctx.recorder is None
