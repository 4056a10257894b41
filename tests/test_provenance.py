"""Runs record which plugin gave every component they use, built-in or third-party.

Heads, losses, architectures, datasets and latents have always been tagged
``ganlab.<section>``, ``ganlab.<section>.plugin`` and ``ganlab.<section>.version``;
regularisers, augmentations, metrics and optimisers (several of a kind per run) are
tagged ``ganlab.<kind>.<name>.plugin`` and ``ganlab.<kind>.<name>.version``. The old
keys keep their values, so old runs still compare with new ones.
"""

from __future__ import annotations

import pytest

from conftest import TINY, run_in_process

#: the components of ``ganlab new-plugin my-parts`` with these kinds (the first is named after the plugin)
PARTS = {"regularizer": "my-parts", "metric": "my-parts-metric", "augmentation": "my-parts-augmentation",
         "optimizer": "my-parts-optimizer"}
PLUGIN = "ganlab_my_parts.plugin"  # a --plugin module is loaded under the name it was given


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """A third-party plugin with a regulariser, a metric, an augmentation and an optimiser, importable."""
    from ganlab.cli.app import main

    assert main(["new-plugin", "my-parts", *[a for kind in PARTS for a in ("--kind", kind)],
                 "--dir", str(tmp_path)]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "ganlab-my-parts" / "src"))
    return PLUGIN


def test_every_component_of_a_tracked_run_names_its_plugin(parts, workdir, mlflow_client):
    from ganlab import __version__

    done = run_in_process(["run", "--plugin", parts, *TINY, "--dataset", "ring8", "--set", "arch.hidden_scale=0.125",
                           "--device", "cpu", "--reg", "gp,my-parts", "--augment", "my-parts-augmentation",
                           "--optimizer-d", "my-parts-optimizer", "--set", "metrics=diagnostics,my-parts-metric"],
                          cwd=workdir)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    tags = run.data.tags

    # the keys runs had before, with the same values
    assert tags["ganlab.version"] == __version__
    sections = {"head": ("sigmoid", "heads"), "loss": ("nonsaturating", "objectives"),
                "arch": ("mlp", "architectures"), "dataset": ("ring8", "datasets"), "latent": ("gaussian", "latents")}
    for section, (name, plugin) in sections.items():
        assert (tags[f"ganlab.{section}"], tags[f"ganlab.{section}.plugin"]) == (name, plugin), section
        assert tags[f"ganlab.{section}.version"] == __version__

    # the components a run may use several of: built-in ones...
    for kind, name, plugin in (("regularizer", "gp", "regularizers"), ("metric", "diagnostics", "metrics"),
                               ("optimizer", "adam", "optimizers")):
        assert tags[f"ganlab.{kind}.{name}.plugin"] == plugin
        assert tags[f"ganlab.{kind}.{name}.version"] == __version__
    # ...and the third-party plugin's (a --plugin module has no distribution, so no version)
    for kind, name in PARTS.items():
        assert tags[f"ganlab.{kind}.{name}.plugin"] == PLUGIN, kind
        assert tags[f"ganlab.{kind}.{name}.version"] == "unknown"

    # nothing the run did not use is tagged (adam is G's optimiser, my-parts-optimizer D's)
    used = {f"ganlab.{section}.plugin" for section in sections} | {
        f"ganlab.{kind}.{name}.plugin" for kind, name in [*PARTS.items(), ("regularizer", "gp"),
                                                         ("metric", "diagnostics"), ("optimizer", "adam")]}
    assert {key for key in tags if key.endswith(".plugin")} == used


def test_metrics_auto_tags_the_metrics_that_apply(workdir, mlflow_client):
    done = run_in_process(["run", *TINY, "--dataset", "ring8", "--set", "arch.hidden_scale=0.125", "--device", "cpu"],
                          cwd=workdir)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    tagged = {key.split(".")[2] for key in run.data.tags if key.startswith("ganlab.metric.") and key.endswith(".plugin")}
    # the built-ins that apply to 2-D points with the default head (images and text metrics do not)
    assert "diagnostics" in tagged and not {"images", "text"} & tagged
    assert not [key for key in run.data.tags if key.startswith("ganlab.regularizer.")]  # no regulariser: none


def test_component_tags_add_keys_and_change_none(parts):
    """Without the components in use (a population's parent before this), the tags are the old ones."""
    from ganlab.config import ConfigBuilder
    from ganlab.record.tracker import component_tags, components_in_use
    from ganlab.testing import make_plugin_manager

    registry = make_plugin_manager(parts).registry
    config = ConfigBuilder().add_sets(["reg=r1,my-parts", "optimizer_g=sgd", "metrics=my-parts-metric"]).build(registry)
    sections = {"head": registry.get("head", "sigmoid"), "arch": registry.get("architecture", "mlp")}
    old = component_tags(sections)
    assert set(old) == {"ganlab.version", "ganlab.head", "ganlab.head.plugin", "ganlab.head.version",
                        "ganlab.arch", "ganlab.arch.plugin", "ganlab.arch.version"}
    used = components_in_use(registry, config)
    assert [(c.kind, c.name) for c in used] == [("regularizer", "r1"), ("regularizer", "my-parts"),
                                                ("metric", "my-parts-metric"), ("optimizer", "sgd"),
                                                ("optimizer", "adam")]
    new = component_tags(sections, used)
    assert {k: new[k] for k in old} == old
    assert new["ganlab.regularizer.my-parts.plugin"] == PLUGIN and new["ganlab.optimizer.sgd.plugin"] == "optimizers"
    # the metrics a run evaluates, when given, rather than the ones its configuration names
    assert [c.name for c in components_in_use(registry, config, ["diagnostics"]) if c.kind == "metric"] == ["diagnostics"]


def test_a_population_and_its_children_name_the_plugins_of_their_components(workdir, mlflow_client):
    done = run_in_process(["run", "--seeds", "0-1", *TINY, "--dataset", "ring8", "--set", "arch.hidden_scale=0.125",
                           "--device", "cpu", "--reg", "r1", "--set", "metrics=modes"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert len(runs) == 3  # the parent and one child per seed
    for run in runs:
        tags = run.data.tags
        assert tags["ganlab.head.plugin"] == "heads" and tags["ganlab.regularizer.r1.plugin"] == "regularizers"
        assert tags["ganlab.metric.modes.plugin"] == "metrics" and tags["ganlab.optimizer.adam.plugin"] == "optimizers"
