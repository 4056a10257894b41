"""Built-in discriminator output heads: sigmoid, softmax, sparsemax, entmax.

Registration only: nothing heavy is imported here. Each factory imports the
torch implementation (:mod:`ganlab_plugins.heads_impl`) when a run builds it.
See docs/heads.md for the mathematics and how to pick a head.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _check_alpha(alpha: float) -> str | None:
    if 1.0 < alpha <= 2.0:
        return None
    return "must satisfy 1 < alpha <= 2 (alpha -> 1 is softmax: use --head softmax; alpha = 2 is sparsemax)"


def _sigmoid() -> Any:
    from ganlab_plugins.heads_impl import SigmoidHead

    return SigmoidHead()


def _softmax() -> Any:
    from ganlab_plugins.heads_impl import SoftmaxHead

    return SoftmaxHead()


def _sparsemax() -> Any:
    from ganlab_plugins.heads_impl import SparsemaxHead

    return SparsemaxHead()


def _entmax(alpha: float = 1.5) -> Any:
    from ganlab_plugins.heads_impl import EntmaxHead

    return EntmaxHead(alpha)


@hookimpl
def register_heads(register: Any) -> None:
    register(
        "sigmoid", _sigmoid,
        summary="one score, p_real = sigmoid(s); binary cross-entropy from logits",
        sparse=False, classes=False,
    )
    register(
        "softmax", _softmax,
        summary="softmax over (real, fake) or K+1 classes; cross-entropy from logits",
        sparse=False, classes=True,
    )
    register(
        "sparsemax", _sparsemax,
        summary="sparsemax over (real, fake) or K+1 classes; sparsemax (Fenchel-Young) loss",
        sparse=True, classes=True,
    )
    register(
        "entmax", _entmax,
        summary="alpha-entmax over (real, fake) or K+1 classes; entmax (Fenchel-Young) loss",
        options={
            "alpha": Option(
                float, 1.5,
                "sparsity, 1 < alpha <= 2 (1.5: exact entmax15; others: bisection; 2 = sparsemax)",
                check=_check_alpha,
            ),
        },
        sparse=True, classes=True,
    )
