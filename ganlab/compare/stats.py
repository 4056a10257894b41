"""Which runs to compare, how to group them, and their statistics.

A comparison takes the FINISHED runs of an experiment (sweep parent runs
left out) or the child runs of one sweep, groups them by params (values as
MLflow stores them: strings), and summarises each metric's final value per
group by its mean and standard error, s / sqrt(n) with the sample standard
deviation s (ddof = 1): the spread of the group's mean over seeds, as
docs/heads.md, "Evaluation protocols" (comparing runs), asks for. A group of
one run has no standard error.

Grouping never averages unlike runs: every param that differs between the
runs splits the groups, except those in :data:`NOT_A_VARIANT` (the seed, and
params that only name or place a run or that follow from its seed). The
default grouping starts from a sweep's grid axes except ``seed`` or, for an
experiment, from ``head.name`` plus every component param that differs; a
user's ``--group-by`` is the start instead. Then each other differing param
(``steps``, ``lr_d`` ...) is added where it would otherwise mix runs within a
group; ``--pool`` names params to average over all the same. Runs that are
the parents of other runs (a sweep's parent, a population's parent) are
containers, not replicates: their leaf runs are compared instead.

Over 400 lines on purpose: choosing the runs and their statistics read the same run objects and are
read together.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from ganlab.record.store import get_experiment, get_run, search_all
from ganlab.config import DEFAULT_COMPONENTS, SECTIONS, SETTINGS
from ganlab.errors import GanlabError, did_you_mean

PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "ganlab.sweep.role"
GRID_TAG = "ganlab.sweep.grid"
#: Prefix of the tag a sweep puts on a run it reused instead of training the variant again
#: (ganlab.studies.parent): ``ganlab.sweep.reused_by.PARENT_ID``; the run counts as that sweep's.
REUSED_TAG_PREFIX = "ganlab.sweep.reused_by."
MISSING = "-"


#: Params that never make two runs unlike, and why: compare averages over them. Found by
#: diffing the params of real runs that differ only in their seed (ring8, digits), plus
#: those that only name a run or say where it and its inputs are kept.
NOT_A_VARIANT: dict[str, str] = {
    "seed": "the replicate itself",
    "parent_run_id": "the sweep or population the run belongs to",
    "seeds": "the population the run was trained in, one replica of several",
    "run_name": "a label",
    "experiment": "where the run is recorded",
    "tracking_uri": "where the run is recorded",
    "tracking": "whether the run is recorded",
    "data_root": "where the dataset's files are found, not which data",
    "download": "whether missing dataset files may be fetched",
    # ring8/grid25 write the seed their pool was drawn with (the run's own unless
    # dataset.seed, a param of its own, fixes it) into this description
    "data.source": "a description of the data that names the run's seed",
}


@dataclass
class Selection:
    source: str
    runs: list[Any]
    left_out: dict[str, int] = field(default_factory=dict)  # status -> number of runs not compared
    grid: dict[str, list[Any]] | None = None  # the sweep's grid, when comparing a sweep
    pooled: list[str] = field(default_factory=list)  # --pool params that do differ within a group
    at_step: int | None = None  # --at-step: the runs' metrics are the values logged at this step
    duplicates: int = 0  # runs left out as a second record of the same replica (ganlab.compare.replicas)
    #: params outside the grouping whose value differs between groups (one value within each): named with
    #: the table, so that "entmax vs sigmoid" never hides that one ran 1000 steps and the other 300
    also_differ: dict[str, list[str]] = field(default_factory=dict)
    #: speed metric -> group label -> [runs that never met its threshold, runs] (ganlab.compare.speed)
    censored: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: metric prefix -> protocol param -> values, for compared metrics that declare a protocol
    #: (ganlab.compare.protocols): named with the table, since their numbers mean nothing without it
    protocols: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class Stat:
    n: int
    mean: float
    stderr: float | None


@dataclass
class Group:
    values: tuple[str, ...]  # one per group-by param
    runs: list[Any]
    stats: dict[str, Stat] = field(default_factory=dict)


# ---- selecting runs -----------------------------------------------------------
def select(mlflow_client: Any, uri: str, experiment: str | None, sweep: str | None,
           all_runs: bool = False) -> Selection:
    if experiment and sweep:
        raise GanlabError("give --experiment or --sweep, not both (a sweep already belongs to one experiment)")
    if sweep:
        return _select_sweep(mlflow_client, uri, sweep, all_runs)
    if not experiment:
        from ganlab.record.store import experiment_names

        names = [n for n in experiment_names(mlflow_client) if n != "Default"]
        raise GanlabError(f"choose runs with --experiment NAME or --sweep RUN_ID|last "
                          f"(experiments in {uri}: {', '.join(names) if names else 'none'})")
    exp = get_experiment(mlflow_client, experiment, uri)
    runs = search_all(mlflow_client, [exp.experiment_id])
    parents = {r.data.tags.get(PARENT_TAG) for r in runs}
    # a sweep's or a population's parent run holds no replicate of its own
    runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "parent" and r.info.run_id not in parents]
    return _finished(Selection(f"experiment '{experiment}'", runs), all_runs)


def _leaves(runs: list[Any], root: str) -> list[Any]:
    """The runs under ``root`` that have no children themselves: a sweep's variants, or the
    replicas of a variant that was trained as a population (children of a child)."""
    children: dict[str, list[Any]] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent:
            children.setdefault(parent, []).append(run)
    leaves, todo, seen = [], [root], {root}
    while todo:
        for run in children.get(todo.pop(), []):
            if run.info.run_id in seen:
                continue
            seen.add(run.info.run_id)
            if run.info.run_id in children:
                todo.append(run.info.run_id)
            else:
                leaves.append(run)
    return sorted(leaves, key=lambda r: r.info.start_time or 0)


def _reused(runs: list[Any], parent_id: str) -> list[Any]:
    """The runs an earlier sweep trained that the sweep ``parent_id`` reused for its finished
    variants (a population's replicas for a population variant)."""
    tag = REUSED_TAG_PREFIX + parent_id
    out: list[Any] = []
    for run in runs:
        if tag in run.data.tags:
            out += _leaves(runs, run.info.run_id) or [run]
    return out


def _select_sweep(mlflow_client: Any, uri: str, sweep: str, all_runs: bool) -> Selection:
    if sweep in ("last", "latest"):
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        parents = search_all(mlflow_client, experiments, f"tags.`{ROLE_TAG}` = 'parent'") if experiments else []
        if not parents:
            raise GanlabError(f"no sweep in the tracking store {uri} (run `ganlab sweep FILE` first)")
        parent = max(parents, key=lambda r: r.info.start_time)
    else:
        parent = get_run(mlflow_client, sweep, uri)
    everything = search_all(mlflow_client, [parent.info.experiment_id])
    children = sorted(_leaves(everything, parent.info.run_id) + _reused(everything, parent.info.run_id),
                      key=lambda r: r.info.start_time or 0)
    if not children:
        raise GanlabError(f"run '{parent.info.run_id}' ({parent.info.run_name}) has no child runs; is it a sweep?")
    grid = None
    if parent.data.tags.get(GRID_TAG):
        try:
            grid = json.loads(parent.data.tags[GRID_TAG])
        except ValueError:
            grid = None
    source = f"sweep '{parent.info.run_name}' ({parent.info.run_id})"
    return _finished(Selection(source, children, grid=grid), all_runs)


def _finished(selection: Selection, all_runs: bool) -> Selection:
    if all_runs:
        return selection
    kept = []
    for run in selection.runs:
        if run.info.status == "FINISHED":
            kept.append(run)
        else:
            selection.left_out[run.info.status] = selection.left_out.get(run.info.status, 0) + 1
    selection.runs = kept
    if not kept:
        left = ", ".join(f"{n} {s}" for s, n in selection.left_out.items())
        raise GanlabError(f"{selection.source} has no FINISHED runs to compare"
                          + (f" ({left}; --all-runs includes them)" if left else ""))
    return selection


# ---- grouping -------------------------------------------------------------------
def default_group_by(selection: Selection, pool: list[str] | None = None) -> list[str]:
    """The grid axes (or head.name and the component params that differ), then every
    other param that would otherwise mix unlike runs in a group."""
    keys = [k for k in _preferred_keys(selection) if k not in (pool or [])]
    return keys + splitting_params(selection.runs, keys, pool or [])[0]


def _preferred_keys(selection: Selection) -> list[str]:
    if selection.grid:
        keys: list[str] = []
        for axis, values in selection.grid.items():
            if axis in NOT_A_VARIANT:  # seed, seeds: the replicates to average over
                continue
            if axis in SECTIONS:  # a component axis: its name and the options its tables set
                keys.append(f"{axis}.name")
                for value in values:
                    if isinstance(value, dict):
                        keys += [f"{axis}.{k}" for k in value if k != "name" and f"{axis}.{k}" not in keys]
            else:
                keys.append(axis)
        if keys:
            return keys
    keys = ["head.name"]
    for key in sorted({k for run in selection.runs for k in run.data.params}):
        if key.split(".")[0] in SECTIONS and key not in keys and _varies(selection.runs, key):
            keys.append(key)
    return keys


def _value(run: Any, key: str) -> str:
    value = run.data.params.get(key)
    return value if value is not None else _default_of(run, key)


def _default_of(run: Any, key: str) -> str:
    """What a run that lacks param ``key`` trained with, as MLflow would have stored it.

    A run recorded before a setting or a component option existed has no param for it,
    and trained as that setting's default says: ganlab adds settings and options only
    with a default that keeps the earlier behaviour. So a missing ``ema`` reads as "0.0",
    and old runs group with new runs of the same variant. Keys that are neither (a
    component's option the run's component does not have, a data-card param) stay MISSING.
    """
    if key in SETTINGS:
        return _param_text(SETTINGS[key].default)
    section, _, option = key.partition(".")
    if option == "name" and section in DEFAULT_COMPONENTS:  # a component kind added later (latent)
        return DEFAULT_COMPONENTS[section]
    component = run.data.params.get(f"{section}.name")
    if section in SECTIONS and component and option != "name":
        declared = _component_options(SECTIONS[section], component)
        if option in declared:
            return _param_text(declared[option])
    return MISSING


@functools.lru_cache(maxsize=None)
def _component_options(kind: str, name: str) -> dict[str, Any]:
    """The defaults of the options of component ``name`` as installed now ({} if it is not)."""
    registry = installed_registry()
    if name not in registry.names(kind):
        return {}
    return {key: option.default for key, option in registry.get(kind, name).options.items()}


@functools.lru_cache(maxsize=1)
def installed_registry() -> Any:
    """The components installed here, loaded once: what compare and report read of them (option defaults,
    metrics' protocols and headlines), quietly (a broken plugin is said by the commands that run it)."""
    from ganlab.plugins import PluginManager

    return PluginManager(warn=lambda message: None).load().registry


def _param_text(value: Any) -> str:
    """A value as the tracker stores a param (ganlab.record.outputs.param_value)."""
    return (json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value))[:6000]


