"""Sweeps as Optuna studies (``ganlab.studies``): create and run one, ``sweep-worker``, ``sweep status``.

Exit codes as ``ganlab sweep``: 0 every trial completed, 1 some failed, 2 refused before anything
was created (a bad file, storage or objective), 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError, one_line
from ganlab.redact import mask_credentials
from ganlab.train.signals import exit_code_of, hangup_as_interrupt


def run_study(spec: Any, found: list[Any], sets: list[str], uri: str, storage: str | None, workers: int | None,
              plugin_specs: list[str], registry: Any, heartbeat: float, grace: float, explicit_uri: bool) -> int:
    from ganlab.studies.storage import resolve
    from ganlab.studies.study import create_study

    if grace <= 2 * heartbeat:
        raise GanlabError(f"--grace {grace:g} must be more than twice --heartbeat {heartbeat:g}: a trial would be "
                          "judged dead between two heartbeats")
    url = resolve(storage)
    created = create_study(spec, found, sets, uri, url, plugin_specs, registry, heartbeat, grace)
    shown = mask_credentials(url)
    say(f"study '{created.name}' in {shown}: {created.trials} trial(s); parent run {created.parent_id} "
        f"in experiment '{spec.experiment}'")
    storage_flag = f" --storage {shown}" if storage else ""
    if workers == 0:
        typer.echo(created.name)
        say(f"no worker started here; on each worker machine: ganlab sweep-worker {created.name}{storage_flag}")
        return 0
    count = workers or 1
    code = start_local_workers(created.name, url, count, found[0].config.device if found else "auto")
    if code == 2:  # the worker said why in its one line; the parent run is closed FAILED
        return 2
    status = _summary(created.name, url)
    typer.echo(status)
    uri_flag = f" --tracking-uri {mask_credentials(uri)}" if explicit_uri else ""
    typer.echo(f"compare: ganlab compare --sweep {created.parent_id}{uri_flag}")
    typer.echo(f"status: ganlab sweep status {created.name}{storage_flag}")
    return code


#: the storage URL a local worker reads (ganlab sweep-worker --storage), passed in its environment
STORAGE_ENV = "GANLAB_SWEEP_STORAGE"


def start_local_workers(name: str, url: str, count: int, device: str) -> int:
    """``count`` worker processes here, each pinned to a GPU in turn (CUDA) and given its share of the cores."""
    from ganlab.cli.sweep_jobs import job_environment, visible_gpus

    gpus = visible_gpus(os.environ) if device in ("auto", "cuda") else []
    procs = []
    for slot in range(count):
        env, gpu = job_environment(os.environ, device, slot, gpus)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
        if gpu is not None:
            from ganlab.studies.worker import GPU_ENV

            env[GPU_ENV] = gpu
            say(f"worker {slot}: CUDA_VISIBLE_DEVICES={gpu}")
        env[STORAGE_ENV] = url  # not on the command line, where `ps` would show its password to every user
        command = [sys.executable, "-m", "ganlab", "sweep-worker", name]
        procs.append(subprocess.Popen(command, env=env, start_new_session=True))
    try:
        with hangup_as_interrupt():
            codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt as exc:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(getattr(exc, "signum", signal.SIGINT))
        for proc in procs:
            proc.wait()
        raise typer.Exit(exit_code_of(exc)) from None
    for special in (130, 129, 2):  # interrupted (Ctrl-C, a closed terminal); a study stopped because every run would fail alike
        if special in codes:
            return special
    return 0 if all(code == 0 for code in codes) else 1


def sweep_worker(
    study: Annotated[str, typer.Argument(help="The study's name, as `ganlab sweep --storage ...` printed it.")],
    storage: Annotated[Optional[str], typer.Option(envvar="GANLAB_SWEEP_STORAGE",
                                                   help="The study's storage (default: journal:mlruns/optuna.journal); "
                                                   "also read from GANLAB_SWEEP_STORAGE, which `ps` does not show.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: the one the study was created with).")] = None,
) -> None:
    """Pull trials from a sweep's study and run them until none is left (any number of workers, any machines).

    Exit code 0 when every trial this worker ran completed, 1 when any failed, 2 for a missing study or storage.
    """
    from ganlab.studies.storage import resolve
    from ganlab.studies.study import load_study
    from ganlab.studies.worker import StorageLost, Worker

    url = resolve(storage)
    found, described = load_study(study, url)
    try:
        with hangup_as_interrupt():
            code = Worker(found, described, url, tracking_uri).run()
    except KeyboardInterrupt as exc:
        raise typer.Exit(exit_code_of(exc)) from None
    except StorageLost as exc:
        say(f"error: {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:  # a server went away between trials: which one, in one line
        from ganlab.studies.worker import _is_storage_error

        if _is_storage_error(exc):
            say(f"error: the study's storage {mask_credentials(url)} stopped answering ({one_line(exc)}); start workers again "
                "once it is back: a trial left RUNNING is retried")
        elif _is_tracking_error(exc):
            say(f"error: the MLflow tracking server stopped answering ({one_line(exc)}); start workers again once it "
                "is back: a trial left RUNNING is retried")
        else:
            raise
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _is_tracking_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("mlflow", "requests", "urllib3"))


def show_status(name: str | None, storage: str | None) -> None:
    if not name:
        raise GanlabError("ganlab sweep status STUDY [--storage URL]: name the study (as `ganlab sweep` printed it)")
    from ganlab.studies.storage import resolve

    typer.echo(_summary(name, resolve(storage), details=True))


def _summary(name: str, url: str, details: bool = False) -> str:
    from ganlab.studies.study import load_study, status_counts

    study, described = load_study(name, url)
    counts = status_counts(study)
    line = (f"study '{name}': {counts['done']} done, {counts['running']} running, {counts['failed']} failed, "
            f"{counts['left']} left" + (f", {counts['pruned']} pruned" if counts["pruned"] else "")
            + (f" ({counts['retried']} retried after their worker died)" if counts["retried"] else ""))
    lines = [line]
    for number, trial_name, reason in counts["failures"]:
        lines.append(f"  FAILED trial {number} {trial_name}: {reason}")
    if details:
        objective = (described.get("search") or {}).get("objective")
        if objective and counts["done"]:
            best = study.best_trial
            shown = ", ".join(f"{k}={v}" for k, v in best.params.items())
            lines.append(f"  best {objective} = {best.value:g} (trial {best.number}: {shown})")
        lines.append(f"  parent run {described['parent_run_id']} in experiment '{described['experiment']}' "
                     f"at {described['tracking_uri']}")
    return mask_credentials("\n".join(lines))  # the tracking URI, a failed trial's reason


def say(text: str) -> None:
    print(f"ganlab: {mask_credentials(text)}", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.command("sweep-worker")(sweep_worker)
