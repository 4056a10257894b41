"""How a worker runs one trial: in its own process, or as a ``ganlab run`` child process.

In process is what ``ganlab sweep`` without ``--jobs`` does (one worker, the sweep's own process):
torch and MLflow are imported once for all variants, each trial loads its plugins afresh. A
``ganlab sweep-worker`` process (``--jobs N`` starts N of them) runs each trial as a child process
instead: a crash of one run cannot take the worker with it, and the run's output is kept as a log
file attached to its MLflow run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError, last_error_line, one_line

#: The run process sets PR_SET_PDEATHSIG itself and then becomes ``ganlab run`` (execv keeps it):
#: a killed worker's trial dies with it and cannot also finish beside its retry. The check of the
#: parent pid closes the window in which the worker died before prctl ran.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\nexcept (OSError, AttributeError):\n    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n    sys.exit(137)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'ganlab', *sys.argv[2:]])\n"
)


@dataclass
class Ended:
    """How a trial's run ended: its exit code (0 finished, 143 stopped by the pruner), the error's one
    line, a traceback worth keeping (a bug or a plugin's crash), the run's output."""

    code: int
    seconds: float
    error: str = ""
    traceback: str | None = None
    log: Path | None = None


def run_here(config: Any, plugin_specs: Sequence[str], environ: dict[str, str], pruned: Callable[[], bool]) -> Ended:
    """Train ``config`` in this process (a population when it has ``seeds``), with ``environ`` set.

    A signal that stops the run stops the caller too (re-raised), unless the study's pruner sent
    it (``pruned()``: the pruner marks the trial before it signals)."""
    import torch

    from ganlab.plugins import PluginManager
    from ganlab.train.engine import Interrupted

    started = time.monotonic()
    deterministic = torch.are_deterministic_algorithms_enabled()
    environment_before = dict(os.environ)
    os.environ.update(environ)
    try:
        plugins = PluginManager().load(list(plugin_specs))
        if config.seeds:
            from ganlab.train.population.launch import run_population

            run_population(config, plugins)
        else:
            from ganlab.train.runner import run as run_training

            run_training(config, plugins)
        return Ended(0, time.monotonic() - started)
    except Interrupted:
        if pruned():
            return Ended(128 + signal.SIGTERM, time.monotonic() - started, "pruned")
        raise
    except Exception as exc:
        kept = None if isinstance(exc, GanlabError) else traceback.format_exc()
        return Ended(1, time.monotonic() - started, one_line(exc, plain_ganlab_errors=True), kept)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        for key in environ:  # the trial's variables as they were before it
            if key in environment_before:
                os.environ[key] = environment_before[key]
            else:
                del os.environ[key]


class ChildRun:
    """A trial as a ``python -m ganlab run`` child that dies with this process; its output in a log file."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.say = say

    def __call__(self, config: Any, plugin_specs: Sequence[str], environ: dict[str, str], log_dir: Path) -> Ended:
        config_path = log_dir / "trial.toml"
        config_path.write_text(config.to_toml(), encoding="utf-8")
        log_path = log_dir / "trial.log"
        args = ["run", "--config", str(config_path)]
        for spec in plugin_specs:
            args += ["--plugin", spec]
        command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]
        started = time.monotonic()
        with open(log_path, "wb") as log:
            # its own session: a Ctrl-C reaches it once, forwarded below
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **environ}, start_new_session=True)
            try:
                code = self.proc.wait()
            except BaseException as exc:
                if self.proc.poll() is None:  # a SIGHUP stays one: the run says why it ended
                    self.proc.send_signal(getattr(exc, "signum", signal.SIGINT))
                    self.proc.wait()
                raise
        error = "" if code == 0 else last_error_line(log_path, code)
        return Ended(code, time.monotonic() - started, error, None, log_path)

    def stop(self, grace: float) -> None:
        """Stop the running trial as Ctrl-C would (checkpoint, run KILLED); kill it after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()