def _varies(runs: list[Any], key: str) -> bool:
    return len({_value(run, key) for run in runs}) > 1


def _candidates(runs: list[Any]) -> list[str]:
    """Params that differ between the runs and can make them unlike: component options
    first, then the training settings in their declared order, then the rest (data card,
    metric settings), so that the param named for a split is the one a user chose."""
    differing = {k for run in runs for k in run.data.params if k not in NOT_A_VARIANT and _varies(runs, k)}
    components = sorted(k for k in differing if k.split(".")[0] in SECTIONS)
    settings = [k for k in SETTINGS if k in differing]
    rest = sorted(differing - set(components) - set(settings))
    return components + settings + rest


def _mixed(runs: list[Any], keys: list[str], param: str) -> bool:
    """Whether ``param`` takes more than one value among runs that agree on ``keys``."""
    seen: dict[tuple[str, ...], str] = {}
    for run in runs:
        group = tuple(_value(run, k) for k in keys)
        if seen.setdefault(group, _value(run, param)) != _value(run, param):
            return True
    return False


def splitting_params(runs: list[Any], keys: list[str], pool: list[str]) -> tuple[list[str], list[str]]:
    """The params to group by besides ``keys`` so that no group mixes unlike runs, and
    every param that differs within a group of ``keys`` alone (the first list in order).

    A param is added only where it still splits a group: params that change together
    (``dataset.name`` and ``data.size``) add one column, and the groups are those of
    grouping by every differing param.
    """
    candidates = [k for k in _candidates(runs) if k not in keys and k not in pool]
    differing = [k for k in candidates if _mixed(runs, keys, k)]
    added: list[str] = []
    for param in differing:
        if _mixed(runs, keys + added, param):
            added.append(param)
    return added, differing


