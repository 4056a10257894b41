"""Writing a comparison: a rich table, CSV, JSON, Markdown, and a plot of metric curves.

Table and Markdown show one row per group and one column per metric, each
cell ``mean ± standard error`` (with ``(n=k)`` where fewer of the group's runs
logged that metric). CSV is long ("tidy"): one row per group and metric, so
it reads straight into a data frame. JSON nests the same numbers per group;
a missing standard error (a group of one) is empty in CSV and null in JSON.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

from ganlab.compare.stats import MISSING, Group, Selection, Stat
from ganlab.errors import GanlabError

FORMATS = ("table", "csv", "json", "markdown")
ROWS = ("auto", "groups", "metrics")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def fmt(value: float) -> str:
    return f"{value:.4g}"


def cell(stat: Stat | None, group_n: int) -> str:
    if stat is None:
        return "-"
    text = fmt(stat.mean) if stat.stderr is None else f"{fmt(stat.mean)} ± {stat.stderr:.2g}"
    return text if stat.n == group_n else f"{text} (n={stat.n})"


def caption(selection: Selection, group_by: list[str]) -> str:
    left = ", ".join(f"{n} {status}" for status, n in sorted(selection.left_out.items()))
    note = f"; left out: {left} (--all-runs includes them)" if left else ""
    pooled = f" (averaged over differing {', '.join(selection.pooled)}: --pool)" if selection.pooled else ""
    also = "; the groups also differ in " + ", ".join(
        f"{k} ({' / '.join(v[:4])}{' ...' if len(v) > 4 else ''})" for k, v in selection.also_differ.items()) \
        if selection.also_differ else ""
    protocol = "".join(
        f"; {prefix}.* protocol: " + ", ".join(f"{k.removeprefix(prefix + '.')} {' / '.join(v)}"
                                               for k, v in params.items())
        for prefix, params in selection.protocols.items() if params)
    return (f"{selection.source}: {len(selection.runs)} runs grouped by {', '.join(group_by)}{also}; "
            f"{'final values' if selection.at_step is None else f'values at step {selection.at_step}'}, "
            f"mean ± standard error over runs{pooled}{protocol}{note}")


def as_csv(groups: list[Group], group_by: list[str], metrics: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*group_by, "runs", "metric", "n", "mean", "stderr"])
    for group in groups:
        for metric in metrics:
            stat = group.stats.get(metric)
            if stat is None:
                continue
            writer.writerow([*group.values, len(group.runs), metric, stat.n, repr(stat.mean),
                             "" if stat.stderr is None else repr(stat.stderr)])
    return buffer.getvalue()


def as_json(selection: Selection, groups: list[Group], group_by: list[str], metrics: list[str],
            tests: list[Any] | None = None, extra: dict[str, Any] | None = None) -> str:
    """The comparison as JSON; ``extra`` adds top-level keys (``power``, ``censored``)."""
    return json.dumps({
        "source": selection.source,
        "group_by": group_by,
        "metrics": metrics,
        "left_out": selection.left_out,
        "duplicates": selection.duplicates,
        "pooled": selection.pooled,
        "also_differ": selection.also_differ,
        "protocols": selection.protocols,
        "groups": [
            {
                "group": dict(zip(group_by, group.values)),
                "runs": len(group.runs),
                "run_ids": [r.info.run_id for r in group.runs],
                "metrics": {m: {"n": s.n, "mean": s.mean, "stderr": s.stderr} for m, s in group.stats.items()
                            if m in metrics},
            }
            for group in groups
        ],
        **({"tests": [dataclasses.asdict(t) for t in tests]} if tests is not None else {}),
        **(extra or {}),
    }, indent=2)


def paired_samples(groups: list[Group], group_by: list[str],
                   metrics: list[str]) -> tuple[dict[str, dict[str, list[float]]], list[tuple[str, str]]]:
    """Each metric's per-seed finite values by group label, and the pairs of group labels that differ
    in one grouping param: what ``--test`` tests and ``--power`` sizes."""
    import math

    from ganlab.compare import protocols
    from ganlab.compare.significance import one_change_pairs

    labels = [group_label(group_by, g.values) for g in groups]
    indices = one_change_pairs([g.values for g in groups], group_by)
    protocols.check_pairs(groups, indices, protocols.declared(metrics), labels)
    pairs = [(labels[i], labels[j]) for i, j in indices]
    samples = {m: {label: [v for r in g.runs if math.isfinite(v := float(r.data.metrics.get(m, math.nan)))]
                   for label, g in zip(labels, groups)} for m in metrics}
    return samples, pairs


def significance(groups: list[Group], group_by: list[str], metrics: list[str]) -> list[Any]:
    """Permutation tests between the groups that differ in one grouping param (ganlab.compare.significance)."""
    from ganlab.compare.significance import pairwise

    return pairwise(*paired_samples(groups, group_by, metrics))


def tests_markdown(tests: list[Any], level: float = 0.05, at_step: int | None = None) -> str:
    """The tests as a Markdown table, with a line saying how they were made."""
    if not tests:
        return f"\n{NO_TESTS}\n"
    lines = ["| metric | first | second | difference | p | p (Holm) | |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(test_cells(t, level)) + " |" for t in tests]
    return "\n" + "\n".join(lines) + f"\n\n{tests_explanation(level, at_step)}\n"


#: the columns of a table of tests (test_cells)
TEST_HEADER = ("metric", "first", "second", "difference", "p", "p (Holm)", "")


def test_cells(test: Any, level: float = 0.05) -> list[str]:
    """One test's row under TEST_HEADER: 'significant' in the last cell where its Holm-adjusted p < level."""
    return [test.metric, test.first, test.second, fmt(test.difference),
            f"{test.p:.3g}{'' if test.exact else ' (sampled)'}", f"{test.p_holm:.3g}",
            "significant" if test.p_holm < level else ""]


