"""Runs that are one replica recorded twice: the same params, seed included.

A variant trained again with the same settings and seed (a sweep started again after
Ctrl-C, a ``ganlab run`` repeated) follows the same trajectory as the first time: it is
no new evidence. Counted as a second replica it shrinks the standard error of its group
for nothing, and tilts a comparison towards whichever variant happened to run twice.

Two sets of keys say what "the same" means:

- :data:`PLACEMENT`: params that only name, place or nest a run. ``ganlab sweep`` compares
  a variant's fully resolved settings with a run's params leaving out only these, so a
  population (``seeds``) is never mistaken for one of its replicas.
- :data:`NOT_A_REPLICA`: for ``ganlab compare``, also ``seeds`` and the seed-naming data
  description: replica i of a population follows the trajectory of the single run with
  seed i (docs/running.md, "Many seeds at once"), so the two are duplicates too.

Nothing here imports torch or mlflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ganlab.compare.stats import NOT_A_VARIANT, Selection, _value

#: Params that only name a run or say where it and its inputs are kept.
PLACEMENT = frozenset({"parent_run_id", "run_name", "experiment", "tracking_uri", "tracking", "data_root",
                       "download"})
#: Params two runs may differ in and still be the same replica (compare): all that is not a
#: variant, except the seed, which is exactly what makes a replica.
NOT_A_REPLICA = frozenset(NOT_A_VARIANT) - {"seed"}


def identity(params: Mapping[str, str], ignored: Iterable[str] = PLACEMENT) -> dict[str, str]:
    """The params that make a run what it is (strings, as MLflow stores them)."""
    skip = frozenset(ignored)
    return {key: value for key, value in params.items() if key not in skip}


def matches(wanted: Mapping[str, str], run: Any) -> bool:
    """Whether ``run`` trained with every one of ``wanted``'s values.

    Only the wanted keys are looked at: a run also records its data card and metric
    params, which a configuration that has not run yet cannot know. A param the run lacks
    reads as its default, as compare's grouping reads it: a run recorded before a setting or
    option existed trained with that default.
    """
    return all(_value(run, key) == value for key, value in wanted.items())


def _preference(run: Any) -> tuple[bool, int]:
    """Which run of a duplicate set to keep: a FINISHED one, then the newest."""
    return run.info.status == "FINISHED", run.info.start_time or 0


def drop_duplicates(runs: list[Any]) -> tuple[list[Any], int]:
    """``runs`` with one run per duplicate set (in their order), and how many were dropped.

    Runs are compared on the union of their params, a missing one read as its default
    (as compare's grouping reads it), so an older run still matches a newer one.
    """
    keys = sorted({key for run in runs for key in run.data.params} - NOT_A_REPLICA)
    best: dict[tuple[str, ...], Any] = {}
    for run in runs:
        key = tuple(_value(run, k) for k in keys)
        if key not in best or _preference(run) > _preference(best[key]):
            best[key] = run
    chosen = {id(run) for run in best.values()}
    kept = [run for run in runs if id(run) in chosen]
    return kept, len(runs) - len(kept)


def drop_duplicate_runs(selection: Selection) -> int:
    """Keep one run per duplicate set in ``selection``; the number dropped."""
    selection.runs, dropped = drop_duplicates(selection.runs)
    selection.duplicates = dropped
    return dropped


def duplicates_note(dropped: int) -> str:
    """The one stderr line that says runs were left out, and why."""
    runs = "run" if dropped == 1 else "runs"
    return (f"ganlab: note: {dropped} duplicate {runs} left out: same params and seed as another run, which "
            f"trained the same replica (the newest FINISHED run of each set is kept)")
