"""The workers of a sweep started on this machine: one in this process, or ``jobs`` processes.

``ganlab sweep`` runs its study here unless told ``--jobs 0``: with one job the worker is this
process itself, its trials trained in process one after another; with N jobs it is N ``ganlab
sweep-worker`` processes, each given its share of the cores and, for runs on ``auto``/``cuda``, one
GPU in turn (``ganlab.studies.gpus``). A signal (Ctrl-C, SIGTERM, a closed terminal) stops them
all: running trials checkpoint and end KILLED, the trials not run are failed with the reason, the
parent run ends KILLED, and the command exits 128 + the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ganlab.studies.gpus import job_environment, visible_gpus
from ganlab.studies.worker import GPU_ENV, SLOT_ENV, Worker

#: The storage URL a local worker reads (``ganlab sweep-worker --storage``), passed in its environment,
#: not on its command line, where ``ps`` would show a password to every user.
STORAGE_ENV = "GANLAB_SWEEP_STORAGE"


class SweepInterrupted(Exception):
    """A signal stopped the sweep; the parent run is marked KILLED."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_workers(name: str, url: str, jobs: int, device: str, say: Callable[[str], None]) -> int:
    """Run the study's trials here; 0 when every trial completed (or was pruned), 1 when any failed,
    2 when a worker stopped the study because every run would fail alike."""
    from ganlab.train.engine import Interrupted
    from ganlab.train.signals import BetweenRuns, exit_code_of

    worker = Worker(name, url, in_process=True, say=say)
    try:
        if jobs == 1:
            with BetweenRuns() as between:
                worker.run(between)
            code = 0
        else:
            code = _processes(name, url, jobs, device, say)
    except SweepInterrupted as exc:
        abandon(worker, f"not run: {exc}")
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        abandon(worker, f"not run: the sweep was interrupted ({signal.Signals(getattr(exc, 'signum', 2)).name})")
        code = getattr(exc, "exit_code", None) or exit_code_of(exc)
        raise SweepInterrupted("sweep interrupted; finished variants are kept, the parent run is KILLED",
                               code) from None
    from ganlab.studies.study import status_counts

    counts = status_counts(worker.study)
    if counts["left"] or counts["running"]:  # every worker ended (a crash, a lost server) with trials not run
        abandon(worker, "not run: the sweep's workers stopped before it ran", "FAILED")
        return code or 1
    return code or (1 if counts["failed"] else 0)


def _processes(name: str, url: str, jobs: int, device: str, say: Callable[[str], None]) -> int:
    from ganlab.train.signals import hangup_as_interrupt

    gpus = visible_gpus(os.environ) if device in ("auto", "cuda") else []
    procs = []
    for slot in range(jobs):
        env, gpu = job_environment(os.environ, device, slot, gpus)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
        env[SLOT_ENV] = str(slot)
        if gpu is not None:
            env[GPU_ENV] = gpu
            say(f"worker {slot}: CUDA_VISIBLE_DEVICES={gpu}")
        env[STORAGE_ENV] = url
        procs.append(subprocess.Popen([sys.executable, "-m", "ganlab", "sweep-worker", name], env=env,
                                      start_new_session=True))  # its own session: a Ctrl-C reaches it once
    try:
        with hangup_as_interrupt():
            codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt as exc:
        for proc in procs:
            if proc.poll() is None:  # a SIGHUP stays one: the runs say why they ended
                proc.send_signal(getattr(exc, "signum", signal.SIGINT))
        for proc in procs:
            proc.wait()
        raise
    interrupted = [code for code in codes if code in (129, 130, 143)]
    if interrupted:  # a worker was signalled from outside this sweep
        raise SweepInterrupted("a worker was interrupted; the parent run is KILLED", interrupted[0])
    return 2 if 2 in codes else 0


def abandon(worker: Worker, reason: str, status: str = "KILLED") -> None:
    """The sweep stops: fail its trials that are not finished (with ``reason``), end the parent ``status``."""
    from ganlab.studies.study import REASON_ATTR

    from optuna.trial import TrialState

    storage = worker.storage
    for frozen in worker.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)):
        try:
            if frozen.state == TrialState.WAITING and not storage.set_trial_state_values(frozen._trial_id,
                                                                                         TrialState.RUNNING):
                continue
            storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, reason)
            storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
        except Exception:  # finished meanwhile
            continue
    worker.close_parent_if_done(status)

