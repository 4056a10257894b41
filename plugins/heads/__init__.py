"""Built-in discriminator output heads: sigmoid, softmax, sparsemax, entmax.

Registration only: nothing heavy is imported here. The factories are
``"module:attr"`` strings into :mod:`ganlab_plugins.heads.torch_heads`, imported
when a run builds a head. See docs/heads.md for the mathematics and how to pick a head.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_TORCH = "ganlab_plugins.heads.torch_heads"


def _check_alpha(alpha: float) -> str | None:
    if 1.0 < alpha <= 2.0:
        return None
    return "must satisfy 1 < alpha <= 2 (alpha -> 1 is softmax: use --head softmax; alpha = 2 is sparsemax)"


def _scores() -> Option:
    """The two-class parametrisation of a head with a map over (real, fake) (docs/heads.md, "A head and
    its parametrisation"). Default 2, the form every run recorded before the option existed trained with."""
    return Option(
        int, 2,
        "two-class parametrisation: 2 = D emits (z_real, z_fake); 1 = D emits one score s and the map sees "
        "[s, 0], the margin of the sigmoid head (the control that isolates the map); K+1 classes need 2",
        choices=(1, 2),
    )


@hookimpl
def register_heads(register: Any) -> None:
    register(
        "sigmoid", f"{_TORCH}:SigmoidHead",
        summary="one score, p_real = sigmoid(s); binary cross-entropy from logits",
        sparse=False, classes=False,
    )
    register(
        "softmax", f"{_TORCH}:SoftmaxHead",
        summary="softmax over (real, fake) or K+1 classes; cross-entropy from logits",
        options={"scores": _scores()},
        sparse=False, classes=True,
    )
    register(
        "sparsemax", f"{_TORCH}:SparsemaxHead",
        summary="sparsemax over (real, fake) or K+1 classes; sparsemax (Fenchel-Young) loss",
        options={"scores": _scores()},
        sparse=True, classes=True,
    )
    register(
        "entmax", f"{_TORCH}:EntmaxHead",
        summary="alpha-entmax over (real, fake) or K+1 classes; entmax (Fenchel-Young) loss",
        options={
            "alpha": Option(
                float, 1.5,
                "sparsity, 1 < alpha <= 2 (1.5: exact entmax15; others: bisection; 2 = sparsemax)",
                check=_check_alpha,
            ),
            "scores": _scores(),
        },
        sparse=True, classes=True,
    )
