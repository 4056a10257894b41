"""Running a validated sweep: one parent MLflow run, one nested child run per variant.

Children carry MLflow's ``mlflow.parentRunId`` tag (through the ``parent_run_id``
setting the tracker reads), so the MLflow UI shows them under the parent and
``ganlab compare --sweep`` finds them. A variant that fails is recorded as a
FAILED child (a placeholder child when it failed before its run existed, e.g.
a dataset that would not load) and the others carry on; the parent ends
FINISHED only when every variant finished.

Sequential sweeps train in this process, one fresh plugin manager per variant.
With ``jobs > 1`` each variant is a ``python -m ganlab run --config`` process;
its output goes to a log file that is attached to its child run, and each
process gets ``OMP_NUM_THREADS = cores // jobs`` (unless set) so N processes
do not fight over the same cores.

GPUs: a parallel job whose device is ``auto`` or ``cuda`` runs with
``CUDA_VISIBLE_DEVICES`` set to one GPU, job slot k (0 .. jobs-1) getting the
k-th GPU modulo their number, so N jobs spread over the machine's GPUs instead
of all landing on cuda:0. The GPUs handed out are, in this order of precedence:
``GANLAB_GPUS`` (a comma-separated list of CUDA device ids or UUIDs, ``none``
for no assignment), the sweep's own ``CUDA_VISIBLE_DEVICES`` list, or every GPU
``nvidia-smi -L`` lists (torch is not imported to count them). An explicit
``cuda:K``, ``cpu`` or ``mps`` is left alone. The child run is tagged
``ganlab.sweep.gpu`` (the CUDA_VISIBLE_DEVICES it got) and ``ganlab.sweep.slot``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError, last_error_line, one_line
from ganlab.config.sweep import SweepSpec, Variant
# the tag on an earlier run that a sweep reuses for a variant (see reuse_finished): compare reads it
from ganlab.compare.stats import REUSED_TAG_PREFIX
from ganlab.train.signals import HANDLED, Signalled, detach_from_terminal, exit_code_of

#: Tags on the parent run.
ROLE_TAG = "ganlab.sweep.role"
GRID_TAG = "ganlab.sweep.grid"
PARENT_TAG = "mlflow.parentRunId"
#: Tags on a parallel job's child run: the CUDA_VISIBLE_DEVICES it was given, and its job slot.
GPU_TAG = "ganlab.sweep.gpu"
SLOT_TAG = "ganlab.sweep.slot"
#: Environment override of the GPUs a parallel sweep hands out (see the module docstring).
GPUS_ENV = "GANLAB_GPUS"
#: Devices that mean "whichever GPU is first": those jobs are spread over the GPUs.
SPREAD_DEVICES = ("auto", "cuda")


@dataclass
class Outcome:
    variant: Variant
    status: str  # FINISHED, FAILED or KILLED
    run_id: str | None
    seconds: float
    error: str = ""
    gpu: str | None = None  # the CUDA_VISIBLE_DEVICES a parallel job was given
    reused: bool = False  # an earlier run of the same settings and seed, not trained again


class SweepInterrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP stopped the sweep; the parent run is marked KILLED."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code



class SweepRunner:
    def __init__(self, spec: SweepSpec, variants: Sequence[Variant], uri: str, plugin_specs: Sequence[str],
                 jobs: int = 1, sets: Sequence[str] = (), say: Callable[[str], None] | None = None,
                 rerun: bool = False) -> None:
        from ganlab.record.store import client

        self.spec, self.variants, self.uri = spec, list(variants), uri
        self.plugin_specs, self.jobs, self.sets = list(plugin_specs), max(1, jobs), list(sets)
        self.client = client(uri)
        self.say = say or (lambda text: print(f"ganlab: {text}", file=sys.stderr, flush=True))
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self.outcomes: list[Outcome] = []
        self.rerun = rerun  # --rerun: train every variant, even one that already finished
        self.to_train: list[Variant] = list(self.variants)  # the variants not reused (see reuse_finished)
        self.gpus: list[str] = []  # handed out to parallel jobs; see job_environment
        self._lock = threading.Lock()

    # ---- the parent run ------------------------------------------------------
    def open_parent(self) -> str:
        from mlflow.entities import Param

        from ganlab.record.store import ensure_experiment
        from ganlab.record.tracker import git_commit

        self.experiment_id = ensure_experiment(self.client, self.spec.experiment, self.uri)
        tags = {ROLE_TAG: "parent", GRID_TAG: self.spec.grid_json()[:5000], "ganlab.sweep.file": str(self.spec.path)}
        if self.spec.description:
            tags["mlflow.note.content"] = self.spec.description
        commit = git_commit()
        if commit:
            tags["ganlab.git_commit"] = commit
        run = self.client.create_run(self.experiment_id, run_name=self.spec.name, tags=tags)
        self.parent_id = run.info.run_id
        params = {"sweep.grid": self.spec.grid_json(), "sweep.variants": len(self.variants),
                  "sweep.jobs": self.jobs, "sweep.file": str(self.spec.path),
                  "sweep.set": ",".join(self.sets) or "-"}
        self.client.log_batch(self.parent_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        if self.spec.path.is_file():
            self.client.log_artifact(self.parent_id, str(self.spec.path), artifact_path="sweep")
        self.client.log_dict(self.parent_id, [{"index": v.index, "name": v.name, "values": v.values}
                                              for v in self.variants], "sweep/variants.json")
        return self.parent_id

    def close_parent(self, status: str) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        finished = sum(o.status == "FINISHED" for o in self.outcomes)
        failed = [o.variant.name for o in self.outcomes if o.status != "FINISHED"]
        self.client.log_batch(
            self.parent_id,
            metrics=[Metric("sweep.finished", finished, now, 0), Metric("sweep.failed", len(failed), now, 0)],
            tags=[RunTag("ganlab.sweep.failed_variants", ", ".join(failed)[:5000] or "-")],
        )
        self.client.set_terminated(self.parent_id, status=status)

    # ---- the whole sweep -----------------------------------------------------
    def run(self) -> list[Outcome]:
        self.open_parent()
        self.say(f"sweep '{self.spec.name}': {len(self.variants)} variant(s) in experiment "
                 f"'{self.spec.experiment}', parent run {self.parent_id}"
                 + (f", {self.jobs} in parallel" if self.jobs > 1 else ""))
        status = "FAILED"
        previous = _raise_on_signals()
        try:
            if not self.rerun:
                self.reuse_finished()
            if self.jobs == 1:
                for variant in self.to_train:
                    self.record(self.run_in_process(variant))
            else:
                self.run_parallel()
            status = "FINISHED" if all(o.status == "FINISHED" for o in self.outcomes) else "FAILED"
        except SweepInterrupted:
            status = "KILLED"
            raise
        except KeyboardInterrupt as exc:
            status = "KILLED"
            raise SweepInterrupted("sweep interrupted; finished variants are kept, the parent run is KILLED",
                                   exit_code_of(exc)) from None
        except BaseException as exc:
            if _interrupted(exc):
                status = "KILLED"
                raise SweepInterrupted(f"sweep interrupted ({exc}); the parent run is KILLED",
                                       exit_code_of(exc)) from None
            raise
        finally:
            self.close_parent(status)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.outcomes

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            done = len(self.outcomes)
        where = f" run {outcome.run_id}" if outcome.run_id else ""
        gpu = f" (CUDA_VISIBLE_DEVICES={outcome.gpu})" if outcome.gpu is not None else ""
        why = f": {outcome.error}" if outcome.error else ""
        self.say(f"[{done - self.reused}/{len(self.to_train)}] {outcome.variant.name} {outcome.status} "
                 f"in {outcome.seconds:.1f}s{where}{gpu}{why}")

    # ---- variants that already finished: reused, not trained (and counted) again ----
    @property
    def reused(self) -> int:
        return sum(o.reused for o in self.outcomes)

    def reuse_finished(self) -> None:
        """Take the variants that already FINISHED in the experiment as they are.

        A sweep started again (after Ctrl-C, a crash, a failed variant) would otherwise
        train them a second time, and ``ganlab compare`` would count the same seed twice.
        The earlier run is tagged as this sweep's (REUSED_TAG_PREFIX + parent id), so
        ``compare --sweep`` of this sweep finds every variant.
        """
        from mlflow.entities import RunTag

        found = finished_runs(self.client, self.experiment_id, self.variants)
        if not found:
            return
        for variant in self.variants:
            run_id = found.get(variant.index)
            if run_id is not None:
                self.client.log_batch(run_id, tags=[RunTag(REUSED_TAG_PREFIX + self.parent_id, variant.name)])
                with self._lock:
                    self.outcomes.append(Outcome(variant, "FINISHED", run_id, 0.0, reused=True))
        self.to_train = [v for v in self.variants if v.index not in found]
        others = f"the other {len(self.to_train)}" if self.to_train else "none"
        self.say(f"note: {len(found)} of {len(self.variants)} variants already finished in experiment "
                 f"'{self.spec.experiment}'; running {others} (--rerun trains them all again)")

    # ---- sequential, in this process ------------------------------------------
    def run_in_process(self, variant: Variant) -> Outcome:
        import torch

        from ganlab.plugins import PluginManager
        from ganlab.train.runner import run as run_training

        config = variant.config.replace(parent_run_id=self.parent_id)
        started = time.monotonic()
        deterministic = torch.are_deterministic_algorithms_enabled()
        plugins = PluginManager().load(self.plugin_specs)
        try:
            if config.seeds:  # population = true: the variant is a population, its run the parent
                from ganlab.train.population.launch import run_population

                contexts = run_population(config, plugins)
                return Outcome(variant, "FINISHED", contexts[0].config.parent_run_id or None,
                               time.monotonic() - started)
            ctx = run_training(config, plugins)
            return Outcome(variant, "FINISHED", ctx.run_id, time.monotonic() - started)
        except (KeyboardInterrupt, SweepInterrupted):
            raise
        except Exception as exc:
            if _interrupted(exc):  # a single run's or a population's: the sweep stops with it
                raise
            run_id = self.child_run_id(variant)
            if run_id is None:
                run_id = self.placeholder(variant, exc)
            elif not isinstance(exc, GanlabError):  # a bug or a plugin's crash: keep the traceback
                self.client.log_text(run_id, traceback.format_exc(), "sweep/traceback.txt")
            return Outcome(variant, "FAILED", run_id, time.monotonic() - started, one_line(exc, plain_ganlab_errors=True))
        finally:
            torch.use_deterministic_algorithms(deterministic)

    # ---- parallel, one process per variant -------------------------------------
    def run_parallel(self) -> None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False
        # a job takes a free slot and gives it back when done: slot k runs on GPU k mod G
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.jobs):
            self._slots.put(slot)
        spread = any(v.config.device in SPREAD_DEVICES for v in self.variants)
        self.gpus = visible_gpus(os.environ) if spread else []
        if self.gpus:
            self.say(f"GPUs {','.join(self.gpus)} handed out to the {self.jobs} job slots in turn "
                     f"(CUDA_VISIBLE_DEVICES per job; {GPUS_ENV} overrides)")
        with tempfile.TemporaryDirectory(prefix="ganlab-sweep-") as tmp:
            pool = ThreadPoolExecutor(max_workers=self.jobs)
            try:
                pending = {pool.submit(self.run_subprocess, v, Path(tmp)) for v in self.to_train}
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.record(future.result())
            except BaseException as exc:
                self._stopping = True
                forwarded = getattr(exc, "signum", signal.SIGINT)  # a SIGHUP stays one: the runs say why they ended
                for proc in list(self._procs.values()):
                    if proc.poll() is None:
                        proc.send_signal(forwarded)  # the child checkpoints and marks its run KILLED
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)

    def run_subprocess(self, variant: Variant, tmp: Path) -> Outcome:
        if self._stopping:
            return Outcome(variant, "KILLED", None, 0.0, "not started")
        slot = self._slots.get()
        try:
            return self.run_job(variant, tmp, slot)
        finally:
            self._slots.put(slot)

    def run_job(self, variant: Variant, tmp: Path, slot: int) -> Outcome:
        config = variant.config.replace(parent_run_id=self.parent_id)
        config_path = tmp / f"variant-{variant.index:04d}.toml"
        config_path.write_text(config.to_toml())
        log_path = tmp / f"variant-{variant.index:04d}.log"
        command = [sys.executable, "-m", "ganlab", "run", "--config", str(config_path)]
        for spec in self.plugin_specs:
            command += ["--plugin", spec]
        env, gpu = job_environment(os.environ, variant.config.device, slot, self.gpus)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.jobs)))
        started = time.monotonic()
        with open(log_path, "wb") as log:
            # own session: a Ctrl-C reaches the children once, forwarded by run_parallel (a second
            # SIGINT would make them abort without their final checkpoint)
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            self._procs[variant.index] = proc
            code = proc.wait()
        seconds = time.monotonic() - started
        run_id = self.child_run_id(variant)
        error = "" if code == 0 else last_error_line(log_path, code)
        if run_id is None:
            run_id = self.placeholder(variant, error or f"exit code {code}")
        else:
            run = self.client.get_run(run_id)
            if run.info.status == "RUNNING":  # the process died without closing its run
                self.client.set_terminated(run_id, status="FAILED")
            self.client.log_artifact(run_id, str(log_path), artifact_path="sweep")
        self.tag_assignment(run_id, slot, gpu)
        if code == 0:
            return Outcome(variant, "FINISHED", run_id, seconds, gpu=gpu)
        status = "KILLED" if code in (129, 130, 143) else "FAILED"
        return Outcome(variant, status, run_id, seconds, error, gpu=gpu)

    def tag_assignment(self, run_id: str, slot: int, gpu: str | None) -> None:
        """Record on the child run which job slot, and which GPU, it had."""
        from mlflow.entities import RunTag

        tags = [RunTag(SLOT_TAG, str(slot))] + ([RunTag(GPU_TAG, gpu)] if gpu is not None else [])
        self.client.log_batch(run_id, tags=tags)

    # ---- finding and filling in child runs -------------------------------------
    def child_run_id(self, variant: Variant) -> str | None:
        name = variant.name.replace("'", "\\'")
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.run_name = '{name}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def placeholder(self, variant: Variant, error: Any) -> str:
        """A FAILED child for a variant that failed before its run existed."""
        from mlflow.entities import Param, RunTag

        from ganlab.record.outputs import param_value

        message = error if isinstance(error, str) else one_line(error, plain_ganlab_errors=True)
        run = self.client.create_run(self.experiment_id, run_name=variant.name, tags={PARENT_TAG: self.parent_id})
        config = variant.config.replace(parent_run_id=self.parent_id)
        self.client.log_batch(
            run.info.run_id,
            params=[Param(k, param_value(v)) for k, v in config.flat().items()],
            tags=[RunTag("ganlab.error", message[:4000] or "failed"),
                  RunTag("ganlab.failure_reason", "failed before training started")],
        )
        self.client.set_terminated(run.info.run_id, status="FAILED")
        return run.info.run_id


def finished_runs(mlflow_client: Any, experiment_id: str, variants: Sequence[Variant]) -> dict[int, str]:
    """Variant index -> the newest FINISHED run of the experiment with the same settings and seed.

    The same settings: every param of the variant's fully resolved configuration, as the
    tracker records it, except those that only name, place or nest a run
    (``ganlab.compare.replicas.PLACEMENT``); ``seeds`` counts, so a population is never
    taken for one of its replicas. Deleted runs are not searched.
    """
    from ganlab.compare.replicas import identity, matches
    from ganlab.record.store import search_all
    from ganlab.record.outputs import param_value

    runs = search_all(mlflow_client, [experiment_id], "attributes.status = 'FINISHED'")
    runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "parent"]  # a sweep's parent trained nothing
    found: dict[int, str] = {}
    for variant in variants:
        wanted = identity({k: param_value(v) for k, v in variant.config.flat().items()})
        same = [r for r in runs if matches(wanted, r)]
        if same:  # search_all is oldest first
            found[variant.index] = same[-1].info.run_id
    return found


def job_environment(environ: Mapping[str, str], device: str, slot: int,
                    gpus: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The environment of the parallel job in ``slot``, and the GPU it is given (None: none assigned).

    A job on ``auto`` or ``cuda`` sees one GPU, the slot's turn of ``gpus``; it then calls it
    cuda:0. Any other device, or no GPUs, leaves the environment as it is.
    """
    env = dict(environ)
    if device not in SPREAD_DEVICES or not gpus:
        return env, None
    gpu = gpus[slot % len(gpus)]
    env["CUDA_VISIBLE_DEVICES"] = gpu
    return env, gpu


