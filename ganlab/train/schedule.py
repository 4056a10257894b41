"""Learning-rate schedules: the rate of each step as a function of the step alone.

A schedule that depends on nothing but the step number needs no state of its
own: a resumed run sets the same rates as an uninterrupted one, and the
replicas of a population share one schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: name -> what it does, for the setting's help and errors
SCHEDULES = {
    "constant": "the base rate throughout",
    "linear": "from the base rate down to 0 at the last step",
    "cosine": "half a cosine from the base rate down to 0 at the last step",
}


def factor(kind: str, step: int, steps: int) -> float:
    """The multiple of the base rate for the update that follows ``step`` completed generator steps."""
    if kind == "constant":
        return 1.0
    progress = min(max(step / steps, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {kind!r} (valid: {', '.join(SCHEDULES)})")


def set_rates(pairs: Iterable[tuple[Any, float]], kind: str, step: int, steps: int) -> None:
    """Set every parameter group of each (optimizer, base rate) pair to the schedule's rate at ``step``:
    the group's own starting rate (``initial_lr``, which ganlab.train.build records when it makes the
    optimiser) times the schedule's factor; ``base`` for a group without one (a checkpoint written
    before groups recorded it)."""
    if kind == "constant":
        return
    scale = factor(kind, step, steps)
    for optimizer, base in pairs:
        for group in optimizer.param_groups:
            group["lr"] = group.get("initial_lr", base) * scale
