"""Metrics comparable only under one protocol: never averaged or tested across protocols, and
their protocol shown beside the numbers.

A metric component may declare, when it registers, the run params that define its protocol
(``protocol=("inception.samples", "inception.reference", ...)``): FID from 10,000 samples and
FID from 50,000, or against the training split and against the test split, are different
quantities, and a difference between them says nothing about the models. The default
grouping already splits runs by every param that differs; this module refuses what could
still mix them, once a declared metric is among the compared ones: a group whose runs differ
in a protocol param (``--pool`` over it), and a ``--test``/``--power`` pair of groups that
differ in one (their difference would be the protocol's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ganlab.errors import GanlabError


def declared(metrics: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Metric prefix -> its protocol params, for the installed metric components that declare some
    and whose values are among ``metrics`` (speed metrics such as ``auc:inception.fid`` included)."""
    from ganlab.compare.stats import installed_registry

    # a speed metric names its metric after the colon: auc:inception.fid, steps_to:inception.fid<=40
    prefixes = {m.rsplit(":", 1)[-1].split(".")[0] for m in metrics}
    found: dict[str, tuple[str, ...]] = {}
    for component in installed_registry().of_kind("metric"):
        params = tuple(component.metadata.get("protocol") or ())
        prefix = str(component.metadata.get("logs", component.name))
        if params and prefix in prefixes:
            found[prefix] = params
    return found


def _values(runs: Sequence[Any], param: str) -> list[str]:
    """The values runs recorded for ``param`` (runs that did not run the metric have none)."""
    return sorted({run.data.params[param] for run in runs if param in run.data.params})


def check_groups(groups: Sequence[Any], keys: Sequence[str], protocols: dict[str, tuple[str, ...]]) -> None:
    """Refuse, in one line, a group whose runs recorded different values of a protocol param."""
    for prefix, params in protocols.items():
        for group in groups:
            for param in params:
                values = _values(group.runs, param)
                if len(values) > 1:
                    where = ", ".join(f"{k}={v}" for k, v in zip(keys, group.values)) or "all runs"
                    raise GanlabError(
                        f"runs grouped together ({where}) differ in {param} ({' / '.join(values)}): {prefix}.* "
                        f"values are comparable only under one protocol; drop {param} from --pool, or leave "
                        f"{prefix}.* out with --metrics")


def check_pairs(groups: Sequence[Any], pairs: Sequence[tuple[int, int]],
                protocols: dict[str, tuple[str, ...]], labels: Sequence[str]) -> None:
    """Refuse, in one line, a tested pair of groups (indices into ``groups``) whose protocols differ."""
    for prefix, params in protocols.items():
        for i, j in pairs:
            for param in params:
                first, second = _values(groups[i].runs, param), _values(groups[j].runs, param)
                if first and second and first != second:
                    raise GanlabError(
                        f"groups '{labels[i]}' and '{labels[j]}' differ in {param} ({' / '.join(first)} vs "
                        f"{' / '.join(second)}), so testing their {prefix}.* values would measure the protocol, "
                        f"not the models; leave {prefix}.* out with --metrics, or compare runs of one protocol")


def shown(runs: Sequence[Any], protocols: dict[str, tuple[str, ...]]) -> dict[str, dict[str, list[str]]]:
    """Metric prefix -> protocol param -> the values the compared runs recorded: what the caption names."""
    return {prefix: {param: _values(runs, param) for param in params if _values(runs, param)}
            for prefix, params in protocols.items()}