def differing_between(groups: list[Group], keys: list[str]) -> dict[str, list[str]]:
    """Param -> its values, for the params not grouped by (nor seeds) that differ from group to group."""
    found: dict[str, list[str]] = {}
    params = sorted({k for group in groups for run in group.runs for k in run.data.params})
    for param in params:
        if param in keys or param in NOT_A_VARIANT:
            continue
        values = [{run.data.params.get(param, MISSING) for run in group.runs} for group in groups]
        if len({frozenset(v) for v in values}) > 1:
            found[param] = sorted(set().union(*values))
    return found


def pooled_params(runs: list[Any], keys: list[str], pool: list[str]) -> list[str]:
    """The ``--pool`` params that do differ within a group, which the output then names."""
    return [k for k in pool if k not in NOT_A_VARIANT and _mixed(runs, keys, k)]


def check_group_by(selection: Selection, group_by: list[str], option: str = "--group-by") -> None:
    params = sorted({k for run in selection.runs for k in run.data.params})
    for key in group_by:
        if key not in params:
            raise GanlabError(f"{option} '{key}' is not a param of any run in {selection.source}"
                              f"{did_you_mean(key, params)}")


def check_pool(selection: Selection, group_by: list[str], pool: list[str]) -> None:
    check_group_by(selection, pool, "--pool")
    both = [k for k in pool if k in group_by]
    if both:
        raise GanlabError(f"{', '.join(both)} cannot be both grouped by (--group-by) and averaged over (--pool)")


