"""Untracked runs with ``--run-dir``: checkpoints without MLflow, and ``ganlab resume DIR``;
a plugin's own state (``plugin_state``/``restore_plugin_state``) resumes with them.

The headline test interrupts a real untracked ``ganlab run`` process with SIGINT once it
has checkpointed, resumes it with ``ganlab resume DIR``, and compares its final networks
tensor by tensor with an untracked run that was never interrupted.
"""

from __future__ import annotations

import collections
import signal
from pathlib import Path

import pytest
from conftest import run_in_process

from ganlab import hookimpl
from test_resume import SLOW, ganlab, wait_for
from test_step_hooks import doc_example

RUN = ["--steps", "24", "--batch-size", "16", "--latent-dim", "4", "--dataset", "ring8",
       "--set", "arch.hidden_scale=0.0625", "--sample-every", "0", "--eval-every", "0", "--set", "metrics=none",
       "--device", "cpu", "--deterministic", "--no-tracking", "--checkpoint-every", "4", "--ema", "0.9",
       "--plugin", SLOW]


@pytest.mark.slow
def test_an_interrupted_untracked_run_resumes_from_its_directory_bitwise(tmp_path: Path) -> None:
    import torch

    counter = str(doc_example("step_counter.py", tmp_path))  # a plugin's own state resumes too
    interrupted = ganlab(["run", *RUN, "--run-dir", "stopped", "--plugin", counter], tmp_path, sleep=0.05)
    reference = ganlab(["run", *RUN, "--run-dir", "whole", "--plugin", counter], tmp_path)
    wait_for("stopped/checkpoints/step-00000004.pt", tmp_path, interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=240)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "checkpoint stopped/checkpoints/step-" in err
    assert not (tmp_path / "stopped" / "generator.pt").exists(), "the networks are written when the run finishes"
    assert not (tmp_path / "mlruns").exists(), "nothing went to MLflow"

    resumed = ganlab(["resume", "stopped", "--plugin", SLOW, "--plugin", counter], tmp_path)
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    assert "resuming at step" in err
    assert "step_counter: 24 generator updates" in out, "the count went on from the checkpoint's"
    out, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err
    assert "step_counter: 24 generator updates" in out
    for name in ("generator.pt", "generator_trained.pt", "discriminator.pt"):
        mine = torch.load(tmp_path / "stopped" / name, weights_only=True)
        theirs = torch.load(tmp_path / "whole" / name, weights_only=True)
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), f"{name}:{key}"
    assert "run_dir = " in (tmp_path / "stopped" / "config.toml").read_text()


