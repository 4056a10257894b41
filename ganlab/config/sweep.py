"""Sweep files: a base run configuration and a grid of values, expanded into variants.

A sweep file is TOML::

    experiment = "heads"        # MLflow experiment of the parent and child runs
                                # (default: the base's `experiment`, else the file's stem)
    name = "heads"              # parent run name (default: the experiment name)
    description = "four heads x three seeds"    # optional, stored on the parent run

    [base]                      # any run configuration, laid out as for `ganlab run --config`
    steps = 300
    [base.arch]
    name = "dcgan"

    [grid]                      # one axis per key; every combination is one variant
    "head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]
    seed = [0, 1, 2]

``exclude = [{ "loss.name" = "hinge", "head.name" = "softmax" }]`` leaves out every
variant whose grid values match all keys of one entry (combinations that are refused or
meaningless).

With ``population = true`` at the top, the ``seed`` axis is not expanded: each
variant trains all its seeds as one population (``seeds = "0,1,2"``, see
``ganlab.train.population``), a parent run with one child run per seed.

A grid key is any key ``--set`` accepts: a setting (``seed``, ``lr_d``), a
component's name or option (``head.name``, ``head.alpha``, ``dataset.size``) or
a metric option (``metric.modes.samples``). A component's own key (``head``)
takes names or tables, so options can travel with the name they belong to::

    head = ["sigmoid", { name = "entmax", alpha = 1.25 }, { name = "entmax", alpha = 2.0 }]

Variants are the Cartesian product of the axes in file order (the last axis
varies fastest). Layers apply in this order: the run defaults, ``[base]``,
``--set`` from the command line, the variant's grid values. When a grid value
gives a component a different name from the base's, that component's base
options are dropped for the variant: options of one head mean nothing to
another. A file without ``[base]`` or ``[grid]`` is a plain run configuration
and sweeps as a single variant, so ``ganlab run --config F`` and ``ganlab sweep
F`` accept the same file.

Nothing here imports torch or mlflow.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ganlab.config import (
    DEFAULT_COMPONENTS,
    SECTIONS,
    TABLE_KINDS,
    SETTINGS,
    TOO_DEEP,
    ConfigBuilder,
    RunConfig,
    parse_assignment,
    read_toml,
)
from ganlab.errors import ConfigError, GanlabError, did_you_mean

#: Top-level keys of a sweep file.
SWEEP_KEYS = ("experiment", "name", "description", "population", "base", "grid", "exclude", "search")
#: Settings the sweep owns for every variant; a grid or --set may not change them.
RESERVED = ("experiment", "run_name", "tracking", "tracking_uri", "parent_run_id")


@dataclass
class Variant:
    """One point of the grid, validated."""

    index: int  # 1-based, in expansion order
    values: dict[str, Any]  # grid key -> value, in axis order
    name: str  # MLflow run name, unique within the sweep
    config: RunConfig


@dataclass
class SweepSpec:
    path: Path
    experiment: str
    name: str
    description: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    #: ``population = true``: the seed axis is every variant's ``seeds`` (see ``vectorise_seed_axis``)
    population: bool = False
    #: combinations left out of the grid: a variant matching every key of one entry is not trained
    exclude: list[dict[str, Any]] = field(default_factory=list)
    #: ``[search]``: distributions an Optuna sampler draws each trial's settings from (ganlab.studies.space)
    search: Any = None

    @property
    def size(self) -> int:
        size = 1
        for values in self.grid.values():
            size *= len(values)
        return size

    def grid_json(self) -> str:
        return json.dumps(self.grid, sort_keys=False, default=str)


def load_sweep(path: str | Path, experiment: str | None = None) -> SweepSpec:
    """Read a sweep file (or a plain run configuration) and check its structure."""
    path = Path(path)
    raw = read_toml(path, "sweep file")
    if "base" in raw or "grid" in raw:
        unknown = [k for k in raw if k not in SWEEP_KEYS]
        if unknown:
            raise ConfigError(
                f"{path}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], SWEEP_KEYS)} in a sweep file "
                f"(valid: {', '.join(SWEEP_KEYS)}; run settings belong in [base])"
            )
        base, grid = raw.get("base", {}), raw.get("grid", {})
        if not isinstance(base, dict) or not isinstance(grid, dict):
            raise ConfigError(f"{path}: [base] and [grid] must be tables")
        top_experiment = raw.get("experiment")
        name, description = raw.get("name"), raw.get("description", "")
    else:  # a plain run configuration: one variant
        base, grid, top_experiment, name, description = raw, {}, None, None, ""
    for key, value in (("experiment", top_experiment), ("name", name), ("description", description)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: '{key}' must be a string, not {value!r}")
    base = copy.deepcopy(base)
    base_experiment = base.pop("experiment", None)
    exp = experiment or top_experiment or base_experiment or path.stem
    for key in RESERVED:
        if key in base and key != "run_name":
            raise ConfigError(f"{path}: [base] may not set '{key}'; the sweep sets it for every variant")
    spec = SweepSpec(path=path, experiment=str(exp), name=name or str(exp), description=description,
                     base=base, grid={})
    for key, values in grid.items():
        spec.grid[key] = check_axis(f"{path} [grid]", key, values)
    population = raw.get("population", False) if ("base" in raw or "grid" in raw) else False
    if not isinstance(population, bool):
        raise ConfigError(f"{path}: 'population' must be true or false, not {population!r}")
    if population:
        if "seeds" in spec.base or "seeds" in spec.grid:
            raise ConfigError(f"{path}: population = true makes 'seeds' from the seed axis; do not set it too")
        spec.population = True
        vectorise_seed_axis(spec)
    spec.exclude = check_exclude(path, raw.get("exclude", []) if ("base" in raw or "grid" in raw) else [], spec.grid)
    if "search" in raw and ("base" in raw or "grid" in raw):
        from ganlab.studies.space import parse_search

        spec.search = parse_search(str(path), raw["search"])
        check_search_axes(spec)
    return spec


def check_search_axes(spec: SweepSpec) -> None:
    """A search draws its own values: it does not combine with a grid (a population's seeds excepted)."""
    if spec.search is not None and spec.grid:
        raise ConfigError(f"{spec.path}: [search] and [grid] ({', '.join(spec.grid)}) do not combine; a search draws "
                          "each trial's values (a population = true file may keep its seed axis)")


def check_exclude(path: Path, entries: Any, grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """``exclude = [{ "loss.name" = "hinge", "head.name" = "softmax" }, ...]``: each entry names grid
    axes and one value of each; refused in one line if it names no axis or could match nothing."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
        raise ConfigError(f"{path}: 'exclude' must be a list of tables of grid values "
                          '(e.g. exclude = [{ "loss.name" = "hinge", "head.name" = "softmax" }])')
    for entry in entries:
        for key, value in entry.items():
            if key not in grid:
                raise ConfigError(f"{path}: exclude names '{key}', which is not a grid axis"
                                  f"{did_you_mean(key, list(grid))} (axes: {', '.join(grid) or 'none'})")
            if value not in grid[key]:
                raise ConfigError(f"{path}: exclude gives {key} = {value!r}, which the axis does not hold "
                                  f"({', '.join(map(repr, grid[key]))})")
    return [dict(e) for e in entries]


def vectorise_seed_axis(spec: SweepSpec) -> None:
    """``population = true``: the seed axis becomes every variant's ``seeds`` (one population each).

    Called again after ``--grid seed=...`` replaced the axis: the new seeds replace the file's."""
    seeds = spec.grid.pop("seed", None)
    if seeds is None:
        if "seeds" in spec.base:
            return  # already made from the file's axis
        raise ConfigError(f"{spec.path}: population = true needs a seed axis in [grid] (e.g. seed = [0, 1, 2])")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{spec.path}: the seed axis of a population holds seeds (integers >= 0), not {seeds!r}")
    spec.base["seeds"] = ",".join(str(s) for s in seeds)


def check_axis(where: str, key: str, values: Any) -> list[Any]:
    """A grid axis must name a settable key and list at least one value."""
    parts = key.split(".")
    if parts[0] in RESERVED and len(parts) == 1:
        raise ConfigError(f"{where}: '{key}' cannot be a grid axis; the sweep sets it for every variant")
    if parts[0] in SECTIONS:
        ok = len(parts) <= 2 and all(parts)
    elif parts[0] in TABLE_KINDS:
        ok = len(parts) == 3 and all(parts)
    else:
        ok = len(parts) == 1 and parts[0] in SETTINGS
    if not ok:
        known = [*SETTINGS, *(f"{s}.name" for s in SECTIONS)]
        raise ConfigError(
            f"{where}: '{key}' is not a setting, component option or metric option{did_you_mean(key, known)} "
            f"(e.g. seed, head.name, head.alpha, reg, metric.NAME.OPTION, regularizer.NAME.OPTION)"
        )
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: '{key}' must be a non-empty list of values, not {values!r}")
    for value in values:
        if isinstance(value, (list, dict)) and not (isinstance(value, dict) and len(parts) == 1 and parts[0] in SECTIONS):
            raise ConfigError(f"{where}: '{key}' holds {value!r}; only a component key such as 'head' takes tables")
    return list(values)


def check_size(spec: SweepSpec, limit: int, force: bool = False) -> int:
    """The number of variants, counted from the axis lengths (nothing expanded); refused above ``limit``."""
    size = spec.size
    if size > limit and not force:
        axes = " x ".join(f"{len(v)} {k}" for k, v in spec.grid.items())
        raise ConfigError(f"{spec.path}: the grid has {size} variants ({axes}), above the limit of {limit}; "
                          f"narrow it (e.g. --grid KEY=V1,V2) or pass --force to expand it anyway")
    return size


def parse_grid_override(text: str) -> tuple[str, list[Any]]:
    """``--grid seed=0,1,2`` -> ("seed", [0, 1, 2]); each item is read as a TOML value if it is one."""
    parts, value = parse_assignment(text)
    items = [item.strip() for item in value.split(",") if item.strip()]
    return ".".join(parts), [_toml_value(item) for item in items]


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:  # refused like a file nested as deeply (config.loads_toml), not kept as a string
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise ConfigError(f"--grid value {shown} is not valid TOML: {TOO_DEEP} for the parser") from None


def nested(key: str, value: Any) -> dict[str, Any]:
    """``head.alpha`` = 1.5 -> {"head": {"alpha": 1.5}}: the layout ConfigBuilder reads."""
    parts = key.split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def _component_name(key: str, value: Any) -> tuple[str, str] | None:
    """(section, name) when this grid value names a component."""
    parts = key.split(".")
    if parts[0] not in SECTIONS:
        return None
    if len(parts) == 1:
        name = value if isinstance(value, str) else value.get("name") if isinstance(value, Mapping) else None
        return (parts[0], name) if isinstance(name, str) else None
    if parts[1] == "name" and isinstance(value, str):
        return parts[0], value
    return None


def label(values: Mapping[str, Any]) -> str:
    """A short run name from a variant's grid values: names bare, everything else key=value."""
    parts = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            parts.append("-".join([str(value.get("name", key))] +
                                  [f"{k}={v}" for k, v in value.items() if k != "name"]))
        elif key.endswith(".name") or key in SECTIONS:
            parts.append(str(value))
        else:
            parts.append(f"{key.split('.')[-1]}={value}")
    return "-".join(parts)


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {key: value}, in file order."""
    keys = list(spec.grid)
    combos = [dict(zip(keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in keys))]
    return [c for c in combos if not any(all(c.get(k) == v for k, v in e.items()) for e in spec.exclude)]


def build_variant(spec: SweepSpec, values: Mapping[str, Any], sets: Sequence[str], registry: Any,
                  uri: str) -> RunConfig:
    """Base, then --set, then the grid values; validated against the registry."""
    builder = ConfigBuilder()
    builder.add_mapping(copy.deepcopy(spec.base), f"{spec.path} [base]")
    builder.add_sets(sets)
    for key, value in values.items():
        named = _component_name(key, value)
        if named is not None:
            section, name = named
            table = builder.raw.get(section, {})
            if name != (table.get("name") or DEFAULT_COMPONENTS[section]):
                # options given for the base's component may mean nothing to this one
                declared = registry.get(SECTIONS[section], name).options
                builder.raw[section] = {k: v for k, v in table.items() if k in declared}
        builder.add_mapping(nested(key, copy.deepcopy(value)), f"{spec.path} [grid]")
    builder.add_mapping({"experiment": spec.experiment, "tracking": True, "tracking_uri": uri}, "sweep")
    return builder.build(registry)


def _check_kept_options(spec: SweepSpec, sets: Sequence[str], configs: Sequence[RunConfig]) -> None:
    """An option dropped for some variants must still reach at least one: else it is a typo."""
    given: dict[str, set[str]] = {}
    for section, table in spec.base.items():
        if section in SECTIONS and isinstance(table, Mapping):
            given.setdefault(section, set()).update(k for k in table if k != "name")
    for text in sets:
        parts, _ = parse_assignment(text)
        if parts[0] in SECTIONS and len(parts) == 2 and parts[1] != "name":
            given.setdefault(parts[0], set()).add(parts[1])
    for section, keys in given.items():
        for key in sorted(keys):
            if not any(key in config.components[section] for config in configs):
                names = sorted({config.name_of(section) for config in configs})
                declared = sorted({k for c in configs for k in c.components[section] if k != "name"})
                raise ConfigError(
                    f"unknown option '{section}.{key}'{did_you_mean(key, declared)}: no {section} in the sweep "
                    f"({', '.join(names)}) has it"
                )


def variants(spec: SweepSpec, sets: Sequence[str], registry: Any, uri: str) -> list[Variant]:
    """Validate every variant before anything trains; the first bad one is reported in one line."""
    for text in sets:
        parts, _ = parse_assignment(text)
        key = ".".join(parts)
        if key in spec.grid or (len(parts) == 2 and parts[0] in spec.grid):
            raise ConfigError(f"--set {key} would be overridden by the grid axis '{key}'; use --grid {key}=... instead")
        if parts[0] in RESERVED:
            raise ConfigError(f"--set {key}: the sweep sets '{parts[0]}' for every variant")
    combos = expand(spec)
    out: list[Variant] = []
    failures: list[tuple[int, dict[str, Any], GanlabError]] = []
    seen: dict[str, int] = {}
    for index, values in enumerate(combos, start=1):
        try:
            config = build_variant(spec, values, sets, registry, uri)
        except GanlabError as exc:
            failures.append((index, values, exc))
            continue
        name = label(values) or config.run_name or config.default_run_name()
        if name in seen:
            name = f"{name}#{index}"
        seen[name] = index
        config = config.replace(run_name=name)
        out.append(Variant(index, dict(values), name, config))
    if failures:
        index, values, exc = failures[0]
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "the base"
        more = f" (and {len(failures) - 1} more variant(s) fail)" if len(failures) > 1 else ""
        raise ConfigError(f"{spec.path}: variant {index}/{len(combos)} ({shown}): {exc}{more}")
    _check_kept_options(spec, sets, [v.config for v in out])
    return out
