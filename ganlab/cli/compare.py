"""``ganlab compare``: variants side by side, mean ± standard error over seeds, from MLflow.

Selection and statistics live in :mod:`ganlab.compare.stats`, output in
:mod:`ganlab.compare.render`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def compare(
    experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="Compare the runs of this MLflow experiment.")] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="Compare the child runs of this sweep's parent run ('last': the latest sweep).")] = None,
    group_by: Annotated[Optional[str], typer.Option("--group-by", "-g", help="Comma-separated params to group by; any other param that differs within a group (but the seed) is added, with a note on stderr. [default: the sweep's grid axes but seed; else head.name and any component param that differs; then every other param that differs]")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", help="Comma-separated params to average over although they differ between runs (the caption names them), e.g. 'device,log_every'.")] = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", "-m", help="Comma-separated metrics, '*' patterns allowed, e.g. 'modes.*,diag.p_real_fake'. [default: all]")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or markdown.")] = "table",
    rows: Annotated[str, typer.Option("--rows", help="table/markdown layout: groups or metrics down the rows; auto: whichever are more.")] = "auto",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw metric curves per group into this .png/.svg/.pdf.")] = None,
    plot_metric: Annotated[Optional[str], typer.Option("--plot-metric", help="Metric(s) to plot, comma-separated: one panel each, side by side. [default: the first compared metric]")] = None,
    at_step: Annotated[Optional[int], typer.Option("--at-step", help="Compare (and --test) the values logged at this step instead of the final ones.")] = None,
    test: Annotated[bool, typer.Option("--test", help="Also test which differences are more than seed noise: a permutation test between every two groups that differ in one param (e.g. two heads on one dataset), Holm-adjusted.")] = False,
    power: Annotated[bool, typer.Option("--power", help="Also say how many seeds each difference needs: for the pairs --test tests, the effect (difference of means), its standard error and the seeds per group for 80% power at 0.05 after Holm (noncentral t).")] = False,
    effect: Annotated[Optional[str], typer.Option("--effect", help="With --power: the smallest effect worth finding, METRIC=SIZE[,METRIC=SIZE] in the metric's units (a bare SIZE with one metric): seeds needed for it, and the power the runs have against it. Implies --power.")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Include runs that did not finish (FAILED, KILLED, RUNNING).")] = False,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
) -> None:
    """Compare runs grouped by params (default: head, and any other param that differs but the seed): mean ± standard error of final metric values."""
    from ganlab.compare import stats as data
    from ganlab.compare import render
    from ganlab.record.store import existing_store, read_client

    if format not in render.FORMATS:
        raise GanlabError(f"--format must be one of {', '.join(render.FORMATS)}, not '{format}'")
    if rows not in render.ROWS:
        raise GanlabError(f"--rows must be one of {', '.join(render.ROWS)}, not '{rows}'")
    if plot is not None:
        render.check_plot_path(plot)
    if test and format == "csv":
        raise GanlabError("--test prints its own table: use --format table, markdown or json with it")
    power = power or effect is not None
    if power and format == "csv":
        raise GanlabError("--power prints its own table: use --format table, markdown or json with it")
    uri = existing_store(tracking_uri)
    mlflow_client = read_client(uri)
    selection, keys, chosen, groups = comparison(mlflow_client, uri, experiment, sweep, _split(group_by),
                                                 _split(pool), _split(metrics), all_runs, at_step)
    if plot_metric is not None:
        data.choose_metrics(selection.runs, _split(plot_metric))  # refuse an unknown one before printing anything
    tests = render.significance(groups, keys, chosen) if test else None
    sizes = seeds_needed(groups, keys, chosen, effect) if power else None
    from ganlab.compare.speed import censored_note

    for line in censored_note(selection.censored):  # (after the last refusal: an error stays one line)
        print(line, file=sys.stderr)
    extra = {"censored": selection.censored} if selection.censored else {}
    if sizes is not None:
        extra["power"] = [dataclasses.asdict(row) for row in sizes]
    if format == "table":
        render.print_table(selection, groups, keys, chosen, rows)
    elif format == "csv":
        typer.echo(render.as_csv(groups, keys, chosen), nl=False)
    elif format == "json":
        typer.echo(render.as_json(selection, groups, keys, chosen, tests, extra))
    else:
        typer.echo(render.as_markdown(selection, groups, keys, chosen, rows), nl=False)
    if tests is not None and format != "json":
        typer.echo(render.tests_markdown(tests, at_step=selection.at_step), nl=False)
    if sizes is not None and format != "json":
        from ganlab.compare.power import power_markdown

        typer.echo(power_markdown(sizes, at_step=selection.at_step), nl=False)
    if plot is not None:
        from ganlab.compare.speed import base_metric

        # a speed metric is drawn as the curve it reads
        plotted = list(dict.fromkeys(base_metric(m) for m in (_split(plot_metric) or chosen[:1])))
        curves = render.plot(mlflow_client, selection, groups, keys, plotted, plot)
        print(f"ganlab: plot of {', '.join(plotted)} ({curves} group curve(s)) written to {plot}", file=sys.stderr)


def comparison(mlflow_client: Any, uri: str, experiment: str | None, sweep: str | None, group_by: list[str],
               pool: list[str], metrics: list[str], all_runs: bool = False,
               at_step: int | None = None) -> tuple[Any, list[str], list[str], list[Any]]:
    """(selection, group-by params, metrics, groups with their statistics): the comparison ``compare``
    prints and ``ganlab report`` draws, made one way. Notes on what was left out or split go to stderr."""
    from ganlab.compare import protocols, replicas, speed
    from ganlab.compare import stats as data

    selection = data.select(mlflow_client, uri, experiment, sweep, all_runs)
    # a replica recorded twice (a sweep or run started again) is not a second seed: it would shrink the error
    dropped = replicas.drop_duplicate_runs(selection)
    if dropped:
        print(replicas.duplicates_note(dropped), file=sys.stderr)
    keys = _grouping(selection, group_by, pool)
    # logged metrics, then speed metrics read from their histories (steps_to:modes.captured>=6 ...)
    chosen, censored = speed.choose_metrics(mlflow_client, selection, metrics, at_step)
    groups = data.compute(data.group_runs(selection.runs, keys), chosen)
    declared = protocols.declared(chosen)
    protocols.check_groups(groups, keys, declared)  # FID of 10,000 samples is not FID of 50,000
    selection.protocols = protocols.shown(selection.runs, declared)
    selection.also_differ = data.differing_between(groups, keys)
    selection.censored = speed.censored_by_group(censored, groups, keys)
    return selection, keys, chosen, groups


def seeds_needed(groups: list[Any], keys: list[str], chosen: list[str], effect: str | None) -> list[Any]:
    """``--power``: the power rows of the pairs ``--test`` tests (ganlab.compare.power); refused in one
    line where there is no such pair, or none with two runs in each group to measure the spread."""
    from ganlab.compare import power, render

    effects = power.parse_effects(effect, chosen)
    samples, pairs = render.paired_samples(groups, keys, chosen)
    if not pairs:
        raise GanlabError(f"--power compares groups that differ in one param, and these {len(groups)} group(s) have "
                          "no such pair: compare two variants (e.g. two heads) or --group-by the param they differ in")
    rows = power.power_rows(samples, pairs, effects)
    if not rows:
        raise GanlabError("--power needs two or more runs in each of two groups that differ in one param, "
                          "to measure the seed-to-seed spread; these groups have fewer")
    return rows


def _grouping(selection: Any, group_by: list[str], pool: list[str]) -> list[str]:
    """The params to group by: never a group of runs whose other params differ (but the seed)."""
    from ganlab.compare import stats as data

    data.check_pool(selection, group_by, pool)
    if not group_by:
        keys = data.default_group_by(selection, pool)
        data.check_group_by(selection, keys)
    else:
        data.check_group_by(selection, group_by)
        added, differing = data.splitting_params(selection.runs, group_by, pool)
        if added:
            print(_split_note(group_by, added, differing), file=sys.stderr)
        keys = group_by + added
    selection.pooled = data.pooled_params(selection.runs, keys, pool)
    return keys


def _split_note(group_by: list[str], added: list[str], differing: list[str]) -> str:
    """One line: which params split the user's groups, and how to average over them instead."""
    along = [k for k in differing if k not in added]
    also = f" (and {', '.join(along)} with them)" if along else ""
    return (f"ganlab: note: runs with the same {', '.join(group_by)} differ in {', '.join(added)}{also}; "
            f"grouped by {', '.join(added)} too, so unlike runs are not averaged "
            f"(--pool {','.join(differing)} averages over them)")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
