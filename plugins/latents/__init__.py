"""Built-in latents: what the generator is fed.

``gaussian`` is the plain GAN's z ~ N(0, I) (the engine's own draw, :mod:`ganlab.train.noise`, by name);
``infogan`` splits the
same vector into incompressible noise and structured codes (Chen et al. 2016): categorical codes as
one-hot blocks and continuous codes uniform on [-1, 1], in that order, at the end of z.

Registration only: the torch code is in :mod:`ganlab_plugins.latents.codes`, imported when a run
draws its first noise.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl
from ganlab.options import IntTuple


def _categories(sizes: tuple[int, ...]) -> str | None:
    return "each categorical code needs at least 2 values" if any(k < 2 for k in sizes) else None


@hookimpl
def register_latents(register: Any) -> None:
    register("gaussian", "ganlab.train.noise:StandardNormal", summary="z ~ N(0, I): the plain GAN's noise")
    register(
        "infogan", "ganlab_plugins.latents.codes:InfoGANCodes",
        summary="InfoGAN's input: Gaussian noise, then one-hot categorical codes and uniform continuous codes "
                "(pair with --loss infogan)",
        options={
            "categorical": Option(IntTuple, (10,), "the number of values of each categorical code, e.g. 10 "
                                  "or 10,4", min=2, check=_categories),
            "continuous": Option(int, 2, "continuous codes, each uniform on [-1, 1]", min=0),
        },
    )
