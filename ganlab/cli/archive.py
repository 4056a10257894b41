"""``ganlab export`` and ``ganlab import``: an experiment's records carried between run stores as a file
(:mod:`ganlab.record.archive` says what the file holds and what it leaves out)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)


def export(
    path: Annotated[Path, typer.Argument(help="The file to write (.json, or .json.gz compressed); an existing one is refused.")],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="The MLflow experiment whose ended runs to write.")],
    metrics: Annotated[Optional[str], typer.Option("--metrics", "-m", help="Comma-separated metric keys, '*' patterns allowed, e.g. 'modes.*,loss.*'. [default: all]")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
) -> None:
    """Write an experiment's ended runs (params, tags, metric histories; not artifacts) to a file that
    `ganlab import` reads into another store."""
    from ganlab.record.archive import export_runs, write_archive
    from ganlab.record.store import existing_store, get_experiment, read_client
    from ganlab.redact import mask_credentials

    uri = existing_store(tracking_uri)
    store = read_client(uri)
    found = get_experiment(store, experiment, mask_credentials(uri))
    document, left_out = export_runs(store, found.experiment_id, experiment,
                                     [p.strip() for p in (metrics or "").split(",")])
    write_archive(document, path)
    if left_out:
        print(f"ganlab: note: {left_out} run(s) not ended (RUNNING or SCHEDULED) left out", file=sys.stderr)
    print(f"ganlab: {len(document['runs'])} run(s) of experiment '{experiment}' written to {path}", file=sys.stderr)


def import_(
    path: Annotated[Path, typer.Argument(help="A file `ganlab export` wrote.")],
    experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Import into this experiment (created if missing). [default: the file's]")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
) -> None:
    """Add the runs of a file `ganlab export` wrote to this store; runs already imported are skipped."""
    from ganlab.record.archive import import_runs, read_archive
    from ganlab.record.store import client, ensure_experiment, tracking_uri as resolve_uri
    from ganlab.redact import mask_credentials

    document = read_archive(path)  # the whole file is checked before the store is touched
    name = experiment or document["experiment"]
    uri = resolve_uri(tracking_uri)
    mlflow_client = client(uri)
    experiment_id = ensure_experiment(mlflow_client, name, uri)
    imported, present = import_runs(mlflow_client, experiment_id, document)
    already = f"; {present} already there" if present else ""
    print(f"ganlab: {imported} run(s) imported into experiment '{name}' of {mask_credentials(uri)}{already} "
          "(their artifacts stay in the store they came from)", file=sys.stderr)
