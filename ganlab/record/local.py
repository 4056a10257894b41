"""An untracked run's own directory (setting ``run_dir`` with ``--no-tracking``).

Without MLflow a run has no artifact directory, so nothing would keep its
checkpoints: an interrupted run could not be resumed. With ``run_dir`` the
directory stands in for the artifacts: checkpoints under ``checkpoints/``, and
at the end the resolved configuration and the networks, laid out as in a
tracked run's artifacts, so ``ganlab resume DIR`` continues it exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ganlab import hookimpl
from ganlab.errors import GanlabError
from ganlab.record.ownership import directory_lock, own, release


def check_run_dir(config: Any, resuming: bool) -> Path | None:
    """The run's directory, after refusing what would mix runs or lose files (before anything trains)."""
    if not config.run_dir:
        return None
    if config.tracking:
        raise GanlabError("run_dir is for untracked runs (--no-tracking): a tracked run keeps its checkpoints "
                          "and networks in its MLflow artifacts")
    if config.seeds:
        raise GanlabError("run_dir keeps one run's files; a population (--seeds) needs tracking, which gives "
                          "each seed a run of its own")
    from ganlab.dist import launched_by_torchrun

    if launched_by_torchrun():
        raise GanlabError("run_dir keeps one process's files; a distributed run (torchrun, --nproc) needs tracking")
    directory = Path(config.run_dir)
    if directory.exists() and not directory.is_dir():
        raise GanlabError(f"run_dir {directory} exists and is not a directory")
    if not resuming and any((directory / "checkpoints").glob("step-*.pt")):
        raise GanlabError(f"run_dir {directory} already holds another run's checkpoints: continue it with "
                          f"`ganlab resume {directory}`, or pick a new directory")
    return directory


class LocalRunDirectory:
    """Gives an untracked run ``ctx.workdir`` (so the engine checkpoints into it) and writes its outputs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock: Path | None = None  # this run's ownership (ganlab.record.ownership)

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GanlabError(f"cannot create run_dir {self.directory}: {exc.strerror or exc}") from None
        self.lock = own(directory_lock(self.directory), f"the run in {self.directory}")
        ctx.workdir = self.directory
        what = f"resuming at step {ctx.step}" if ctx.resumed_from is not None else "untracked run"
        print(f"ganlab: {what} in {self.directory}; continue it with: ganlab resume {self.directory}",
              file=sys.stderr, flush=True)

    @hookimpl
    def on_run_end(self, ctx: Any, status: str) -> None:
        try:
            self._write_outputs(ctx, status)
        finally:
            if self.lock is not None:
                release(self.lock)
                self.lock = None

    def _write_outputs(self, ctx: Any, status: str) -> None:
        if status == "FINISHED":
            from ganlab.record.outputs import write_outputs

            try:
                write_outputs(ctx, self.directory)
            except OSError as exc:
                raise GanlabError(f"the run finished but its networks could not be written to {self.directory}: "
                                  f"{exc.strerror or exc}; its last checkpoint is kept there") from None
