"""ganlab.testing: isolated plugin managers, tiny datasets and run_steps."""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest

from ganlab import hookimpl
from ganlab.errors import ConfigError, PluginError
from ganlab.testing import make_plugin_manager, run_steps, tiny_image_data, tiny_vector_data

SMALL_MLP = {"name": "mlp", "hidden_scale": 0.125}


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def head_plugin(name: str = "my_heads") -> types.ModuleType:
    def register_heads(register):
        register("fake-head", lambda: object(), summary="not a real head")

    return plugin_module(name, register_heads=register_heads)


# ---- make_plugin_manager ---------------------------------------------------------------------
def test_manager_holds_only_the_named_plugins(tmp_path, monkeypatch):
    other = tmp_path / "other_plugin.py"
    other.write_text("from ganlab import hookimpl\n\n@hookimpl\ndef register_heads(register):\n"
                     "    register('from-env', object)\n")
    monkeypatch.setenv("GANLAB_PLUGINS", str(other))  # ignored: a test sees only what it names
    registry = make_plugin_manager(head_plugin(), builtins=False, tiny_data=False).registry
    # builtins=False keeps the optimisers alone: every run needs one
    assert [(c.kind, c.name) for c in registry if c.kind != "optimizer"] == [("head", "fake-head")]
    assert registry.names("optimizer") == ["adam", "adamw", "rmsprop", "sgd"]
    component = registry.get("head", "fake-head")
    assert component.provenance.plugin == "my_heads" and not component.provenance.builtin


def test_builtins_all_some_or_none():
    everything = make_plugin_manager().registry
    assert {"sigmoid", "entmax"} <= set(everything.names("head")) and "mlp" in everything.names("architecture")
    assert {"tiny-images", "tiny-vectors"} <= set(everything.names("dataset"))
    assert everything.get("head", "sigmoid").provenance.builtin
    assert everything.get("head", "sigmoid").provenance.distribution == "ganlab"

    heads_only = make_plugin_manager(builtins={"heads"}, tiny_data=False).registry
    assert heads_only.names("architecture") == [] and "softmax" in heads_only.names("head")
    with pytest.raises(PluginError, match="no built-in plugin named nope"):
        make_plugin_manager(builtins={"heads", "nope"})


def test_strict_manager_raises_where_ganlab_would_warn(capsys):
    def register_heads(register):
        raise RuntimeError("boom")

    broken = plugin_module("broken", register_heads=register_heads)
    with pytest.raises(PluginError, match="plugin 'broken'.*raised in register_heads: RuntimeError: boom"):
        make_plugin_manager(broken, builtins=False).registry  # noqa: B018
    lenient = make_plugin_manager(broken, builtins=False, tiny_data=False, strict=False)
    assert [c for c in lenient.registry if c.kind != "optimizer"] == []
    assert "raised in register_heads" in capsys.readouterr().err


def test_unknown_hook_is_an_error_in_strict_mode():
    def register_head(register):  # typo: the hook is register_heads
        pass

    with pytest.raises(PluginError, match="unknown hook 'register_head'; did you mean 'register_heads'"):
        make_plugin_manager(plugin_module("typo", register_head=register_head), builtins=False)


def test_two_instances_of_one_plugin_class_get_distinct_names():
    class Counter:
        @hookimpl
        def on_run_end(self, status):
            pass

    manager = make_plugin_manager(Counter(), Counter(), builtins=False, tiny_data=False)
    assert {"Counter", "Counter-2"} <= set(manager.infos)


# ---- tiny datasets --------------------------------------------------------------------------------
def test_tiny_image_data():
    import torch

    data = tiny_image_data(20, (3, 4, 4), classes=5, seed=1)
    assert data.shape == (3, 4, 4) and len(data) == 20 and data.num_classes == 5
    assert data.x.dtype == torch.float32 and data.x.abs().max() <= 1
    assert sorted(set(data.y.tolist())) == [0, 1, 2, 3, 4]
    assert torch.equal(data.x, tiny_image_data(20, (3, 4, 4), classes=5, seed=1).x)
    assert not torch.equal(data.x, tiny_image_data(20, (3, 4, 4), classes=5, seed=2).x)
    assert tiny_image_data(8).y is None


def test_tiny_vector_data():
    data = tiny_vector_data(30, dim=3, classes=3)
    assert data.shape == (3,) and len(data) == 30 and data.x.abs().max() <= 1
    assert sorted(set(data.y.tolist())) == [0, 1, 2]
    assert tiny_vector_data(10).y is None


# ---- run_steps ------------------------------------------------------------------------------------
def test_run_steps_records_losses_per_step_and_metrics_per_evaluation(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    recorded = run_steps(arch=SMALL_MLP, steps=4, eval_every=2, metrics="diagnostics")
    assert recorded["step"] == [1.0, 2.0, 3.0, 4.0]
    assert len(recorded["loss.d"]) == len(recorded["loss.g"]) == 4
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])
    assert recorded["eval_step"] == [2.0, 4.0] and len(recorded["diag.p_real_real"]) == 2
    assert torch.get_num_threads() == threads  # restored after the run
    assert list(Path.cwd().iterdir()) == []  # tracking is off: no MLflow store written


def test_run_steps_really_trains_and_is_seeded():
    first = run_steps(arch=SMALL_MLP, dataset="tiny-vectors", steps=3, metrics="none", seed=1)
    again = run_steps(arch=SMALL_MLP, dataset="tiny-vectors", steps=3, metrics="none", seed=1)
    other = run_steps(arch=SMALL_MLP, dataset="tiny-vectors", steps=3, metrics="none", seed=2)
    assert first == again
    assert first["loss.d"] != other["loss.d"]
    # different components give different losses: the arguments reach the run
    entmax = run_steps(head={"name": "entmax", "alpha": 1.25}, arch=SMALL_MLP, dataset="tiny-vectors", steps=3,
                       metrics="none", seed=1)
    assert entmax["loss.d"] != first["loss.d"]


def test_run_steps_on_given_data_with_sets_and_plugins():
    seen = []

    class Watcher:
        @hookimpl
        def on_run_start(self, ctx):
            seen.append((ctx.data_shape, ctx.num_classes, ctx.config.batch_size, ctx.config.options_of("arch")))

    data = tiny_vector_data(40, dim=3, classes=2)
    run_steps(dataset=data, arch="mlp", sets=["arch.hidden_scale=0.125", "batch_size=8"], steps=1,
              plugins=[Watcher()], metrics="none")
    (shape, classes, batch, arch_options), = seen
    assert (shape, classes, batch) == ((3,), 1, 8)
    assert arch_options["hidden_scale"] == 0.125 and arch_options["dropout"] == 0.3  # the set one, and a default


def test_run_steps_refuses_bad_options_by_name():
    with pytest.raises(ConfigError, match="unknown option 'head.alpha'"):
        run_steps(head={"name": "sigmoid", "alpha": 2.0}, steps=1)
    with pytest.raises(ConfigError, match="unknown setting 'stepz'"):
        run_steps(stepz=3)


def test_a_failing_lifecycle_plugin_fails_the_test():
    class Broken:
        @hookimpl
        def on_step_end(self, step):
            raise ValueError("broken on purpose")

    with pytest.raises(PluginError, match="raised in on_step_end: ValueError: broken on purpose"):
        run_steps(arch=SMALL_MLP, steps=2, plugins=[Broken()], metrics="none")
