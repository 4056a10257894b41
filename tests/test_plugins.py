"""The plugin manager: discovery, provenance, isolation of broken plugins, strict mode."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from conftest import TINY, run_cli, run_in_process
from ganlab.errors import ComponentError, GanlabError, PluginError
from ganlab.plugins import PluginManager

HERE = Path(__file__).parent / "plugins_for_tests"


def manager(*extra: str, strict_named: bool = False) -> tuple[PluginManager, list[str]]:
    """Plugins loaded as with --plugin; by default leniently, as ``ganlab plugins`` does, so that the
    isolation of a broken plugin can be seen (a command that runs refuses it: test_plugin_reliability.py)."""
    warnings: list[str] = []
    pm = PluginManager(warn=warnings.append, strict_named=strict_named)
    return pm.load([str(HERE / e) if e.endswith(".py") else e for e in extra]), warnings


def test_builtins_are_loaded_from_the_core_list_as_the_ganlab_distribution():
    pm, warnings = manager()
    assert not warnings
    for name in ("heads", "objectives", "architectures", "datasets", "metrics"):
        info = pm.infos[name]
        assert info.builtin and info.distribution == "ganlab" and info.source == "built-in"
    sigmoid = pm.registry.get("head", "sigmoid")
    assert sigmoid.provenance.plugin == "heads" and sigmoid.provenance.builtin


def test_local_plugin_file_contributes_a_component_with_provenance():
    pm, warnings = manager("extra_head.py")
    assert not warnings
    component = pm.registry.get("head", "half-sigmoid")
    assert component.provenance.plugin == "extra_head" and not component.provenance.builtin
    head = component.create({"temperature": "4"})
    assert head.temperature == 4.0


def test_broken_import_is_reported_and_others_keep_working():
    pm, warnings = manager("missing_dependency.py", "extra_head.py")
    assert len(warnings) == 1
    assert "missing_dependency" in warnings[0] and "this_module_does_not_exist" in warnings[0]
    assert "\n" not in warnings[0]
    assert pm.registry.get("head", "half-sigmoid")
    assert pm.registry.get("head", "sigmoid")


@pytest.mark.parametrize(
    "plugin, cause",
    [
        ("raises_in_hook.py", "boom while registering"),
        ("register_head_singular.py", "unknown hook 'register_head'; did you mean 'register_heads'?"),
        ("bad_signature.py", "extra_argument"),
    ],
)
def test_faulty_plugin_is_isolated(plugin: str, cause: str):
    pm, warnings = manager(plugin)
    registry = pm.registry
    assert len(warnings) == 1 and cause in warnings[0] and plugin[:-3] in warnings[0]
    assert "never" not in registry.names("head")
    assert "sigmoid" in registry.names("head")
    assert pm.infos[plugin[:-3]].error


def test_strict_mode_makes_a_broken_plugin_fatal(monkeypatch):
    monkeypatch.setenv("GANLAB_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="missing_dependency"):
        manager("missing_dependency.py")


def test_disabled_plugins_are_never_imported(monkeypatch):
    monkeypatch.setenv("GANLAB_DISABLE_PLUGINS", "missing_dependency, heads")
    pm, warnings = manager("missing_dependency.py")
    assert not warnings  # blocked before import: no import error to report
    assert pm.infos["missing_dependency"].disabled and pm.infos["heads"].disabled
    assert "sigmoid" not in pm.registry.names("head")


def test_environment_variable_adds_plugins(monkeypatch):
    monkeypatch.setenv("GANLAB_PLUGINS", str(HERE / "extra_head.py"))
    pm, _ = manager()
    assert "half-sigmoid" in pm.registry.names("head")


def test_duplicate_component_names_both_plugins():
    pm, _ = manager("duplicate_sigmoid.py")
    with pytest.raises(GanlabError, match="head 'sigmoid' is registered twice: by plugin 'heads' and by plugin 'duplicate_sigmoid'"):
        pm.registry  # noqa: B018


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    pm, _ = manager()
    with pytest.raises(GanlabError) as info:
        pm.registry.get("head", "entmaxx")
    message = str(info.value)
    assert "did you mean 'entmax'?" in message
    for name in ("sigmoid", "softmax", "sparsemax", "entmax"):
        assert name in message


def write_distribution(site: Path, name: str, modules: dict[str, str], version: str = "1.2.3") -> None:
    """A separately 'installed' distribution in ``site``: dist-info metadata plus modules, no pip.

    ``modules`` maps each entry point's name (also its module's name) to the module's source.
    Put ``site`` on the path with :func:`on_path`.
    """
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text("[ganlab]\n" + "".join(f"{m} = {m}\n" for m in modules))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


def on_path(site: Path | str) -> dict[str, str]:
    """The environment of a subprocess that sees ``site`` (in front of any PYTHONPATH already set)."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}


