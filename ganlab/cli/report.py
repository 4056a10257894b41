"""``ganlab report``: an experiment or a sweep as one self-contained HTML file.

The runs are chosen, grouped and summarised by ``ganlab compare``'s own code (``comparison``);
:mod:`ganlab.report` draws the page. The output path is checked before the store is read, so a
report that could not be written costs nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError


def report(
    target: Annotated[str, typer.Argument(metavar="EXPERIMENT_OR_SWEEP", help="An MLflow experiment's name, or the run id of a sweep's (or a population's) parent run; 'last': the latest sweep.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="A metric to chart and tabulate, '*' patterns allowed (repeatable); the first one picks each group's median seed. [default: what the metric plugins measured (up to 4), else the losses]")] = None,
    group_by: Annotated[Optional[str], typer.Option("--group-by", "-g", help="Comma-separated params to group by, as `ganlab compare --group-by`. [default: compare's]")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", help="Comma-separated params to average over although they differ, as `ganlab compare --pool`.")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Include runs that did not finish (FAILED, KILLED, RUNNING).")] = False,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
) -> None:
    """Write one HTML file that opens offline: per group, learning curves with standard-error bands, final values
    with n and permutation tests (as `ganlab compare --test`), and the last pictures of each group's median seed."""
    from ganlab.cli.compare import _split, comparison
    from ganlab.compare.stats import choose_metrics
    from ganlab.record.store import existing_store, read_client
    from ganlab.report.content import default_metrics, gather
    from ganlab.report.page import page

    check_output(out)
    uri = existing_store(tracking_uri)
    mlflow_client = read_client(uri)
    experiment, sweep = _which(mlflow_client, uri, target)
    requested = [m for value in metric or [] for m in _split(value)]
    selection, keys, chosen, groups = comparison(mlflow_client, uri, experiment, sweep, _split(group_by),
                                                 _split(pool), requested, all_runs)
    shown = chosen if requested else default_metrics(choose_metrics(selection.runs, None))
    content = gather(mlflow_client, selection, groups, keys, shown, command=_command(target, out, metric, group_by, pool))
    html = page(content)
    write(out, html)
    print(f"ganlab: report of {selection.source} ({len(selection.runs)} runs in {len(groups)} groups; "
          f"{len(content.picture_keys())} kinds of picture) written to {out} ({len(html.encode()) // 1024} KiB)",
          file=sys.stderr)


def _which(mlflow_client: Any, uri: str, target: str) -> tuple[str | None, str | None]:
    """(experiment, sweep) for ``compare``'s selection: an experiment of that name first, else a run
    that id (or prefix) names; neither is refused as an unknown experiment, with the list of them."""
    from ganlab.record.store import get_run

    found = mlflow_client.get_experiment_by_name(target)
    if found is not None and found.lifecycle_stage != "deleted":
        return target, None
    if target in ("last", "latest"):
        return None, target
    if re.fullmatch(r"[0-9a-f]{4,32}", target):
        try:
            get_run(mlflow_client, target, uri)
            return None, target
        except GanlabError:
            pass  # not a run either: named as an unknown experiment below
    return target, None


def check_output(path: Path) -> None:
    """Refuse, before any work, an output the report could not be written to."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise GanlabError(f"-o {path}: a report is an HTML page; give a file name ending in .html")
    if path.is_dir():
        raise GanlabError(f"cannot write the report to {path}: it is a directory")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise GanlabError(f"cannot write the report to {path}: {parent} {what}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GanlabError(f"cannot write the report to {path}: permission denied")


def write(path: Path, html: str) -> None:
    """Write the page whole or not at all: a half-written report is never left behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise GanlabError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def _command(target: str, out: Path, metric: list[str] | None, group_by: str | None, pool: str | None) -> str:
    """The command line that makes this report again (shown on the page)."""
    words = ["ganlab", "report", target, "-o", out.name]
    for value in metric or []:
        words += ["--metric", value]
    words += ["--group-by", group_by] if group_by else []
    words += ["--pool", pool] if pool else []
    return shlex.join(words)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