@pytest.mark.parametrize(("args", "says"), [
    (["--run-dir", "d"], "run_dir is for untracked runs"),
    (["--run-dir", "d", "--no-tracking", "--seeds", "0-1"], "a population (--seeds) needs tracking"),
])
def test_run_dir_refusals(tmp_path: Path, args: list[str], says: str) -> None:
    done = run_in_process(["run", "--steps", "1", *args], tmp_path)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_a_used_directory_is_not_overwritten_and_a_finished_run_needs_more_steps(tmp_path: Path) -> None:
    args = ["run", "--steps", "2", "--batch-size", "8", "--dataset", "ring8", "--set", "arch.hidden_scale=0.0625",
            "--sample-every", "0", "--eval-every", "0", "--set", "metrics=none", "--no-tracking", "--run-dir", "d"]
    assert run_in_process(args, tmp_path).returncode == 0
    before = (tmp_path / "d" / "checkpoints" / "step-00000002.pt").read_bytes()
    again = run_in_process(args, tmp_path)
    assert again.returncode == 2 and "already holds another run's checkpoints" in again.stderr
    assert (tmp_path / "d" / "checkpoints" / "step-00000002.pt").read_bytes() == before
    done = run_in_process(["resume", "d"], tmp_path)
    assert done.returncode == 2 and "pass --steps N with N > 2" in done.stderr
    longer = run_in_process(["resume", "d", "--steps", "3"], tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert (tmp_path / "d" / "checkpoints" / "step-00000003.pt").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_in_process(["resume", "empty"], tmp_path)
    assert nothing.returncode == 2 and "holds no checkpoint" in nothing.stderr


Pair = collections.namedtuple("Pair", "a b")


class BadState:
    def __init__(self, state: object) -> None:
        self.state = state

    @hookimpl
    def plugin_state(self) -> object:
        return self.state


@pytest.mark.parametrize(("state", "says"), [
    ({"when": object()}, "gave a state a checkpoint cannot hold"),
    ({"pair": Pair(1, 2)}, "gave a state a checkpoint cannot hold"),  # a tuple subclass: refused by the loader
    ({"fine": [1, 2.0, "x", None]}, None),
])
def test_a_plugin_state_a_checkpoint_cannot_hold_is_refused(tmp_path: Path, state: object, says: str | None) -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.errors import PluginError
    from ganlab.plugins import load_plugins
    from ganlab.train.runner import run

    plugins = load_plugins([])
    plugins.register_object(BadState(state), "bad-state")
    config = ConfigBuilder().add_mapping({"steps": 2, "batch_size": 8, "dataset": {"name": "ring8"},
                                          "arch": {"name": "mlp", "hidden_scale": 0.0625}, "tracking": False,
                                          "run_dir": str(tmp_path / "d"), "metrics": "none", "sample_every": 0,
                                          "eval_every": 0}, "test").build(plugins.registry)
    if says is None:
        run(config, plugins, progress=False)
        saved = torch_load(tmp_path / "d" / "checkpoints" / "step-00000002.pt")
        assert saved["plugins"]["bad-state"] == state
        return
    with pytest.raises(PluginError, match=says):
        run(config, plugins, progress=False)
    assert not list((tmp_path / "d").glob("checkpoints/step-*.pt")), "no checkpoint without the plugin's state"


def torch_load(path: Path) -> dict:
    from ganlab.train.checkpoint import load

    return load(path)


def test_run_dir_is_refused_for_a_distributed_run_before_anything_starts(tmp_path: Path) -> None:
    done = run_in_process(["run", "--steps", "1", "--no-tracking", "--run-dir", "d", "--nproc", "2"], tmp_path)
    assert done.returncode == 2 and "a distributed run (--nproc) needs tracking" in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()


def test_the_first_steps_of_a_schedule_resumed_to_its_end_are_the_whole_run(tmp_path: Path) -> None:
    """schedule_steps: 3 of 6 steps of a linear schedule, then `resume --steps 6`, give the 6-step run's networks."""
    import torch

    args = ["--batch-size", "8", "--latent-dim", "4", "--dataset", "ring8", "--set", "arch.hidden_scale=0.0625",
            "--sample-every", "0", "--eval-every", "0", "--set", "metrics=none", "--no-tracking", "--device", "cpu",
            "--lr-schedule", "linear", "--lr-g", "0.01", "--lr-d", "0.01"]
    assert run_in_process(["run", *args, "--steps", "3", "--set", "schedule_steps=6", "--run-dir", "first"],
                          tmp_path).returncode == 0
    resumed = run_in_process(["resume", "first", "--steps", "6"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert run_in_process(["run", *args, "--steps", "6", "--run-dir", "whole"], tmp_path).returncode == 0
    assert run_in_process(["run", *args, "--steps", "3", "--run-dir", "short"], tmp_path).returncode == 0
    for name in ("generator.pt", "discriminator.pt"):
        mine = torch.load(tmp_path / "first" / name, weights_only=True)
        whole = torch.load(tmp_path / "whole" / name, weights_only=True)
        assert all(torch.equal(mine[key], whole[key]) for key in whole), name
    short = torch.load(tmp_path / "short" / "generator.pt", weights_only=True)
    first_three = torch.load(tmp_path / "first" / "checkpoints" / "step-00000003.pt", weights_only=False)["generator"]
    assert any(not torch.equal(short[key], first_three[key]) for key in short)
