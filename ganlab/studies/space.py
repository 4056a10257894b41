"""The ``[search]`` table of a sweep file: distributions to sample, how many trials, what to optimise.

    [search]
    n_trials = 20
    objective = "modes.hq_percent"     # a metric every run logs; its final value is the trial's value
    direction = "maximize"             # or "minimize"
    sampler = "tpe"                    # tpe (default) or random
    pruner = "none"                    # none (default) or median: stop runs whose evaluations trail
    lr_g = { log_uniform = [1e-5, 1e-2] }
    "head.alpha" = { uniform = [1.05, 2.0] }
    "arch.ndf" = { int = [32, 128] }
    "head.name" = { choices = ["sigmoid", "entmax"] }
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ganlab.errors import ConfigError, did_you_mean

#: Keys of [search] that are not distributions.
SEARCH_KEYS = ("n_trials", "objective", "direction", "sampler", "pruner")
KINDS = ("uniform", "log_uniform", "int", "log_int", "choices")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median")


@dataclass
class Distribution:
    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: list[Any] = field(default_factory=list)

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choices":
            return trial.suggest_categorical(self.key, self.choices)
        if self.kind in ("int", "log_int"):
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.kind == "log_int")
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log_uniform")

    def middle(self) -> Any:
        """A value inside the distribution: used to validate the key before any trial runs."""
        if self.kind == "choices":
            return self.choices[0]
        if self.kind in ("int", "log_int"):
            return int(self.low)
        return math.sqrt(self.low * self.high) if self.kind == "log_uniform" else (self.low + self.high) / 2


@dataclass
class SearchSpec:
    distributions: list[Distribution]
    n_trials: int
    objective: str | None = None
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {"distributions": [vars(d) for d in self.distributions], "n_trials": self.n_trials,
                "objective": self.objective, "direction": self.direction, "sampler": self.sampler,
                "pruner": self.pruner}

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> "SearchSpec":
        return cls([Distribution(**d) for d in blob["distributions"]], blob["n_trials"], blob["objective"],
                   blob["direction"], blob["sampler"], blob["pruner"])


def parse_search(where: str, table: Any) -> SearchSpec:
    """Check a [search] table in full; every problem is one line naming the key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [search] must be a table")
    n_trials = table.get("n_trials")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"{where}: [search] needs n_trials, a whole number >= 1 (got {n_trials!r})")
    objective = table.get("objective")
    if objective is not None and (not isinstance(objective, str) or not objective):
        raise ConfigError(f"{where}: [search] objective must be a metric name such as \"modes.hq_percent\"")
    direction = _choice(where, table, "direction", DIRECTIONS)
    sampler = _choice(where, table, "sampler", SAMPLERS)
    pruner = _choice(where, table, "pruner", PRUNERS)
    if objective is None and (sampler != "random" or pruner != "none"):
        raise ConfigError(f"{where}: [search] sampler '{sampler}' and pruner '{pruner}' need an objective "
                          "(e.g. objective = \"modes.hq_percent\"); without one use sampler = \"random\"")
    distributions = [parse_distribution(where, key, value) for key, value in table.items() if key not in SEARCH_KEYS]
    if not distributions:
        raise ConfigError(f"{where}: [search] gives no distribution (e.g. lr_g = {{ log_uniform = [1e-5, 1e-2] }})")
    return SearchSpec(distributions, n_trials, objective, direction, sampler, pruner)


def _choice(where: str, table: dict[str, Any], key: str, valid: tuple[str, ...]) -> str:
    value = table.get(key, valid[0])
    if value not in valid:
        raise ConfigError(f"{where}: [search] {key} = {value!r}{did_you_mean(str(value), valid)} "
                          f"(valid: {', '.join(valid)})")
    return value


def parse_distribution(where: str, key: str, value: Any) -> Distribution:
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{where}: [search] {key} must be one distribution, e.g. {{ uniform = [low, high] }} "
                          f"(kinds: {', '.join(KINDS)}); not {value!r}")
    [(kind, bounds)] = value.items()
    if kind not in KINDS:
        raise ConfigError(f"{where}: [search] {key}: unknown distribution '{kind}'{did_you_mean(kind, KINDS)} "
                          f"(valid: {', '.join(KINDS)})")
    if kind == "choices":
        if not isinstance(bounds, list) or not bounds:
            raise ConfigError(f"{where}: [search] {key}: choices must be a non-empty list")
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in bounds):
            raise ConfigError(f"{where}: [search] {key}: choices must be strings, numbers or booleans")
        return Distribution(key, kind, choices=list(bounds))
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
        raise ConfigError(f"{where}: [search] {key}: {kind} needs [low, high], two numbers; not {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if kind in ("int", "log_int") and not all(isinstance(b, int) for b in bounds):
        raise ConfigError(f"{where}: [search] {key}: {kind} needs whole numbers, not {bounds!r}")
    if low > high:
        raise ConfigError(f"{where}: [search] {key}: low {bounds[0]} > high {bounds[1]}")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"{where}: [search] {key}: {kind} needs low > 0, not {bounds[0]}")
    return Distribution(key, kind, low, high)
