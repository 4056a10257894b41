"""Speed metrics: how fast a learning curve gets somewhere, which a final value hides.

``ganlab compare --metrics`` accepts, beside the metrics the runs logged, metrics derived from each
run's logged history of one of them:

* ``steps_to:METRIC>=X`` (or ``<=``, ``>``, ``<``): the first logged step at which METRIC meets the
  threshold, e.g. ``steps_to:modes.captured>=6`` or ``steps_to:images.fld<=40``;
* ``time_to:METRIC>=X``: the wall time, in seconds from the run's start, at which it was logged;
* ``reached:METRIC>=X``: 1 if the run ever met the threshold, else 0 (its mean: the share of seeds);
* ``auc:METRIC``: the area under the learning curve (trapezoids over the logged steps) divided by
  the steps it spans: the curve's mean height, in METRIC's units. A '*' pattern names several.

They are computed when compare reads the runs, not logged during training: the record already
holds every evaluation's value with its step and time, so nothing in a run changes, a run
recorded before these metrics existed has them too, and a threshold can be chosen after the runs
(state it before them: docs/results.md's hypotheses) without training again. The price is one
history read per run and metric, which compare makes anyway for ``--plot``. With ``--at-step N``
only the history up to step N counts: "steps to 6 modes within the first 3 000 steps".

A run that never meets the threshold is **censored**: it is counted at its last logged step (its
last logged time), a lower bound of its true time, and compare names how many runs of each group
were (a note on stderr; ``censored`` in JSON). The group's mean is then the restricted mean time to
the threshold within the steps run (the restricted mean survival time of survival analysis;
Royston & Parmar 2013), and ``compare --test`` stays a valid test of "no difference": runs of one
length are censored at the same step, which exchanging group labels leaves exchangeable. Leaving
censored runs out instead would drop exactly the slow seeds and flatter the slower group.
``reached:`` tests the other half of the question, how often the threshold is met at all.

Nothing here imports torch or mlflow.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from ganlab.errors import GanlabError, did_you_mean

THRESHOLD_KINDS = ("steps_to", "time_to", "reached")
KINDS = (*THRESHOLD_KINDS, "auc")
_OPERATORS = {">=": lambda v, x: v >= x, "<=": lambda v, x: v <= x, ">": lambda v, x: v > x,
              "<": lambda v, x: v < x}
_THRESHOLD = re.compile(r"^(?P<metric>[^<>=\s]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+)$")
_FORMS = ("steps_to:METRIC>=X (or <=, >, <), time_to:METRIC>=X, reached:METRIC>=X or auc:METRIC, "
          "e.g. steps_to:modes.captured>=6")


@dataclass(frozen=True)
class Derived:
    kind: str  # one of KINDS
    metric: str  # the logged metric whose history it reads
    op: str | None = None
    threshold: float | None = None

    @property
    def name(self) -> str:
        """The metric's name in compare's tables, JSON and tests."""
        if self.op is None:
            return f"{self.kind}:{self.metric}"
        return f"{self.kind}:{self.metric}{self.op}{self.threshold:g}"


def is_derived(text: str) -> bool:
    """Whether a --metrics entry asks for a derived metric (``kind:...``)."""
    return text.split(":", 1)[0] in KINDS and ":" in text


def parse(text: str, available: Sequence[str]) -> list[Derived]:
    """The derived metrics one --metrics entry names (several where METRIC is a '*' pattern)."""
    kind, _, rest = text.partition(":")
    rest = rest.strip()
    op: str | None = None
    threshold: float | None = None
    if kind == "auc":
        pattern = rest
        if not pattern or _THRESHOLD.match(pattern):
            raise GanlabError(f"--metrics '{text}': auc takes a metric and no threshold; write {_FORMS}")
    else:
        match = _THRESHOLD.match(rest)
        if not match:
            raise GanlabError(f"--metrics '{text}': not a speed metric; write {_FORMS}")
        pattern, op = match["metric"], match["op"]
        try:
            threshold = float(match["value"])
        except ValueError:
            raise GanlabError(f"--metrics '{text}': the threshold must be a number, not '{match['value']}'") from None
        if not math.isfinite(threshold):
            raise GanlabError(f"--metrics '{text}': the threshold must be a finite number")
    metrics = [m for m in available if fnmatch.fnmatchcase(m, pattern)]
    if not metrics:
        raise GanlabError(f"--metrics '{text}': no run logged a metric '{pattern}'{did_you_mean(pattern, available)} "
                          f"(metrics: {', '.join(available) or 'none'})")
    return [Derived(kind, metric, op, threshold) for metric in metrics]


def evaluate(spec: Derived, points: Sequence[Any], start_ms: int | None) -> tuple[float, bool] | None:
    """(value, censored) of ``spec`` for one run's history ``points`` (objects with step, value,
    timestamp), or None when the run logged no finite value of the metric."""
    history = sorted(((int(p.step), float(p.value), int(p.timestamp)) for p in points if math.isfinite(p.value)),
                     key=lambda point: (point[0], point[2]))
    if not history:
        return None
    if spec.kind == "auc":
        return _mean_height([(s, v) for s, v, _ in history]), False
    meets = _OPERATORS[spec.op or ">="]
    hit = next((point for point in history if meets(point[1], spec.threshold)), None)
    if spec.kind == "reached":
        return (1.0 if hit is not None else 0.0), False
    step, _, stamp = hit if hit is not None else history[-1]
    if spec.kind == "steps_to":
        return float(step), hit is None
    return (stamp - (start_ms if start_ms is not None else history[0][2])) / 1000.0, hit is None


def _mean_height(curve: list[tuple[int, float]]) -> float:
    """Trapezoidal area under the curve divided by the steps it spans (one point: its value).
    A step logged more than once counts at its last value."""
    by_step = dict(curve)
    steps = sorted(by_step)
    if len(steps) == 1:
        return by_step[steps[0]]
    area = sum((b - a) * (by_step[a] + by_step[b]) / 2.0 for a, b in zip(steps, steps[1:]))
    return area / (steps[-1] - steps[0])


def choose_metrics(mlflow_client: Any, selection: Any, requested: Sequence[str],
                   at_step: int | None = None) -> tuple[list[str], dict[str, set[str]]]:
    """compare's metrics: the logged ones requested (all by default), then the speed metrics requested,
    each run's values set to those at ``at_step`` where given. Returns (metric names, censored run ids
    per speed metric)."""
    from ganlab.compare import stats

    plain = [m for m in requested if not is_derived(m)]
    asked = [m for m in requested if is_derived(m)]
    available = stats.available_metrics(selection.runs)
    specs = list(dict.fromkeys(spec for text in asked for spec in parse(text, available)))
    chosen = stats.choose_metrics(selection.runs, plain or None) if plain or not specs else []
    if at_step is not None:
        stats.at_step(mlflow_client, selection, chosen or list(dict.fromkeys(s.metric for s in specs)), at_step)
    censored = attach(mlflow_client, selection, specs, until=at_step) if specs else {}
    return chosen + [spec.name for spec in specs], censored


def base_metric(name: str) -> str:
    """The logged metric a compared metric reads: itself, or a speed metric's METRIC (for --plot)."""
    if not is_derived(name):
        return name
    rest = name.split(":", 1)[1]
    match = _THRESHOLD.match(rest)
    return match["metric"] if match else rest


