"""The hook compatibility policy of docs/plugins.md, checked against the real machinery.

* ``ganlab plugins`` shows the hook specification version;
* a plugin implementing hooks with fewer arguments than the specification (as a
  plugin written for an older ganlab would) receives exactly what it names;
* an implementation naming an argument the specification lacks is refused in
  one clear line (what removing an argument without deprecation would do);
* the deprecation mechanism the policy relies on (pluggy's warn_on_impl_args)
  works with ganlab's markers in the installed pluggy.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pluggy
import pytest

from conftest import TINY
from ganlab import HOOKSPEC_VERSION, PROJECT_NAME, hookimpl, hookspec

OLD_PLUGIN = '''
import json
from pathlib import Path

from ganlab import hookimpl

LOG = Path("calls.jsonl")


def note(**record):
    with LOG.open("a") as f:
        f.write(json.dumps(record) + "\\n")


@hookimpl
def on_run_start():
    note(hook="on_run_start")


@hookimpl
def on_step_end(step):
    note(hook="on_step_end", step=step)


@hookimpl
def on_evaluate(metrics):
    note(hook="on_evaluate", keys=sorted(metrics))


@hookimpl
def on_run_end(ctx):
    note(hook="on_run_end", step=ctx.step, steps=ctx.config.steps)
'''


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cwd for untracked runs, with torch on one thread (tiny nets; a shared 2-core CPU)."""
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def test_hookspec_version_has_major_and_minor():
    assert re.fullmatch(r"\d+\.\d+", HOOKSPEC_VERSION)


def test_plugins_command_shows_the_hookspec_version(cli_inproc, capsys):
    assert cli_inproc(["plugins"]) == 0
    assert f"hook specification {HOOKSPEC_VERSION}" in " ".join(capsys.readouterr().out.split())
    assert cli_inproc(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hookspec_version"] == HOOKSPEC_VERSION


def test_a_plugin_with_fewer_arguments_than_the_spec_still_works(rundir, cli_inproc, capsys):
    (rundir / "old_plugin.py").write_text(OLD_PLUGIN)
    code = cli_inproc(["run", *TINY, "--no-tracking", "--arch", "mlp", "--set", "arch.hidden_scale=0.125",
                       "--dataset", "ring8", "--set", "dataset.samples=200", "--set", "metrics=diagnostics",
                       "--plugin", "old_plugin.py"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "old_plugin" not in err  # no warning: every call succeeded
    calls = [json.loads(line) for line in (rundir / "calls.jsonl").read_text().splitlines()]
    assert calls[0] == {"hook": "on_run_start"}
    assert [c["step"] for c in calls if c["hook"] == "on_step_end"] == [1, 2, 3, 4]
    evaluations = [c for c in calls if c["hook"] == "on_evaluate"]
    assert len(evaluations) == 1 and "diag.p_real_real" in evaluations[0]["keys"]
    assert calls[-1] == {"hook": "on_run_end", "step": 4, "steps": 4}


def test_an_implementation_naming_an_unknown_argument_is_refused(rundir, cli_inproc, capsys, monkeypatch):
    (rundir / "too_new.py").write_text(
        "from ganlab import hookimpl\n\n@hookimpl\ndef on_step_end(ctx, step, losses, grad_norms):\n    pass\n")
    assert cli_inproc(["plugins", "--plugin", "too_new.py", "--json"]) == 0
    out = capsys.readouterr()
    row = next(p for p in json.loads(out.out)["plugins"] if p["name"] == "too_new")
    assert "invalid hook implementation" in row["error"] and "grad_norms" in row["error"]
    assert len([line for line in out.err.splitlines() if "too_new" in line]) == 1

    monkeypatch.setenv("GANLAB_STRICT_PLUGINS", "1")
    assert cli_inproc(["run", *TINY, "--no-tracking", "--plugin", "too_new.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganlab: error: plugin 'too_new'") and "grad_norms" in err[0]


def test_deprecating_an_argument_warns_plugins_that_still_use_it():
    """The policy's deprecation step: the spec keeps the argument and warns its users."""

    class Specs:
        @hookspec(warn_on_impl_args={"losses": DeprecationWarning("'losses' is deprecated; use ctx.losses")})
        def on_step_end(self, ctx, step, losses):
            """A future version of the hook, with ``losses`` on its way out."""

    class OldStyle:
        @hookimpl
        def on_step_end(self, step, losses):
            pass

    class NewStyle:
        @hookimpl
        def on_step_end(self, ctx, step):
            pass

    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(Specs)
    with pytest.warns(DeprecationWarning, match="'losses' is deprecated"):
        manager.register(OldStyle())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager.register(NewStyle())  # not naming the argument: no warning


def test_documented_policy_mentions_the_mechanism():
    text = (Path(__file__).resolve().parents[1] / "docs" / "compatibility.md").read_text(encoding="utf-8")
    policy = text[text.index("## Compatibility policy"):]
    for phrase in ("HOOKSPEC_VERSION", "Adding an argument to a hook is compatible", "deprecation period",
                   "warn_on_impl_args"):
        assert phrase in policy
