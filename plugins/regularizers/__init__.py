"""Built-in regularisers of D: gradient penalties (gp, r1, r2) and WGAN's weight clipping.

Registration only: the factories are ``"module:attr"`` strings into
:mod:`ganlab_plugins.regularizers.penalties`, imported when a run builds them.
Every regulariser also has the engine's options ``weight`` and ``every``
(``ganlab.registry.ENGINE_OPTIONS``); the defaults below are the papers'.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_TORCH = "ganlab_plugins.regularizers.penalties"


@hookimpl
def register_regularizers(register: Any) -> None:
    register(
        "gp", f"{_TORCH}:GradientPenalty",
        summary="gradient penalty on interpolates of real and fake samples (WGAN-GP, Gulrajani et al. 2017)",
        options={
            "weight": Option(float, 10.0, "lambda", min=0.0),
            "center": Option(float, 1.0, "target gradient norm: 1 (WGAN-GP) or 0 (zero-centred, Thanh-Tung et al. 2019)",
                             min=0.0),
        },
    )
    register(
        "r1", f"{_TORCH}:R1",
        summary="R1: gamma/2 E||grad D(x)||^2 on real samples (Mescheder et al. 2018)",
        options={"weight": Option(float, 10.0, "gamma", min=0.0)},
    )
    register(
        "r2", f"{_TORCH}:R2",
        summary="R2: gamma/2 E||grad D(G(z))||^2 on generated samples (Mescheder et al. 2018)",
        options={"weight": Option(float, 10.0, "gamma", min=0.0)},
    )
    register(
        "weight-clip", f"{_TORCH}:WeightClip",
        summary="clip D's weights to [-c, c] after every D update (WGAN, Arjovsky et al. 2017)",
        options={"clip": Option(float, 0.01, "c", check=lambda v: None if v > 0 else "must be > 0")},
        penalty=False,  # acts on the weights after each update: no weight or every
    )