def attach(mlflow_client: Any, selection: Any, specs: Sequence[Derived], until: int | None = None) -> dict[str, set[str]]:
    """Add each spec's value to every run of ``selection`` as a metric named ``spec.name`` (the runs
    become read-only copies, as ``--at-step`` makes them); only steps up to ``until`` count when given.

    Returns, per spec name, the ids of the runs that never met its threshold (censored)."""
    censored: dict[str, set[str]] = {spec.name: set() for spec in specs}
    runs = []
    for run in selection.runs:
        values = dict(run.data.metrics)
        for metric in {spec.metric for spec in specs}:
            points = mlflow_client.get_metric_history(run.info.run_id, metric)
            if until is not None:
                points = [p for p in points if p.step <= until]
            for spec in (s for s in specs if s.metric == metric):
                result = evaluate(spec, points, getattr(run.info, "start_time", None))
                if result is None:
                    values.pop(spec.name, None)
                    continue
                values[spec.name] = result[0]
                if result[1]:
                    censored[spec.name].add(run.info.run_id)
        runs.append(SimpleNamespace(info=run.info, data=SimpleNamespace(params=run.data.params, tags=run.data.tags,
                                                                        metrics=values)))
    selection.runs = runs
    return censored


def censored_by_group(censored: dict[str, set[str]], groups: Sequence[Any],
                      group_by: list[str]) -> dict[str, dict[str, list[int]]]:
    """Per speed metric: group label -> [censored runs, runs with a value], for groups with any censored."""
    from ganlab.compare.render import group_label

    labels = [group_label(group_by, group.values) for group in groups]
    out: dict[str, dict[str, list[int]]] = {}
    for name, ids in censored.items():
        for label, group in zip(labels, groups):
            with_value = [r for r in group.runs if name in r.data.metrics]
            hit = sum(1 for r in with_value if r.info.run_id in ids)
            if hit:
                out.setdefault(name, {})[label] = [hit, len(with_value)]
    return out


def censored_note(counts: dict[str, dict[str, list[int]]]) -> list[str]:
    """One stderr line per censored speed metric: how many runs of which group, and how they count."""
    lines = []
    for name, by_group in counts.items():
        parts = ", ".join(f"{hit} of {total} {label}" for label, (hit, total) in by_group.items())
        lines.append(f"ganlab: note: {name}: never reached by {parts} run(s); counted at their last logged "
                     f"step or time (a lower bound: the group's mean is a restricted mean)")
    return lines
