"""Reading an MLflow store that must already exist (compare, sample, ui).

``ganlab.record.tracking.tracking_uri`` creates the store's directory, which is right
for a command that records runs; a command that only reads should instead
say plainly that there is nothing there, rather than create and migrate an
empty database in the wrong directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError, did_you_mean


def existing_store(explicit: str | None = None) -> str:
    """The tracking URI to read from; a local SQLite store must exist."""
    import os

    from ganlab.record.tracking import DEFAULT_URI

    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            hint = "run from the project directory or pass --tracking-uri" if uri == DEFAULT_URI else "check --tracking-uri"
            raise GanlabError(f"no MLflow store at {path} (in {Path.cwd()}); {hint}")
        return uri
    from ganlab.record.tracking import tracking_uri

    return tracking_uri(uri)  # checks the scheme



def get_run(mlflow_client: Any, run_id: str, uri: str) -> Any:
    try:
        return mlflow_client.get_run(run_id)
    except Exception:
        raise GanlabError(f"no run '{run_id}' in the tracking store {uri} (see `ganlab compare` or the MLflow UI)") from None


def experiment_names(mlflow_client: Any) -> list[str]:
    return sorted(e.name for e in mlflow_client.search_experiments())


def get_experiment(mlflow_client: Any, name: str, uri: str) -> Any:
    found = mlflow_client.get_experiment_by_name(name)
    if found is None or found.lifecycle_stage == "deleted":
        names = experiment_names(mlflow_client)
        raise GanlabError(
            f"unknown experiment '{name}'{did_you_mean(name, names)} "
            f"(experiments in {uri}: {', '.join(names) if names else 'none'})"
        )
    return found


def search_all(mlflow_client: Any, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
    """Every matching run, following MLflow's result pages."""
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow_client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000,
                                         order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