def _write_third_party(site: Path) -> None:
    dist = site / "thirdparty_gan-1.2.3.dist-info"
    source = (HERE / "extra_head.py").read_text().replace('"half-sigmoid"', '"thirdparty-sigmoid"')
    write_distribution(site, "thirdparty-gan", {"thirdparty_gan_plugin": source})
    # the entry point's name differs from its module's here
    (dist / "entry_points.txt").write_text("[ganlab]\nthirdparty = thirdparty_gan_plugin\n")


def test_third_party_distribution_is_discovered_through_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _write_third_party(site)
    monkeypatch.syspath_prepend(str(site))
    pm, warnings = manager()
    assert not warnings
    info = pm.infos["thirdparty"]
    assert (info.distribution, info.version, info.builtin) == ("thirdparty-gan", "1.2.3", False)
    component = pm.registry.get("head", "thirdparty-sigmoid")
    assert component.provenance.distribution == "thirdparty-gan"


def test_third_party_plugin_through_the_real_cli(tmp_path, workdir, mlflow_client, monkeypatch):
    site = tmp_path / "site"
    _write_third_party(site)
    env = on_path(site)
    listed = run_cli(["plugins", "--json"], cwd=workdir, env=env)  # a new process finds it on its path
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["thirdparty"]["builtin"] is False and plugins["thirdparty"]["version"] == "1.2.3"
    assert plugins["thirdparty"]["hooks"] == ["register_heads"]
    assert plugins["heads"]["builtin"] is True

    monkeypatch.syspath_prepend(str(site))  # the run in this process: it records what the plugin registered
    ran = run_in_process(["run", "--head", "thirdparty-sigmoid", *TINY], workdir)
    assert ran.returncode == 0, ran.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.data.params["head.name"] == "thirdparty-sigmoid"
    assert run.data.params["head.temperature"] == "2.0"
    assert run.data.tags["ganlab.head.plugin"] == "thirdparty"
    assert run.data.tags["ganlab.head.version"] == "1.2.3"


def test_plugins_json_reports_load_errors(workdir):
    out = run_in_process(["plugins", "--json", "--plugin", str(HERE / "missing_dependency.py")], workdir)
    assert out.returncode == 0
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert "ModuleNotFoundError" in plugins["missing_dependency"]["error"]
    assert plugins["heads"]["error"] is None


