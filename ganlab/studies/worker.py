"""``ganlab sweep-worker STUDY``: claim waiting trials one at a time and run each as a ganlab run.

The loop: fail the trials whose worker stopped sending heartbeats (and retry each once), claim a
waiting trial (a compare-and-set in the storage: two workers never get the same one), run it as
a ``python -m ganlab run`` process recorded as a child of the sweep's parent run, and tell the
study how it ended. A worker ends when no trial is waiting or running anywhere and no dead
trial awaits its retry; the last one out closes the parent run.

Heartbeats run from the claim until the study is told the outcome. Staleness is judged on the
reaping worker's own clock (how long it has seen a trial's heartbeat value unchanged), so the
workers' clocks need not agree. A dead trial whose MLflow run had already FINISHED (its worker
died between the run's end and telling the study) is completed from that run, not retried.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError, last_error_line, one_line
from ganlab.redact import mask_credentials
from ganlab.studies.study import (
    CONFIG_ATTR,
    DEAD_ATTR,
    HEARTBEAT_ATTR,
    NAME_ATTR,
    REASON_ATTR,
    RETRY_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
    status_counts,
    unretried_deaths,
)

PARENT_TAG = "mlflow.parentRunId"
#: Set in a trial's run process when the study prunes: the storage URL, study and trial id.
PRUNING_ENV = "GANLAB_STUDY_TRIAL"
PRUNED_ATTR = "ganlab.pruned_at"
#: Set by ``ganlab sweep --workers N`` for a worker it pinned to one GPU (recorded on its runs).
GPU_ENV = "GANLAB_WORKER_GPU"
#: The run process sets PR_SET_PDEATHSIG itself and then becomes ``ganlab run`` (execv keeps it):
#: a killed worker's trial dies with it and cannot also finish beside its retry. The check of the
#: parent pid closes the window in which the worker died before prctl ran.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\nexcept (OSError, AttributeError):\n    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n    sys.exit(137)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'ganlab', *sys.argv[2:]])\n"
)


class StorageLost(GanlabError):
    """The storage stopped answering while this worker ran a trial."""


class Worker:
    def __init__(self, study: Any, described: dict[str, Any], storage_url: str, tracking_uri: str | None = None,
                 say: Callable[[str], None] | None = None, poll: float = 1.0) -> None:
        from ganlab.record.store import client

        self.study, self.described, self.storage_url = study, described, storage_url
        self.storage = study._storage
        self.uri = tracking_uri or described["tracking_uri"]
        self.client = client(self.uri)
        self.parent_id = described["parent_run_id"]
        self.experiment_id = described["experiment_id"]
        self.heartbeat = float(described["heartbeat"])
        self.grace = float(described["grace"])
        self.poll = poll
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.say = say or (lambda text: print(f"ganlab: {mask_credentials(text)}", file=sys.stderr, flush=True))
        self.ran: list[tuple[int, str]] = []  # (trial number, final state) of this worker's trials
        self.proc: subprocess.Popen[bytes] | None = None
        self.lost_storage: str | None = None  # why heartbeats could not be written, once the run was stopped
        self.seen: dict[int, tuple[Any, float]] = {}  # trial id -> (heartbeat value, monotonic time it was seen)

    # ---- the loop ----------------------------------------------------------------
    def run(self) -> int:
        """Run trials until none is left; 0 when every trial this worker ran completed (or was pruned), else 1."""
        self.say(f"worker {self.me} on study '{self.study.study_name}' (tracking {self.uri})")
        try:
            while True:
                self.reap_stale()
                trial_id = self.claim()
                if trial_id is None:
                    if not self._pending():
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

    def claim(self) -> int | None:
        from optuna.trial import TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                if not self.storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
                    continue
                self.storage.set_trial_user_attr(frozen._trial_id, WORKER_ATTR, self.me)
                self.storage.set_trial_user_attr(frozen._trial_id, HEARTBEAT_ATTR, time.time())
            except Exception as exc:
                if _finished_meanwhile(exc):  # taken, or reaped, by another worker meanwhile
                    continue
                raise
            return frozen._trial_id
        return None

    def _pending(self) -> bool:
        """A trial runs somewhere, or one that died awaits its retry: a worker then waits, it may get it."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        return any(t.state == TrialState.RUNNING for t in trials) or bool(unretried_deaths(trials))

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
            if _is_storage_error(exc):
                raise
            if not _finished_meanwhile(exc):  # e.g. the tracking server failed: this trial fails, not the worker
                self.finish(trial_id, number, "FAIL", reason=f"the worker could not record it: {one_line(exc)}")
        finally:
            stop.set()
            beats.join()

    def _run_trial(self, trial_id: int) -> None:
        import optuna

        trial = optuna.trial.Trial(self.study, trial_id)
        frozen = self.storage.get_trial(trial_id)
        try:
            toml_text, name = self.trial_config(trial, frozen)
        except GanlabError as exc:
            self.finish(trial_id, frozen.number, "FAIL", reason=one_line(exc, plain_ganlab_errors=True))
            return
        with tempfile.TemporaryDirectory(prefix="ganlab-trial-") as tmp:
            log_path = Path(tmp) / "trial.log"
            code = self.launch(trial_id, toml_text, name, Path(tmp), log_path)
            if self.lost_storage is not None:
                raise StorageLost(f"the study's storage stopped answering ({self.lost_storage}); trial {name} was "
                                  "stopped (its run KILLED) and is retried once the storage is back and a worker runs")
            self.conclude(trial_id, frozen.number, name, code, log_path)

    def trial_config(self, trial: Any, frozen: Any) -> tuple[str, str]:
        """A grid trial's stored configuration, or a search trial's, built from the sampled values.

        A retried search trial was enqueued with its values fixed: ``suggest`` returns them, so
        it reruns the same configuration and still records its params for the sampler."""
        if self.described.get("search") is None:
            return frozen.user_attrs[CONFIG_ATTR], frozen.user_attrs.get(NAME_ATTR) or f"trial-{frozen.number}"
        from ganlab.config.sweep import build_variant, load_sweep
        from ganlab.plugins import load_plugins
        from ganlab.studies.space import SearchSpec

        search = SearchSpec.from_json(self.described["search"])
        sampled = {d.key: d.suggest(trial) for d in search.distributions}
        with tempfile.TemporaryDirectory(prefix="ganlab-study-") as tmp:
            path = Path(tmp) / self.described["file_name"]
            path.write_text(self.described["file"], encoding="utf-8")
            spec = load_sweep(path, self.described["experiment"])
            registry = load_plugins(self.described["plugins"]).registry
            config = build_variant(spec, sampled, self.described["sets"], registry, self.uri)
        shown = " ".join(f"{k}={_short(v)}" for k, v in sampled.items())
        retry = " (retry)" if RETRY_ATTR in frozen.user_attrs else ""
        name = f"trial-{frozen.number} {shown}"[:240] + retry
        config = config.replace(run_name=name, parent_run_id=self.parent_id)
        self.storage.set_trial_user_attr(frozen._trial_id, NAME_ATTR, name)
        return config.to_toml(), name

    def launch(self, trial_id: int, toml_text: str, name: str, tmp: Path, log_path: Path) -> int:
        config_path = tmp / "trial.toml"
        config_path.write_text(toml_text, encoding="utf-8")
        args = ["run", "--config", str(config_path), "--run-name", name, "--tracking-uri", self.uri]
        for spec in self.described["plugins"]:
            args += ["--plugin", spec]
        env = dict(os.environ)
        search = self.described.get("search") or {}
        if search.get("pruner", "none") != "none":
            env[PRUNING_ENV] = f"{self.storage_url}|{self.study.study_name}|{trial_id}"
            args += ["--plugin", "ganlab.studies.pruning"]
        command = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]
        self.say(f"trial {name}: started")
        with open(log_path, "wb") as log:
            # its own session: a Ctrl-C reaches it once, forwarded below
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
            try:
                return self.proc.wait()
            except BaseException as exc:
                if self.proc.poll() is None:  # a SIGHUP stays one: the run says why it ended
                    self.proc.send_signal(getattr(exc, "signum", signal.SIGINT))
                    self.proc.wait()
                raise

    def conclude(self, trial_id: int, number: int, name: str, code: int, log_path: Path) -> None:
        run_id = self.child_run(name)
        if run_id is not None:
            self.storage.set_trial_user_attr(trial_id, RUN_ATTR, run_id)
            run = self.client.get_run(run_id)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run_id, status="FAILED")
            self.client.log_artifact(run_id, str(log_path), artifact_path="sweep")
            gpu = os.environ.get(GPU_ENV)
            if gpu:
                from mlflow.entities import RunTag

                self.client.log_batch(run_id, tags=[RunTag("ganlab.sweep.gpu", gpu)])
        frozen = self.storage.get_trial(trial_id)
        if PRUNED_ATTR in frozen.user_attrs:
            self.finish(trial_id, number, "PRUNED", reason=f"pruned at step {frozen.user_attrs[PRUNED_ATTR]}")
            return
        if code != 0:
            self.finish(trial_id, number, "FAIL", reason=last_error_line(log_path, code))
            return
        state, value, reason = self.outcome(run_id, number)
        self.finish(trial_id, number, state, value=value, reason=reason)
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

    def finish(self, trial_id: int, number: int, state: str, value: float | None = None, reason: str = "") -> None:
        from optuna.trial import TrialState

        try:
            if reason:
                self.storage.set_trial_user_attr(trial_id, REASON_ATTR, reason[:1000])
            self.storage.set_trial_state_values(trial_id, getattr(TrialState, state), [value] if value is not None
                                                else None)
        except Exception as exc:
            if not _finished_meanwhile(exc):
                raise
            # another worker judged this trial dead meanwhile (its heartbeats did not get through)
            self.say(f"trial {number}: ended {state} here, but another worker had already failed it")
            self.ran.append((number, "FAIL"))
            return
        self.ran.append((number, state))
        name = self.storage.get_trial(trial_id).user_attrs.get(NAME_ATTR, f"trial-{number}")
        self.say(f"trial {name}: {state}" + (f" ({value:g})" if value is not None and state == "COMPLETE" else "")
                 + (f": {reason}" if reason else ""))

    def stop_study(self, reason: str) -> None:
        """Fail every waiting trial with ``reason``: a study whose every run would fail the same way."""
        from optuna.trial import TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                if self.storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
                    self.storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, f"not run: {reason}"[:1000])
                    self.storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
            except Exception:  # taken or finished by another worker meanwhile
                continue

    def child_run(self, name: str) -> str | None:
        quoted = name.replace("'", "\\'")
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.run_name = '{quoted}'",
            max_results=1)
        return found[0].info.run_id if found else None

    def _beat(self, trial_id: int, stop: threading.Event) -> None:
        """Heartbeats until ``stop``. Once none could be written for half the grace period this
        trial will soon count as dead and be retried elsewhere, so its run is stopped (KILLED),
        well before the retry could start: a trial must not finish twice."""
        written = time.monotonic()
        while not stop.wait(self.heartbeat):
            try:
                self.storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())
                written = time.monotonic()
            except Exception as exc:  # the storage did not answer: the next beat tries again
                if time.monotonic() - written > self.grace / 2 and self.proc is not None and self.proc.poll() is None:
                    self.lost_storage = one_line(exc)
                    self.proc.send_signal(signal.SIGINT)
                    try:  # it checkpoints and ends its run KILLED; a run whose tracking is gone too cannot
                        self.proc.wait(timeout=self.grace / 4)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                    return

    # ---- trials whose worker died -------------------------------------------------------
    def reap_stale(self) -> None:
        """Fail the RUNNING trials whose heartbeat this worker has seen unchanged for ``grace`` seconds."""
        from optuna.trial import TrialState

        now = time.monotonic()
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        seen: dict[int, tuple[Any, float]] = {}
        for frozen in running:
            beat = frozen.user_attrs.get(HEARTBEAT_ATTR)
            before = self.seen.get(frozen._trial_id)
            # first sight, or a new beat: the silence is timed from now on this worker's clock
            seen[frozen._trial_id] = (beat, now) if before is None or before[0] != beat else before
        self.seen = seen
        for frozen in running:
            silent = now - seen[frozen._trial_id][1]
            if silent > self.grace:
                self.reap(frozen, silent)

    def reap(self, frozen: Any, silent: float) -> None:
        from optuna.trial import TrialState

        worker = frozen.user_attrs.get(WORKER_ATTR, "an unknown worker")
        reason = f"its worker {worker} stopped sending heartbeats (none seen for {silent:.0f} s)"
        name = frozen.user_attrs.get(NAME_ATTR, f"trial-{frozen.number}")
        run_id = self.child_run(name) if NAME_ATTR in frozen.user_attrs else None
        run = self.client.get_run(run_id) if run_id else None
        if run is not None and run.info.status == "FINISHED":
            # the run ended; its worker died before telling the study: complete it from the run
            state, value, why = self.outcome(run_id, frozen.number)
            try:
                self.storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, why or f"completed from run {run_id} "
                                                 f"after {reason}")
                self.storage.set_trial_state_values(frozen._trial_id, getattr(TrialState, state),
                                                    [value] if value is not None else None)
            except Exception as exc:
                if not _finished_meanwhile(exc):
                    raise
            return
        try:
            self.storage.set_trial_user_attr(frozen._trial_id, DEAD_ATTR, time.time())
            self.storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, reason)
            if not self.storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL):
                return
        except Exception as exc:  # another worker failed it first
            if _finished_meanwhile(exc):
                return
            raise
        self.retry(frozen, reason)  # first: until it is enqueued, idle workers wait for it (unretried_deaths)
        if run is not None and run.info.status == "RUNNING":
            from mlflow.entities import RunTag

            self.client.log_batch(run_id, tags=[RunTag("ganlab.failure", reason)])
            self.client.set_terminated(run_id, status="FAILED")

    def retry(self, frozen: Any, reason: str) -> None:
        """Enqueue the dead trial once more, unless it was itself a retry (then it stays FAILED)."""
        trials = self.study.get_trials(deepcopy=False)
        if RETRY_ATTR in frozen.user_attrs or any(t.user_attrs.get(RETRY_ATTR) == frozen.number for t in trials):
            self.say(f"trial {frozen.number} FAILED: {reason}; it was retried once already")
            return
        attrs: dict[str, Any] = {RETRY_ATTR: frozen.number}
        if self.described.get("search") is None:
            attrs[CONFIG_ATTR] = frozen.user_attrs[CONFIG_ATTR]
            attrs[NAME_ATTR] = f"{frozen.user_attrs.get(NAME_ATTR, f'trial-{frozen.number}')} (retry)"
        self.study.enqueue_trial(dict(frozen.params), user_attrs=attrs)  # a search's values are fixed: same config
        self.say(f"trial {frozen.number} failed: {reason}; enqueued once more")

    # ---- the parent run -----------------------------------------------------------------
    def close_parent_if_done(self) -> None:
        counts = status_counts(self.study)
        if counts["left"] or counts["running"] or counts["awaiting_retry"]:
            return
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        failed = counts["failed"]
        self.client.log_batch(self.parent_id, metrics=[Metric("sweep.finished", counts["done"], now, 0),
                                                       Metric("sweep.failed", failed, now, 0),
                                                       Metric("sweep.pruned", counts["pruned"], now, 0)],
                              tags=[RunTag("ganlab.sweep.failed_variants",
                                           ", ".join(n for _, n, _ in counts["failures"])[:5000] or "-")])
        if self.client.get_run(self.parent_id).info.status == "RUNNING":
            self.client.set_terminated(self.parent_id, status="FINISHED" if not failed else "FAILED")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _finished_meanwhile(exc: BaseException) -> bool:
    """Optuna's refusal to change a trial another worker already finished."""
    return type(exc).__name__ == "UpdateFinishedTrialError"


def _is_storage_error(exc: BaseException) -> bool:
    """The study's storage failed (its database driver, SQLAlchemy, Optuna's storage layer)."""
    return type(exc).__module__.startswith(("sqlalchemy", "psycopg", "optuna.storages"))
