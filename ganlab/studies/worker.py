"""``ganlab sweep-worker STUDY``: claim waiting trials one at a time and run each as a ganlab run.

The loop: fail the trials whose worker stopped sending heartbeats (and retry each once), claim a
waiting trial (a compare-and-set in the storage: two workers never get the same one), run it as
a ``python -m ganlab run`` process recorded as a child of the sweep's parent run, and tell the
study how it ended. A worker ends when no trial is waiting and none is running anywhere (a
running one might still die and come back as a retry); the last one out closes the parent run.
"""

from __future__ import annotations

import ctypes
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

from ganlab.errors import GanlabError, one_line
from ganlab.studies.study import (
    CONFIG_ATTR,
    HEARTBEAT_ATTR,
    NAME_ATTR,
    REASON_ATTR,
    RETRY_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
    status_counts,
)

PARENT_TAG = "mlflow.parentRunId"
#: Set in a trial's run process when the study prunes: the storage URL, study and trial id.
PRUNING_ENV = "GANLAB_STUDY_TRIAL"
PRUNED_ATTR = "ganlab.pruned_at"
#: Seconds a run stopped for a lost storage gets to checkpoint before it is killed.
STOP_WAIT = 30.0
#: Set by ``ganlab sweep --workers N`` for a worker it pinned to one GPU (recorded on its runs).
GPU_ENV = "GANLAB_WORKER_GPU"


class StorageLost(GanlabError):
    """The storage stopped answering while this worker ran a trial."""