def _sort_key(values: tuple[str, ...]) -> tuple[Any, ...]:
    out = []
    for value in values:
        try:
            out.append((0, float(value), ""))
        except ValueError:
            out.append((1, 0.0, value))
    return tuple(out)


def group_runs(runs: list[Any], group_by: list[str]) -> list[Group]:
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        key = tuple(_value(run, k) for k in group_by)
        groups.setdefault(key, Group(key, [])).runs.append(run)
    return [groups[k] for k in sorted(groups, key=_sort_key)]


# ---- metrics --------------------------------------------------------------------
def _rank(key: str) -> tuple[int, str]:
    # what a metric plugin measures first, then the head diagnostics, then the raw losses
    prefix = key.split(".", 1)[0]
    return ({"diag": 1, "loss": 2}.get(prefix, 0), key)


def available_metrics(runs: list[Any]) -> list[str]:
    keys = {k for run in runs for k in run.data.metrics if not k.startswith(("sweep.", "system/"))}
    return sorted(keys, key=_rank)


def choose_metrics(runs: list[Any], requested: list[str] | None) -> list[str]:
    """All final metrics by default; otherwise the named ones, where ``*`` patterns are allowed."""
    available = available_metrics(runs)
    if not requested:
        if not available:
            raise GanlabError("the selected runs logged no metrics")
        return available
    chosen: list[str] = []
    for pattern in requested:
        matches = [k for k in available if fnmatch.fnmatchcase(k, pattern)]
        if not matches:
            raise GanlabError(f"no run logged a metric '{pattern}'{did_you_mean(pattern, available)} "
                              f"(metrics: {', '.join(available) or 'none'})")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def at_step(mlflow_client: Any, selection: Selection, metrics: list[str], step: int) -> None:
    """Make each run's metrics the values it logged at ``step`` (``--at-step``): learning curves
    compared at one point, e.g. how fast heads capture modes, not only where they end. A run
    that logged no value of a metric at that step has none (it is left out of that metric)."""
    from types import SimpleNamespace

    histories = {(run.info.run_id, metric): mlflow_client.get_metric_history(run.info.run_id, metric)
                 for run in selection.runs for metric in metrics}
    if not any(m.step == step for points in histories.values() for m in points):
        # runs stopped at different steps log different steps: name every step any run logged
        logged = sorted({m.step for (_, metric), points in histories.items() if metric == metrics[0] for m in points})
        shown = ", ".join(map(str, logged[:12])) + (" ..." if len(logged) > 12 else "")
        raise GanlabError(f"--at-step {step}: the runs logged {', '.join(metrics[:1])} at steps {shown or 'none'}")
    runs = []
    for run in selection.runs:
        values = {}
        for metric in metrics:
            at = [m.value for m in histories[(run.info.run_id, metric)] if m.step == step]
            if at:
                values[metric] = at[-1]
        runs.append(SimpleNamespace(info=run.info, data=SimpleNamespace(params=run.data.params, tags=run.data.tags,
                                                                        metrics=values)))
    selection.runs = runs
    selection.at_step = step


def summarise(values: list[float]) -> Stat | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    mean = statistics.fmean(finite)
    stderr = statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else None
    return Stat(len(finite), mean, stderr)


def compute(groups: list[Group], metrics: list[str]) -> list[Group]:
    for group in groups:
        for metric in metrics:
            stat = summarise([run.data.metrics[metric] for run in group.runs if metric in run.data.metrics])
            if stat is not None:
                group.stats[metric] = stat
    return groups


def history(mlflow_client: Any, group: Group, metric: str) -> tuple[list[int], list[float], list[float | None]]:
    """Mean (and standard error) of a metric over the group's runs at each logged step."""
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        for m in mlflow_client.get_metric_history(run.info.run_id, metric):
            if math.isfinite(m.value):
                by_step.setdefault(int(m.step), []).append(float(m.value))
    steps = sorted(by_step)
    stats = [summarise(by_step[s]) for s in steps]
    return steps, [s.mean for s in stats if s], [s.stderr for s in stats if s]
