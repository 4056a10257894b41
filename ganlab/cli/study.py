"""Sweeps as Optuna studies (``ganlab.studies``): create and run one, ``sweep-worker``, ``sweep status``.

Exit codes as ``ganlab sweep``: 0 every trial completed, 1 some failed, 2 refused before anything
was created (a bad file, storage or objective), 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError, one_line
from ganlab.redact import mask_credentials
from ganlab.train.signals import exit_code_of, hangup_as_interrupt


def run_study(spec: Any, found: list[Any], sets: list[str], uri: str, storage: str | None, jobs: int,
              plugin_specs: list[str], registry: Any, heartbeat: float, grace: float, explicit_uri: bool,
              rerun: bool = False) -> int:
    from ganlab.studies.local import SweepInterrupted, run_workers
    from ganlab.studies.storage import resolve
    from ganlab.studies.study import create_study

    if grace <= 2 * heartbeat:
        raise GanlabError(f"--grace {grace:g} must be more than twice --heartbeat {heartbeat:g}: a trial would be "
                          "judged dead between two heartbeats")
    url = resolve(storage)
    created = create_study(spec, found, sets, uri, url, plugin_specs, registry, heartbeat, grace, jobs, rerun, say)
    shown = mask_credentials(url)
    storage_flag = f" --storage {shown}" if storage else ""
    say(f"sweep '{spec.name}': {created.trials} variant(s) in experiment '{spec.experiment}', parent run "
        f"{created.parent_id}" + (f", {jobs} in parallel" if jobs > 1 else "") + f"; study '{created.name}' in {shown}")
    if jobs == 0:
        typer.echo(created.name)
        say(f"no worker started here; on each worker machine: ganlab sweep-worker {created.name}{storage_flag}")
        return 0
    try:
        code = run_workers(created.name, url, jobs, found[0].config.device if found else "auto", say)
    except SweepInterrupted as exc:
        say(str(exc))
        raise typer.Exit(exc.exit_code) from None
    typer.echo(_summary(created.name, url))
    uri_flag = f" --tracking-uri {mask_credentials(uri)}" if explicit_uri else ""
    typer.echo(f"compare: ganlab compare --sweep {created.parent_id}{uri_flag}")
    typer.echo(f"status: ganlab sweep status {created.name}{storage_flag}")
    return code


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
    from ganlab.studies.worker import StorageLost, Worker

    url = resolve(storage)
    worker = Worker(study, url, tracking_uri)
    worker.say(f"worker {worker.me} on study '{study}' (tracking {worker.uri})")
    try:
        with hangup_as_interrupt():
            code = worker.run()
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
    """The sweep's verdict in one line (and each failed trial's reason); with ``details``, the study's
    counts, the best trial of a search and where the parent run is."""
    from ganlab.studies.study import load_study, status_counts

    study, described = load_study(name, url)
    counts = status_counts(study)
    total = counts["done"] + counts["failed"] + counts["pruned"] + counts["running"] + counts["left"]
    if details:
        line = (f"study '{name}': {counts['done']} done, {counts['running']} running, {counts['failed']} failed, "
                f"{counts['left']} left")
    else:
        verdict = "all finished" if not counts["failed"] else f"{counts['failed']} of {total} failed"
        line = f"sweep '{described['sweep']}': {total} variant(s), {verdict}"
    line += (f", {counts['pruned']} pruned" if counts["pruned"] else "")
    line += f" ({counts['reused']} reused from earlier runs)" if counts["reused"] else ""
    line += f" ({counts['retried']} retried after their worker died)" if counts["retried"] else ""
    if not details:
        line += f"; parent run {described['parent_run_id']} in experiment '{described['experiment']}'"
    lines = [line]
    for number, trial_name, reason, run_id in counts["failures"]:
        lines.append(f"  FAILED: {trial_name or f'trial {number}'}" + (f" (run {run_id})" if run_id else "") + f": {reason}")
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
