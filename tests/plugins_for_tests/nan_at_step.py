"""Test plugin: a GAN objective that makes training diverge at a chosen step.

``--plugin tests/plugins_for_tests/nan_at_step.py --loss nan-at-step
--set loss.step=7`` trains like ``nonsaturating`` until step 7, then:

* ``target="loss"`` (default): D's loss of step 7 is NaN (``value="inf"``: +Inf);
* ``target="generator"``: after step 7 the first generator weight is
  overwritten with NaN (losses of step 7 stay finite, so only the parameter
  check can notice); ``--set loss.seed=K`` does it only in the run with seed K
  (one replica of a population).

The objective learns the current step from this module's lifecycle hooks,
since objectives are not told the step.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_RUN: dict[str, Any] = {}


class NanAtStep:
    def __init__(self, step: int, value: str, target: str) -> None:
        from ganlab_plugins.objectives.games import NonSaturating

        self.base = NonSaturating()
        self.step, self.value, self.target = step, value, target

    def _poison(self) -> float:
        return float("nan") if self.value == "nan" else float("inf")

    vectorisable = True  # a population's replicas share it; target=generator with a seed poisons one

    def discriminator_loss(self, step: Any) -> Any:
        loss = self.base.discriminator_loss(step)
        ctx = _RUN.get("ctx")
        if self.target == "loss" and ctx is not None and ctx.step + 1 == self.step:
            return loss * self._poison() if self.value == "nan" else loss + self._poison()
        return loss

    def generator_loss(self, step: Any) -> Any:
        return self.base.generator_loss(step)


def _make(step: int, value: str, target: str, seed: int = -1) -> Any:
    return NanAtStep(step, value, target)


@hookimpl
def register_losses(register: Any) -> None:
    register(
        "nan-at-step", _make,
        summary="nonsaturating, but diverges (NaN/Inf loss or parameter) at a chosen step (tests only)",
        options={
            "step": Option(int, 5, "the step that diverges", min=1),
            "value": Option(str, "nan", "nan or inf", choices=("nan", "inf")),
            "target": Option(str, "loss", "loss or generator (a parameter)", choices=("loss", "generator")),
            "seed": Option(int, -1, "target generator: only the run with this seed (-1: every run)", min=-1),
        },
    )


@hookimpl
def on_run_start(ctx: Any) -> None:
    _RUN["ctx"] = ctx


@hookimpl
def on_step_end(ctx: Any, step: int, losses: Any) -> None:
    import torch

    options = ctx.config.options_of("loss") if ctx.config.name_of("loss") == "nan-at-step" else None
    if (options and options["target"] == "generator" and step == options["step"]
            and options["seed"] in (-1, ctx.config.seed)):
        with torch.no_grad():
            next(ctx.generator.parameters()).fill_(float(options["value"]))