class Worker:
    def __init__(self, study: Any, described: dict[str, Any], storage_url: str, tracking_uri: str | None = None,
                 say: Callable[[str], None] | None = None, poll: float = 1.0) -> None:
        from ganlab.record.tracking import client

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
        self.say = say or (lambda text: print(f"ganlab: {text}", file=sys.stderr, flush=True))
        self.ran: list[tuple[int, str]] = []  # (trial number, final state) of this worker's trials
        self.proc: subprocess.Popen[bytes] | None = None
        self.lost_storage: str | None = None  # why heartbeats could not be written, once the run was stopped

    # ---- the loop ----------------------------------------------------------------
    def run(self) -> int:
        """Run trials until none is left; 0 when every trial this worker ran completed, else 1."""
        self.say(f"worker {self.me} on study '{self.study.study_name}' (tracking {self.uri})")
        try:
            while True:
                self.reap_stale()
                trial_id = self.claim()
                if trial_id is None:
                    if not self._any_running():
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
        return 0 if all(state == "COMPLETE" for _, state in self.ran) else 1

    def claim(self) -> int | None:
        from optuna.trial import TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                claimed = self.storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING)
            except Exception:  # finished meanwhile by another worker
                continue
            if claimed:
                self.storage.set_trial_user_attr(frozen._trial_id, WORKER_ATTR, self.me)
                self.storage.set_trial_user_attr(frozen._trial_id, HEARTBEAT_ATTR, time.time())
                return frozen._trial_id
        return None

    def _any_running(self) -> bool:
        from optuna.trial import TrialState

        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    # ---- one trial ------------------------------------------------------------------
    def run_trial(self, trial_id: int) -> None:
        import optuna

        trial = optuna.trial.Trial(self.study, trial_id)
        frozen = self.storage.get_trial(trial_id)
        try:
            toml_text, name = self.trial_config(trial, frozen)
        except GanlabError as exc:
            self.finish(trial_id, frozen.number, "FAIL", reason=one_line(exc, plain_ganlab_errors=True))
            return
        code, log_path, tmp = self.launch(trial_id, toml_text, name)
        if self.lost_storage is not None:
            tmp.cleanup()
            raise StorageLost(f"the study's storage stopped answering ({self.lost_storage}); trial {name} was "
                              "stopped (its run KILLED) and will be retried once the storage is back and a worker runs")
        try:
            self.conclude(trial_id, frozen.number, name, code, log_path)
        finally:
            tmp.cleanup()

    def trial_config(self, trial: Any, frozen: Any) -> tuple[str, str]:
        """A grid trial's stored configuration, or a search trial's, built from the sampled values."""
        if CONFIG_ATTR in frozen.user_attrs:
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
        name = f"trial-{frozen.number} {shown}"[:250]
        config = config.replace(run_name=name, parent_run_id=self.parent_id)
        text = config.to_toml()
        # a retry reruns exactly this configuration
        self.storage.set_trial_user_attr(frozen._trial_id, CONFIG_ATTR, text)
        self.storage.set_trial_user_attr(frozen._trial_id, NAME_ATTR, name)
        return text, name

    def launch(self, trial_id: int, toml_text: str, name: str) -> tuple[int, Path, Any]:
        tmp = tempfile.TemporaryDirectory(prefix="ganlab-trial-")
        config_path = Path(tmp.name) / "trial.toml"
        config_path.write_text(toml_text, encoding="utf-8")
        log_path = Path(tmp.name) / "trial.log"
        command = [sys.executable, "-m", "ganlab", "run", "--config", str(config_path), "--run-name", name,
                   "--tracking-uri", self.uri]
        for spec in self.described["plugins"]:
            command += ["--plugin", spec]
        env = dict(os.environ)
        search = self.described.get("search") or {}
        if search.get("pruner", "none") != "none":
            env[PRUNING_ENV] = f"{self.storage_url}|{self.study.study_name}|{trial_id}"
            command += ["--plugin", "ganlab.studies.pruning"]
        self.say(f"trial {name}: started")
        with open(log_path, "wb") as log:
            # its own session (a Ctrl-C reaches it once, forwarded below), and it dies with this
            # worker: a killed worker's trial must not finish on its own beside its retry
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
            # heartbeats from a thread started after the fork (preexec_fn and threads do not mix)
            beat = threading.Event()
            thread = threading.Thread(target=self._beat, args=(trial_id, beat), daemon=True)
            thread.start()
            try:
                code = self.proc.wait()
            except BaseException:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGINT)
                    self.proc.wait()
                raise
            finally:
                beat.set()
                thread.join()
        return code, log_path, tmp

    def conclude(self, trial_id: int, number: int, name: str, code: int, log_path: Path) -> None:
        from ganlab.cli.sweep_jobs import _last_error

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
            self.finish(trial_id, number, "FAIL", reason=_last_error(log_path, code))
            return
        objective = (self.described.get("search") or {}).get("objective")
        if not objective:
            self.finish(trial_id, number, "COMPLETE", value=0.0)  # a grid ranks nothing: every value 0
            return
        metrics = self.client.get_run(run_id).data.metrics if run_id else {}
        if objective not in metrics:
            reason = (f"the study's objective '{objective}' is a metric its runs do not log (trial {number}'s run "
                      f"logged: {', '.join(sorted(metrics)[:12]) or 'none'})")
            self.finish(trial_id, number, "FAIL", reason=reason)
            self.stop_study(reason)
            raise GanlabError(reason)
        self.finish(trial_id, number, "COMPLETE", value=float(metrics[objective]))

    def finish(self, trial_id: int, number: int, state: str, value: float | None = None, reason: str = "") -> None:
        from optuna.trial import TrialState

        if reason:
            self.storage.set_trial_user_attr(trial_id, REASON_ATTR, reason[:1000])
        values = [value] if value is not None else None
        self.storage.set_trial_state_values(trial_id, getattr(TrialState, state), values)
        self.ran.append((number, state))
        name = self.storage.get_trial(trial_id).user_attrs.get(NAME_ATTR, f"trial-{number}")
        self.say(f"trial {name}: {state}" + (f" ({value:g})" if value is not None and state == "COMPLETE" else "")
                 + (f": {reason}" if reason else ""))

    def child_run(self, name: str) -> str | None:
        quoted = name.replace("'", "\\'")
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.run_name = '{quoted}'",
            max_results=1)
        return found[0].info.run_id if found else None

    def _beat(self, trial_id: int, stop: threading.Event) -> None:
        """Heartbeats while the run lasts. Once none could be written for ``grace`` seconds the
        trial counts as dead and will be retried elsewhere, so this run is stopped (KILLED): a
        trial must not finish twice."""
        written = time.monotonic()
        while not stop.wait(self.heartbeat):
            try:
                self.storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())
                written = time.monotonic()
            except Exception as exc:  # the storage did not answer: the next beat tries again
                if time.monotonic() - written > self.grace and self.proc is not None and self.proc.poll() is None:
                    self.lost_storage = one_line(exc)
                    self.proc.send_signal(signal.SIGINT)
                    try:  # it checkpoints and ends its run KILLED; a run whose tracking is gone too cannot
                        self.proc.wait(timeout=STOP_WAIT)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                    return

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

    # ---- trials whose worker died -------------------------------------------------------
    def reap_stale(self) -> None:
        from optuna.trial import TrialState

        now = time.time()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            last = frozen.user_attrs.get(HEARTBEAT_ATTR)
            if last is None and frozen.datetime_start is not None:
                last = frozen.datetime_start.timestamp()
            if last is None or now - float(last) <= self.grace:
                continue
            worker = frozen.user_attrs.get(WORKER_ATTR, "an unknown worker")
            reason = f"its worker {worker} stopped sending heartbeats (none for {now - float(last):.0f} s)"
            try:
                self.storage.set_trial_user_attr(frozen._trial_id, REASON_ATTR, reason)
                if not self.storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL):
                    continue
            except Exception:  # another worker failed it first
                continue
            name = frozen.user_attrs.get(NAME_ATTR, f"trial-{frozen.number}")
            run_id = self.child_run(name)
            if run_id is not None and self.client.get_run(run_id).info.status == "RUNNING":
                from mlflow.entities import RunTag

                self.client.log_batch(run_id, tags=[RunTag("ganlab.failure", reason)])
                self.client.set_terminated(run_id, status="FAILED")
            self.retry(frozen, reason)

    def retry(self, frozen: Any, reason: str) -> None:
        """Enqueue the dead trial once more, unless it was itself a retry (then it stays FAILED)."""
        trials = self.study.get_trials(deepcopy=False)
        if RETRY_ATTR in frozen.user_attrs or any(t.user_attrs.get(RETRY_ATTR) == frozen.number for t in trials):
            self.say(f"trial {frozen.number} FAILED: {reason}; it was retried once already")
            return
        attrs = {RETRY_ATTR: frozen.number}
        if CONFIG_ATTR in frozen.user_attrs:
            attrs[CONFIG_ATTR] = frozen.user_attrs[CONFIG_ATTR]
            attrs[NAME_ATTR] = f"{frozen.user_attrs.get(NAME_ATTR, f'trial-{frozen.number}')} (retry)"
        self.study.enqueue_trial(dict(frozen.params), user_attrs=attrs)
        self.say(f"trial {frozen.number} failed: {reason}; enqueued once more")

    # ---- the parent run -----------------------------------------------------------------
    def close_parent_if_done(self) -> None:
        counts = status_counts(self.study)
        if counts["left"] or counts["running"]:
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


try:  # looked up before any fork: the child between fork and exec only makes the call
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: a child then outlives a killed worker
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: receive SIGKILL when the worker dies (Linux prctl PR_SET_PDEATHSIG = 1)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)