def visible_gpus(environ: Mapping[str, str], count: Callable[[], int] | None = None) -> list[str]:
    """The CUDA device ids a parallel sweep hands out: GANLAB_GPUS, else CUDA_VISIBLE_DEVICES, else nvidia-smi's."""
    if GPUS_ENV in environ:
        text = environ[GPUS_ENV]
        return [] if text.strip().lower() == "none" else device_list(text)
    if "CUDA_VISIBLE_DEVICES" in environ:
        return device_list(environ["CUDA_VISIBLE_DEVICES"])
    return [str(index) for index in range((count or nvidia_smi_gpus)())]


def device_list(text: str) -> list[str]:
    """'0, 2,GPU-ab12' -> ['0', '2', 'GPU-ab12']. Like CUDA, the list ends at the first empty or
    negative entry ('-1' hides every GPU)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        out.append(item)
    return out


def nvidia_smi_gpus() -> int:
    """How many GPUs ``nvidia-smi -L`` lists (0 without the tool or a driver); MIG slices are not counted."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _interrupted(exc: BaseException) -> bool:
    """Whether a variant stopped because SIGINT or SIGTERM arrived while it trained in this process."""
    from ganlab.train.engine import Interrupted  # a population's PopulationInterrupted is one too

    return isinstance(exc, Interrupted)


def _raise_on_signals() -> dict[int, Any]:
    """SIGINT, SIGTERM and SIGHUP stop the sweep cleanly (parent KILLED) instead of leaving it RUNNING.

    Installed explicitly because a process started in the background by a shell inherits SIGINT
    ignored; while a variant trains in this process, the trainer's own handler takes over.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
            raise Signalled(signum)
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, handle) for signum in HANDLED}
