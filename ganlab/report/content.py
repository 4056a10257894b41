"""What a report shows, gathered from the store: learning curves, final values, tests and pictures.

The groups, their statistics and the tests are ``ganlab compare``'s own (``comparison`` in
ganlab.cli.compare, ganlab.compare.render): a report never groups runs another way. What it adds is
the pictures of one run per group, its *median seed*: the run whose final value of the first
metric is the group's median (with an even number of runs the lower of the two middle ones; ties
go to the smaller seed). A median run is typical of its group; the best seed would flatter it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganlab.compare import render
from ganlab.compare.stats import Group, Selection
from ganlab.record.logged_images import last_of_each_key, logged_images, read_image

#: image keys shown first, in this order, with a short name and a section title; any other key a run
#: logged (a metric plugin's picture) follows, in alphabetical order, under its own name
KNOWN_PICTURES = {
    "samples": ("Samples", "Samples"),
    "field": ("Field", "D's field: p_real over the plane, and the generator's gradients at the fakes"),
    "head_histograms": ("Head histograms", "Head histograms: p_real on real and generated batches, and the "
                                           "gradient norms at the fakes"),
}
#: metric families that describe training rather than the result: charted only when nothing else was logged
_TRAINING = ("diag.", "loss.")
#: how many metrics are charted by default
DEFAULT_CURVES = 4


@dataclass
class Picture:
    key: str
    step: int
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, from the PNG's header (its IHDR chunk comes first)."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")


@dataclass
class GroupView:
    """One group: its label, its runs, and the pictures of its median seed."""

    label: str
    group: Group
    median: Any  # the run
    pictures: dict[str, Picture] = field(default_factory=dict)

    @property
    def seed(self) -> str:
        return self.median.data.params.get("seed", "?")


@dataclass
class Content:
    source: str
    caption: str
    group_by: list[str]
    metrics: list[str]
    curves: dict[str, Picture]  # metric -> its learning curves
    header: list[str]  # the final table, as compare's table lays it out with one row per group
    rows: list[list[str]]
    tests: list[Any]  # ganlab.compare.significance.PairTest
    groups: list[GroupView]
    command: str = ""

    def picture_keys(self) -> list[str]:
        """Every image key any median run logged: the known ones first, then the rest by name."""
        logged = {key for view in self.groups for key in view.pictures}
        return [k for k in KNOWN_PICTURES if k in logged] + sorted(logged - set(KNOWN_PICTURES))


def default_metrics(available: list[str]) -> list[str]:
    """The metrics charted when none is named: what the metric plugins measured (modes, Fréchet
    distances), the ones they name as headline first (FID and IS beside the classifier distance),
    else the losses; at most DEFAULT_CURVES."""
    from ganlab.compare.stats import installed_registry

    measured = installed_registry().headline_first([m for m in available if not m.startswith(_TRAINING)])
    return (measured or [m for m in available if m.startswith("loss.")] or available)[:DEFAULT_CURVES]


def _seed_order(run: Any) -> tuple[Any, ...]:
    seed = run.data.params.get("seed", "")
    try:
        return 0, float(seed), run.info.run_id
    except ValueError:
        return 1, seed, run.info.run_id


def median_run(runs: list[Any], metric: str) -> Any:
    """The run whose final ``metric`` is the median of ``runs`` (lower median; ties by seed). Runs that
    logged no finite value are left out; where none did, the middle run by seed."""
    scored = sorted(((value, _seed_order(run)), run) for run in runs
                    if math.isfinite(value := float(run.data.metrics.get(metric, math.nan))))
    if scored:
        return scored[(len(scored) - 1) // 2][1]
    by_seed = sorted(runs, key=_seed_order)
    return by_seed[(len(by_seed) - 1) // 2]


def pictures_of(mlflow_client: Any, run: Any) -> dict[str, Picture]:
    """The last picture of each image key the run logged (none: an empty dict, and the report leaves the slot out)."""
    return {key: Picture(key, image.step, read_image(mlflow_client, run, image))
            for key, image in last_of_each_key(logged_images(mlflow_client, run)).items()}


def curves(mlflow_client: Any, selection: Selection, groups: list[Group], group_by: list[str],
           metrics: list[str]) -> dict[str, Picture]:
    """One PNG per metric: each group's mean curve with a ± standard error band (``compare --plot``'s figure)."""
    drawn: dict[str, Picture] = {}
    with tempfile.TemporaryDirectory(prefix="ganlab-report-") as folder:
        for index, metric in enumerate(metrics):
            path = Path(folder) / f"{index}.png"
            render.plot(mlflow_client, selection, groups, group_by, [metric], path)
            drawn[metric] = Picture(metric, -1, path.read_bytes())
    return drawn


def gather(mlflow_client: Any, selection: Selection, groups: list[Group], group_by: list[str],
           metrics: list[str], command: str = "") -> Content:
    """Everything the page shows, for groups as ``comparison`` made them (statistics computed)."""
    header, rows, _ = render.grid(groups, group_by, metrics, "groups")
    views = []
    for group in groups:
        median = median_run(group.runs, metrics[0])
        views.append(GroupView(render.group_label(group_by, group.values), group, median,
                               pictures_of(mlflow_client, median)))
    return Content(selection.source, render.caption(selection, group_by), group_by, metrics,
                   curves(mlflow_client, selection, groups, group_by, metrics), header, rows,
                   render.significance(groups, group_by, metrics), views, command)