def test_register_commands_adds_a_cli_command(tmp_path, workdir):
    plugin = tmp_path / "hello_cmd.py"
    plugin.write_text(textwrap.dedent('''
        from ganlab import hookimpl

        @hookimpl
        def register_commands(app):
            @app.command("hello")
            def hello(name: str = "world"):
                """Say hello."""
                print(f"hello {name}")
    '''))
    out = run_in_process(["hello", "--name", "gan", "--plugin", str(plugin)], workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello gan"


def test_a_plugin_file_is_imported_once_per_process(tmp_path, workdir):
    # the CLI loads plugins for its commands and again for the run: the file's import-time
    # code must run once, so that the module state its hooks see is the one it set up
    log = tmp_path / "imports.log"
    plugin = tmp_path / "counting.py"
    plugin.write_text(textwrap.dedent(f'''
        from ganlab import hookimpl

        with open({str(log)!r}, "a") as handle:
            handle.write("imported\\n")
        STARTED = []

        @hookimpl
        def on_run_start(ctx):
            STARTED.append(ctx.step)

        @hookimpl
        def on_run_end(ctx, status, error):
            with open({str(log)!r}, "a") as handle:
                handle.write(f"run ended, started {{len(STARTED)}} time(s)\\n")
    '''))
    out = run_in_process(["run", "--plugin", str(plugin), "--no-tracking", *TINY], workdir)
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines() == ["imported", "run ended, started 1 time(s)"]


# ---- built-ins from the core list; "module:attr" factories --------------------------------------------
def test_builtins_need_no_entry_point_metadata():
    # ganlab's own distribution declares no `ganlab` entry points: the built-ins come from DEFAULT_PLUGINS
    import importlib.metadata as metadata
    import tomllib

    from ganlab.plugins import DEFAULT_PLUGINS, ENTRY_POINT_GROUP

    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert ENTRY_POINT_GROUP not in config["project"].get("entry-points", {})
    assert not [ep for ep in metadata.distribution("ganlab").entry_points if ep.group == ENTRY_POINT_GROUP]
    pm, warnings = manager()
    assert not warnings
    assert [pm.infos[m.rpartition(".")[2]].module for m in DEFAULT_PLUGINS] == list(DEFAULT_PLUGINS)
    assert pm.registry.get("architecture", "dcgan").provenance.plugin == "architectures"


def test_a_factory_string_is_imported_only_when_the_component_is_built():
    pm, warnings = manager("unresolvable_factory.py")
    assert not warnings  # listing resolves nothing, so nothing is wrong yet
    component = pm.registry.get("head", "unresolvable")
    assert component.factory == "ganlab_plugins.heads.torch_heads:NoSuchHead"
    with pytest.raises(ComponentError) as info:
        component.create()
    message = str(info.value)
    assert "\n" not in message
    for fragment in ("head 'unresolvable'", "plugin 'unresolvable_factory'",
                     "'ganlab_plugins.heads.torch_heads:NoSuchHead'", "AttributeError"):
        assert fragment in message
    with pytest.raises(ComponentError, match="'ganlab_no_such_module:Head'.*ModuleNotFoundError"):
        pm.registry.get("head", "missing-module").create()
    assert type(pm.registry.get("head", "sigmoid").create()).__name__ == "SigmoidHead"


def test_a_malformed_factory_string_is_the_plugins_fault(tmp_path):
    plugin = tmp_path / "malformed_factory.py"
    plugin.write_text(textwrap.dedent('''
        from ganlab import hookimpl

        @hookimpl
        def register_heads(register):
            register("dotted-only", "ganlab_plugins.heads.torch_heads.SigmoidHead")
    '''))
    pm, warnings = manager(str(plugin))
    assert "dotted-only" not in pm.registry.names("head")
    assert len(warnings) == 1
    assert "malformed_factory" in warnings[0] and "neither callable nor a 'module:attr' string" in warnings[0]


def test_an_unresolvable_factory_string_through_the_cli(workdir, mlflow_client):
    plugin = str(HERE / "unresolvable_factory.py")
    listed = run_in_process(["components", "head", "--json", "--plugin", plugin], workdir)
    assert listed.returncode == 0, listed.stderr
    assert "unresolvable" in {c["name"] for c in json.loads(listed.stdout)}

    ran = run_in_process(["run", "--head", "unresolvable", "--plugin", plugin, *TINY], workdir)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines() == [
        "ganlab: error: head 'unresolvable' (plugin 'unresolvable_factory') has a factory "
        "'ganlab_plugins.heads.torch_heads:NoSuchHead' that cannot be loaded: AttributeError: "
        "module 'ganlab_plugins.heads.torch_heads' has no attribute 'NoSuchHead'"
    ]
    experiment = mlflow_client.get_experiment_by_name("ganlab")
    runs = mlflow_client.search_runs([experiment.experiment_id]) if experiment else []
    assert "RUNNING" not in [r.info.status for r in runs]


def test_disabling_a_builtin_through_the_cli(workdir):
    env = {"GANLAB_DISABLE_PLUGINS": "heads"}
    ran = run_in_process(["run", "--head", "sigmoid", "--dry-run"], workdir, env=env)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == ["ganlab: error: unknown head 'sigmoid' (valid: none registered)"]
    listed = run_in_process(["plugins", "--json"], workdir, env=env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["heads"]["disabled"] is True and plugins["heads"]["hooks"] == []
    assert plugins["objectives"]["disabled"] is False and plugins["objectives"]["builtin"] is True
