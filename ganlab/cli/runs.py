"""``ganlab runs``: the runs in the store, their status, and which RUNNING ones are stale.

A run whose process died without a word (SIGKILL, the OOM killer, a lost
node) stays RUNNING in MLflow. This command shows it as STALE, using the
writer's host/pid tags and heartbeat (see :mod:`ganlab.record.heartbeat`), together
with the newest checkpoint it could be resumed from (``ganlab resume RUN_ID``).
Imports mlflow only when it runs, never torch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError

STATUSES = ("RUNNING", "STALE", "FINISHED", "FAILED", "KILLED", "SCHEDULED")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)


def runs(
    experiment: Annotated[Optional[list[str]], typer.Option("--experiment", "-e",
                          help="Only runs of this experiment (repeatable). [default: every experiment]")] = None,
    status: Annotated[Optional[str], typer.Option(help=f"Only runs with this status: {', '.join(STATUSES)}.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Only stale runs (same as --status STALE).")] = False,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.", min=1)] = 50,
    stale_after: Annotated[float, typer.Option(
        help="Seconds without a heartbeat after which a run on another host counts as stale.", min=0)] = 900.0,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List runs with their status; RUNNING runs whose process is gone show as STALE (resumable)."""
    from ganlab.record.store import read_client, search_all, tracking_uri as resolve_uri

    wanted = "STALE" if stale else (status.upper() if status else None)
    if wanted is not None and wanted not in STATUSES:
        raise GanlabError(f"unknown status '{status}' (valid: {', '.join(STATUSES)})")
    uri = resolve_uri(tracking_uri)
    store = read_client(uri)
    experiments = select_experiments(store, experiment or [], uri)
    found = search_all(store, list(experiments), limit=limit if wanted is None else None,
                       newest_first=True) if experiments else []
    rows = [describe(run, experiments, stale_after) for run in found]
    if wanted is not None:
        rows = [r for r in rows if r["status"] == wanted][:limit]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    show(rows, uri)


def select_experiments(store: Any, names: list[str], uri: str) -> dict[str, str]:
    """experiment id -> name, for the given names (all active experiments when none)."""
    from ganlab.errors import did_you_mean

    active = {e.experiment_id: e.name for e in store.search_experiments()}
    if not names:
        return active
    chosen = {}
    for name in names:
        match = [eid for eid, ename in active.items() if ename == name]
        if not match:
            valid = sorted(active.values())
            raise GanlabError(f"no experiment '{name}' in {uri}{did_you_mean(name, valid)} "
                              f"(experiments: {', '.join(valid) or 'none'})")
        chosen[match[0]] = name
    return chosen


def describe(run: Any, experiments: dict[str, str], stale_after: float) -> dict[str, Any]:
    """One row: what a person needs to decide whether to resume a run."""
    from ganlab.record.heartbeat import TAG_STEP, last_seen, liveness
    from ganlab.train.resume import checkpoint_dir

    state = liveness(run, stale_after=stale_after)
    tags = run.data.tags
    status = "STALE" if state.stale else run.info.status
    checkpoint = latest_checkpoint_step(checkpoint_dir(run))
    seen = last_seen(run)
    return {
        "run_id": run.info.run_id,
        "experiment": experiments.get(run.info.experiment_id, run.info.experiment_id),
        "name": run.info.run_name or "",
        "status": status,
        "mlflow_status": run.info.status,
        "step": int(tags[TAG_STEP]) if tags.get(TAG_STEP, "").isdigit() else None,
        "steps": _int(run.data.params.get("steps")),
        "checkpoint_step": checkpoint,
        "started": (run.info.start_time or 0) / 1000.0,
        "last_seen": seen,
        "writer": state.detail if run.info.status == "RUNNING" else "",
        "failure": tags.get("ganlab.failure_reason") or tags.get("ganlab.error") or "",
        "population": tags.get("ganlab.population.seeds", ""),  # a population's parent run: its seeds
    }


def latest_checkpoint_step(directory: Path) -> int | None:
    from ganlab.train.checkpoint import list_checkpoints

    found = list_checkpoints(directory)
    return int(found[-1].name[len("step-"):-len(".pt")]) if found else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def show(rows: list[dict[str, Any]], uri: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from ganlab.record.heartbeat import format_age
    from ganlab.redact import mask_credentials

    colours = {"RUNNING": "cyan", "STALE": "bold yellow", "FINISHED": "green", "FAILED": "red", "KILLED": "magenta"}
    table = Table(title=f"runs in {mask_credentials(uri)}")
    for column in ("run id", "experiment", "name", "status", "step", "checkpoint", "started", "note"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for r in rows:
        step = "-" if r["step"] is None else (f"{r['step']}/{r['steps']}" if r["steps"] else str(r["step"]))
        note = r["writer"] or r["failure"]
        if r.get("population"):
            note = "; ".join(filter(None, [f"population of seeds {r['population']}", note]))
        if r["status"] in ("STALE", "KILLED", "FAILED") and (r["checkpoint_step"] is not None or r.get("population")):
            note = f"{note}; ganlab resume {r['run_id']}" if note else f"ganlab resume {r['run_id']}"
        colour = colours.get(r["status"], "white")
        table.add_row(r["run_id"], r["experiment"], r["name"], f"[{colour}]{r['status']}[/{colour}]", step,
                      "-" if r["checkpoint_step"] is None else str(r["checkpoint_step"]),
                      f"{format_age(now - r['started'])} ago" if r["started"] else "-", note)
    Console(width=max(140, Console().width)).print(table)
    if not rows:
        typer.echo("no runs")
