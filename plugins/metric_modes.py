"""``modes``: the mode-collapse metric of the 2-D mixtures (``ring8``, ``grid25``).

The protocol of SCIENCE.md §5 (VEEGAN, PacGAN and later papers): draw 2,500
generated samples; a sample is *high quality* (HQ) when it lies within 3σ of
its nearest mode; a mode is *captured* when at least one HQ sample has it as
nearest mode. Logged: ``modes.captured`` (count), ``modes.hq_percent`` and
``modes.kl_uniform`` (see :mod:`ganlab_plugins.metric_modes_impl` for the
exact definitions and the no-HQ convention).

The sample count is this metric's own option, not the run's ``eval_samples``:
the number of captured modes grows with the number of samples drawn, so the
published protocol fixes it at 2,500, and 2,500 points in 2-D cost nothing.
Registration only; torch is imported by the factory.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

#: datasets whose modes are known (their means and σ come from data_mixtures_impl)
MIXTURES = ("ring8", "grid25")


def _modes(samples: int = 2500, hq_sigmas: float = 3.0) -> Any:
    from ganlab_plugins.metric_modes_impl import ModesMetric

    return ModesMetric(samples=samples, hq_sigmas=hq_sigmas)


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "modes", _modes,
        summary="2-D mixtures: modes captured, % high-quality samples, KL(HQ mode histogram || uniform)",
        options={
            "samples": Option(int, 2500, "generated samples per evaluation (the protocol's 2500; "
                              "independent of eval_samples)", min=1),
            "hq_sigmas": Option(float, 3.0, "a sample is high quality within this many sigmas of its nearest mode",
                                min=0.0, min_exclusive=True),
        },
        datasets=MIXTURES,
    )
