"""The one sweep executor: a worker that claims a study's waiting trials and runs each as a ganlab run.

``ganlab sweep`` runs one worker in its own process (trials in process too), ``--jobs N`` starts N
``ganlab sweep-worker`` processes here, and any machine can start more against a shared storage.
The loop: fail the trials whose worker went silent (Optuna's ``fail_stale_trials``, its retry
callback enqueueing each once more), claim a waiting trial, run it with Optuna's heartbeat going,
record its child run, tell the study how it ended. A worker ends when no trial is waiting or
running anywhere; the last one out closes the parent run.

Written here because Optuna lacks it: claiming only an *enqueued* trial (``study.ask()`` would
create a new one when none is waiting, and a grid has no more); the heartbeat of the journal file
storage (``ganlab.studies.storage``); stopping a trial whose heartbeats cannot be written any more,
before its retry could start beside it; completing, instead of retrying, a dead trial whose run had
FINISHED (its worker died between the run's end and telling the study).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError, one_line
from ganlab.redact import mask_credentials
from ganlab.studies.launch import ChildRun, Ended, run_here
from ganlab.studies.parent import GPU_TAG, SLOT_TAG, child_run_id, close_parent, placeholder
from ganlab.studies.study import (CONFIG_ATTR, NAME_ATTR, REASON_ATTR, RETRY_OF, RUN_ATTR, STALE, WORKER_ATTR,
                                  load_study, status_counts)

#: Set in a trial's run when the study prunes: the storage URL, study and trial id.
PRUNING_ENV = "GANLAB_STUDY_TRIAL"
PRUNED_ATTR = "ganlab.pruned_at"
#: Set by ``ganlab sweep --jobs N`` for each worker: its slot, and the GPU it was pinned to.
SLOT_ENV = "GANLAB_WORKER_SLOT"
GPU_ENV = "GANLAB_WORKER_GPU"


class StorageLost(GanlabError):
    """The storage stopped answering while this worker ran a trial."""


class Worker:
    def __init__(self, name: str, storage_url: str, tracking_uri: str | None = None, in_process: bool = False,
                 say: Callable[[str], None] | None = None, poll: float = 1.0) -> None:
        from ganlab.record.store import client

        self.study, self.described = load_study(name, storage_url, on_stale=self.on_stale)
        self.storage, self.storage_url = self.study._storage, storage_url
        self.uri = tracking_uri or self.described["tracking_uri"]
        self.client = client(self.uri)
        self.parent_id, self.experiment_id = self.described["parent_run_id"], self.described["experiment_id"]
        self.grace = float(self.described["grace"])
        self.in_process, self.poll = in_process, poll
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.say = say or (lambda text: print(f"ganlab: {mask_credentials(text)}", file=sys.stderr, flush=True))
        self.ran: list[tuple[int, str]] = []  # (trial number, final state) of this worker's trials
        self.child = ChildRun(self.say)
        self.lost_storage: str | None = None  # why heartbeats could not be written, once the run was stopped

    # ---- the loop ----------------------------------------------------------------
    def run(self, between: Any = None) -> int:
        """Run trials until none is left; 0 when every trial this worker ran completed (or was pruned), else 1.
        ``between``: a :class:`ganlab.train.signals.BetweenRuns` whose signal stops the loop before a claim."""
        try:
            while True:
                self.fail_stale()
                if between is not None:
                    between.check()
                trial_id = self.claim()
                if trial_id is None:
                    if not self.study.get_trials(deepcopy=False, states=(_state("RUNNING"),)):
                        break
                    time.sleep(self.poll)
                    continue
                self.run_trial(trial_id)
        except BaseException:
            try:  # the storage may be what failed: closing the parent is then for a later worker
                self.close_parent_if_done()
            except Exception:
                pass
            raise
        self.close_parent_if_done()
        return 0 if all(state in ("COMPLETE", "PRUNED") for _, state in self.ran) else 1

    def fail_stale(self) -> None:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def claim(self) -> int | None:
        """A waiting trial, now RUNNING here (the storage's compare-and-set: no two workers get it)."""
        for frozen in self.study.get_trials(deepcopy=False, states=(_state("WAITING"),)):
            try:
                if not self.storage.set_trial_state_values(frozen._trial_id, _state("RUNNING")):
                    continue
                self.storage.set_trial_user_attr(frozen._trial_id, WORKER_ATTR, self.me)
                self.storage.record_heartbeat(frozen._trial_id)
            except Exception as exc:
                if _finished_meanwhile(exc):  # taken, or failed, by another worker meanwhile
                    continue
                raise
            return frozen._trial_id
        return None

    # ---- one trial ------------------------------------------------------------------
    def run_trial(self, trial_id: int) -> None:
        """Heartbeats from the claim until the study is told the outcome; any failure ends the trial FAIL."""
        stop = threading.Event()
        beats = threading.Thread(target=self._beat, args=(trial_id, stop), daemon=True)
        beats.start()
        number = self.storage.get_trial(trial_id).number
        try:
            self._run_trial(trial_id)
        except (GanlabError, KeyboardInterrupt):  # a lost storage, or a study stopped for all its trials
            raise
        except Exception as exc:
            if _is_storage_error(exc) or _is_interruption(exc):
                raise
            if not _finished_meanwhile(exc):  # e.g. the tracking server failed: this trial fails, not the worker
                self.finish(trial_id, number, "FAIL", reason=f"the worker could not record it: {one_line(exc)}")
        finally:
            stop.set()
            beats.join()

    def _run_trial(self, trial_id: int) -> None:
        import optuna

        frozen = self.storage.get_trial(trial_id)
        try:
            config = self.trial_config(optuna.trial.Trial(self.study, trial_id), frozen)
        except GanlabError as exc:
            self.finish(trial_id, frozen.number, "FAIL", reason=one_line(exc, plain_ganlab_errors=True))
            return
        plugins, environ = list(self.described["plugins"]), {}
        if (self.described.get("search") or {}).get("pruner", "none") != "none":
            environ[PRUNING_ENV] = f"{self.storage_url}|{self.study.study_name}|{trial_id}"
            plugins.append("ganlab.studies.pruning")
        if self.in_process:
            ended = run_here(config, plugins, environ, lambda: PRUNED_ATTR in self.storage.get_trial(trial_id).user_attrs)
            self.conclude(trial_id, frozen.number, config, ended)
        else:
            with tempfile.TemporaryDirectory(prefix="ganlab-trial-") as tmp:
                ended = self.child(config, plugins, environ, Path(tmp))
                if self.lost_storage is not None:
                    self.end_stopped_run(config.run_name)
                    raise StorageLost(f"the study's storage stopped answering ({self.lost_storage}); trial "
                                      f"{config.run_name} was stopped (its run KILLED) and is retried once the "
                                      "storage is back and a worker runs")
                self.conclude(trial_id, frozen.number, config, ended)

    def trial_config(self, trial: Any, frozen: Any) -> Any:
        """A grid trial's stored configuration, or a search trial's, built from the sampled values; named
        (a retry's name says so) and made a child of the parent run.

        A retried search trial was enqueued with its values fixed: ``suggest`` returns them, so
        it reruns the same configuration and still records its params for the sampler."""
        from ganlab.config import ConfigBuilder, loads_toml
        from ganlab.plugins import load_plugins

        registry = load_plugins(self.described["plugins"]).registry
        retry = " (retry)" if RETRY_OF in frozen.system_attrs else ""
        if self.described.get("search") is None:
            name = (frozen.user_attrs.get(NAME_ATTR) or f"trial-{frozen.number}").removesuffix(" (retry)") + retry
            settings = loads_toml(frozen.user_attrs[CONFIG_ATTR], f"trial {frozen.number}")
            config = ConfigBuilder().add_mapping(settings, f"trial {frozen.number}").build(registry)
        else:
            from ganlab.config.sweep import build_variant, load_sweep
            from ganlab.studies.space import SearchSpec

            search = SearchSpec.from_json(self.described["search"])
            sampled = {d.key: d.suggest(trial) for d in search.distributions}
            with tempfile.TemporaryDirectory(prefix="ganlab-study-") as tmp:
                path = Path(tmp) / self.described["file_name"]
                path.write_text(self.described["file"], encoding="utf-8")
                spec = load_sweep(path, self.described["experiment"])
                config = build_variant(spec, sampled, self.described["sets"], registry, self.uri)
            name = f"trial-{frozen.number} " + " ".join(f"{k}={_short(v)}" for k, v in sampled.items())
            name = name[:240] + retry
        self.storage.set_trial_user_attr(frozen._trial_id, NAME_ATTR, name)
        return config.replace(run_name=name, parent_run_id=self.parent_id, tracking_uri=self.uri)

    def conclude(self, trial_id: int, number: int, config: Any, ended: Ended) -> None:
        """Record the trial's child run (a placeholder if it never started) and tell the study how it ended."""
        from mlflow.entities import RunTag

        run_id = child_run_id(self.client, self.experiment_id, self.parent_id, config.run_name)
        if run_id is None:
            run_id = placeholder(self.client, self.experiment_id, self.parent_id, config.run_name, config,
                                 ended.error or f"exit code {ended.code}")
        else:
            if self.client.get_run(run_id).info.status == "RUNNING":  # the process died without closing its run
                self.client.set_terminated(run_id, status="FAILED")
            if ended.log is not None:
                self.client.log_artifact(run_id, str(ended.log), artifact_path="sweep")
            if ended.traceback:
                self.client.log_text(run_id, ended.traceback, "sweep/traceback.txt")
        where = [RunTag(tag, os.environ[env]) for tag, env in ((SLOT_TAG, SLOT_ENV), (GPU_TAG, GPU_ENV))
                 if os.environ.get(env)]
        if where:
            self.client.log_batch(run_id, tags=where)
        self.storage.set_trial_user_attr(trial_id, RUN_ATTR, run_id)
        frozen = self.storage.get_trial(trial_id)
        if PRUNED_ATTR in frozen.user_attrs:
            self.finish(trial_id, number, "PRUNED", ended, reason=f"pruned at step {frozen.user_attrs[PRUNED_ATTR]}")
        elif ended.code != 0:
            self.finish(trial_id, number, "FAIL", ended, reason=ended.error or f"exit code {ended.code}")
        else:
            state, value, reason = self.outcome(run_id, number)
            self.finish(trial_id, number, state, ended, value=value, reason=reason)
            if state == "FAIL":
                self.stop_study(reason)
                raise GanlabError(reason)

    def outcome(self, run_id: str | None, number: int) -> tuple[str, float | None, str]:
        """COMPLETE and the objective's final value (0 for a grid without one), or FAIL when the run lacks it."""
        objective = (self.described.get("search") or {}).get("objective")
        if not objective:
            return "COMPLETE", 0.0, ""  # a grid ranks nothing: every value 0
        metrics = self.client.get_run(run_id).data.metrics if run_id else {}
        if objective not in metrics:
            return "FAIL", None, (f"the study's objective '{objective}' is a metric its runs do not log (trial "
                                  f"{number}'s run logged: {', '.join(sorted(metrics)[:12]) or 'none'})")
        return "COMPLETE", float(metrics[objective]), ""

    def finish(self, trial_id: int, number: int, state: str, ended: Ended | None = None, value: float | None = None,
               reason: str = "") -> None:
        try:
            if reason:
                self.storage.set_trial_user_attr(trial_id, REASON_ATTR, reason[:1000])
            self.storage.set_trial_state_values(trial_id, _state(state), [value] if value is not None else None)
        except Exception as exc:
            if not _finished_meanwhile(exc):
                raise
            # another worker judged this trial dead meanwhile (its heartbeats did not get through)
            self.say(f"trial {number}: ended {state} here, but another worker had already failed it")
            self.ran.append((number, "FAIL"))
            return
        self.ran.append((number, state))
        frozen = self.storage.get_trial(trial_id)
        counts = status_counts(self.study)
        done = counts["done"] - counts["reused"] + counts["failed"] + counts["pruned"]
        shown = {"COMPLETE": "FINISHED", "FAIL": "FAILED"}.get(state, state)
        where = f" run {frozen.user_attrs[RUN_ATTR]}" if RUN_ATTR in frozen.user_attrs else ""
        gpu = f" (CUDA_VISIBLE_DEVICES={os.environ[GPU_ENV]})" if os.environ.get(GPU_ENV) else ""
        took = f" in {ended.seconds:.1f}s" if ended is not None else ""
        value_shown = f" {value:g}" if value is not None and (self.described.get("search") or {}).get("objective") else ""
        self.say(f"[{done}/{done + counts['running'] + counts['left']}] {frozen.user_attrs.get(NAME_ATTR, number)} "
                 f"{shown}{value_shown}{took}{where}{gpu}" + (f": {reason}" if reason and state != "PRUNED" else ""))

    def stop_study(self, reason: str) -> None:
        """Fail every waiting trial with ``reason``: a study whose every run would fail the same way."""
        for frozen in self.study.get_trials(deepcopy=False, states=(_state("WAITING"),)):
            try:
                if self.storage.set_trial_state_values(frozen._trial_id, _state("RUNNING")):
                    self.storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, f"not run: {reason}"[:1000])
                    self.storage.set_trial_state_values(frozen._trial_id, _state("FAIL"))
            except Exception:  # taken or finished by another worker meanwhile
                continue

    def _beat(self, trial_id: int, stop: threading.Event) -> None:
        """Optuna's heartbeat until ``stop``. Once none could be written for half the grace period this
        trial will soon count as dead and be retried elsewhere, so its run is stopped (KILLED),
        well before the retry could start: a trial must not finish twice."""
        written = time.monotonic()
        while not stop.wait(float(self.described["heartbeat"])):
            try:
                self.storage.record_heartbeat(trial_id)
                written = time.monotonic()
            except Exception as exc:  # the storage did not answer: the next beat tries again
                if time.monotonic() - written > self.grace / 2 and not self.in_process:
                    self.lost_storage = one_line(exc)
                    self.child.stop(self.grace / 4)  # it checkpoints and ends its run KILLED
                    return

    def end_stopped_run(self, name: str) -> None:
        """End KILLED the run of a trial stopped for a lost storage, when it was killed before closing it.

        The trial has ``grace / 4`` seconds to checkpoint and close its run; on a loaded machine that
        may not be enough, and a run must not stay RUNNING. The tracking store may have gone with the
        storage (one server for both): then nothing can be written, and nothing is.
        """
        from mlflow.entities import RunTag

        try:
            run_id = child_run_id(self.client, self.experiment_id, self.parent_id, name)
            if run_id is not None and self.client.get_run(run_id).info.status == "RUNNING":
                self.client.log_batch(run_id, tags=[RunTag("ganlab.killed_by", "SIGKILL")])
                self.client.set_terminated(run_id, status="KILLED")
        except Exception:  # the tracking store is unreachable too
            pass

    # ---- trials whose worker died -------------------------------------------------------
    def on_stale(self, study: Any, frozen: Any) -> None:
        """Optuna failed ``frozen`` for its silence: end its run FAILED and retry it once (Optuna's
        retry callback); but a trial whose run had FINISHED is completed from that run instead."""
        import optuna

        name = frozen.user_attrs.get(NAME_ATTR, f"trial-{frozen.number}")
        run_id = child_run_id(self.client, self.experiment_id, self.parent_id, name)
        run = self.client.get_run(run_id) if run_id else None
        if run is not None and run.info.status == "FINISHED":
            state, value, why = self.outcome(run_id, frozen.number)
            study.add_trial(optuna.trial.create_trial(
                state=_state(state), value=value, params=frozen.params, distributions=frozen.distributions,
                user_attrs={**frozen.user_attrs, RUN_ATTR: run_id,
                            REASON_ATTR: why or f"completed from run {run_id} after {STALE}"},
                system_attrs={RETRY_OF: frozen.number}))
            return
        if run is not None and run.info.status == "RUNNING":
            from mlflow.entities import RunTag

            self.client.log_batch(run_id, tags=[RunTag("ganlab.failure", STALE)])
            self.client.set_terminated(run_id, status="FAILED")
        if RETRY_OF in frozen.system_attrs:
            self.say(f"trial {frozen.number} FAILED: {STALE}; it was retried once already")
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, frozen)
        self.say(f"trial {frozen.number} failed: {STALE}; enqueued once more")

    # ---- the parent run -----------------------------------------------------------------
    def close_parent_if_done(self, status: str | None = None) -> None:
        counts = status_counts(self.study)
        if status is None and (counts["left"] or counts["running"]):
            return
        failed = [name for _, name, _, _ in counts["failures"]]
        close_parent(self.client, self.parent_id, counts["done"], failed, counts["pruned"],
                     status or ("FAILED" if failed else "FINISHED"))


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return getattr(TrialState, name)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _finished_meanwhile(exc: BaseException) -> bool:
    """Optuna's refusal to change a trial another worker already finished."""
    return type(exc).__name__ == "UpdateFinishedTrialError"


def _is_interruption(exc: BaseException) -> bool:
    """A signal stopped the trial's run at a step boundary (run in this process): the sweep stops, as for
    Ctrl-C between runs; the trial is not the worker's failure."""
    from ganlab.train.engine import Interrupted

    return isinstance(exc, Interrupted)


def _is_storage_error(exc: BaseException) -> bool:
    """The study's storage failed (its database driver, SQLAlchemy, Optuna's storage layer)."""
    return type(exc).__module__.startswith(("sqlalchemy", "psycopg", "optuna.storages"))