#: what --test says when no pair of groups can be tested
NO_TESTS = "No pair of groups differing in one param has two or more runs each: nothing to test."


def tests_explanation(level: float = 0.05, at_step: int | None = None) -> str:
    """The sentence under a table of tests (compare --test, ganlab report): how they were made."""
    which = "final values" if at_step is None else f"values at step {at_step}"
    return (f"Two-sided permutation test of the difference in means of the {which} (first minus second) between "
            f"groups that differ in one param; p-values adjusted by Holm's method over the pairs of each metric; "
            f"'significant' at {level}.")


def group_label(group_by: list[str], values: tuple[str, ...]) -> str:
    """'entmax alpha=1.25': component names bare, other params as key=value, missing ones left out."""
    parts = []
    for key, value in zip(group_by, values):
        if value == MISSING:
            continue
        parts.append(value if key.endswith(".name") or len(group_by) == 1 else f"{key.split('.')[-1]}={value}")
    return " ".join(parts) or MISSING


def grid(groups: list[Group], group_by: list[str], metrics: list[str],
         rows: str) -> tuple[list[str], list[list[str]], int]:
    """Header, body and the number of label columns of the human-readable layouts.

    ``rows="auto"`` puts whichever is more numerous, groups or metrics, down the
    rows: a study of four heads with twenty metrics stays narrow enough to read.
    """
    if rows == "auto":
        rows = "metrics" if len(metrics) > len(groups) else "groups"
    if rows == "groups":
        header = [*group_by, "n", *metrics]
        body = [[*g.values, str(len(g.runs)), *(cell(g.stats.get(m), len(g.runs)) for m in metrics)] for g in groups]
        return header, body, len(group_by)
    header = ["metric", *(f"{group_label(group_by, g.values)} (n={len(g.runs)})" for g in groups)]
    body = [[m, *(cell(g.stats.get(m), len(g.runs)) for g in groups)] for m in metrics]
    return header, body, 1


def as_markdown(selection: Selection, groups: list[Group], group_by: list[str], metrics: list[str],
                rows: str = "auto") -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    header, body, labels = grid(groups, group_by, metrics, rows)
    lines = [row(header), row(["---"] * labels + ["---:"] * (len(header) - labels))]
    lines += [row(r) for r in body]
    return "\n".join(lines) + f"\n\n{caption(selection, group_by)}\n"


def print_table(selection: Selection, groups: list[Group], group_by: list[str], metrics: list[str],
                rows: str = "auto") -> None:
    from rich.console import Console
    from rich.table import Table

    header, body, labels = grid(groups, group_by, metrics, rows)
    table = Table(title=selection.source, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, style="bold" if i < labels else None, justify="left" if i < labels else "right")
    for r in body:
        table.add_row(*r)
    console = Console()
    # piped output would otherwise be cut to 80 columns and fold every number
    wanted = sum(max(len(h), 18) + 3 for h in header)
    if not console.is_terminal:
        console = Console(width=max(100, wanted))
    console.print(table)
    console.print(caption(selection, group_by), soft_wrap=True, highlight=False)


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise GanlabError(f"--plot {path}: use a .png, .svg or .pdf file name")
    if not path.parent.exists():
        raise GanlabError(f"--plot {path}: directory {path.parent} does not exist")


def plot(mlflow_client: Any, selection: Selection, groups: list[Group], group_by: list[str],
         metrics: list[str], path: Path) -> int:
    """One panel per metric, side by side: each group's mean curve with a ± standard error band.
    Returns the number of group curves drawn (over all panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganlab.compare.stats import history

    fig, axes = plt.subplots(1, len(metrics), figsize=(8 * len(metrics), 5), dpi=100, squeeze=False)
    curves = 0
    for ax, metric in zip(axes[0], metrics):
        drawn = 0
        for colour, group in enumerate(groups):
            steps, means, errors = history(mlflow_client, group, metric)
            if not steps:
                continue
            label = f"{group_label(group_by, group.values)} (n={len(group.runs)})"
            (line,) = ax.plot(steps, means, label=label, color=f"C{colour % 10}",
                              linestyle="-" if colour < 10 else "--", marker="o" if len(steps) < 20 else None,
                              markersize=3)
            low = [m - (e or 0.0) for m, e in zip(means, errors)]
            high = [m + (e or 0.0) for m, e in zip(means, errors)]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            drawn += 1
        if not drawn:
            plt.close(fig)
            raise GanlabError(f"no run in {selection.source} has a history of metric '{metric}'")
        curves += drawn
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric}: mean ± standard error per {', '.join(group_by)}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return curves
