"""Built-in GAN objectives (nonsaturating, minimax) and the semi-supervised accuracy metric.

Registration only: torch is imported by the factories. Both objectives take
``labeled`` (0 = off): with N > 0, D becomes a K+1-class discriminator trained on
N labelled examples (Salimans et al. 2016), and the ``ssl`` metric logs its
test-set accuracy. See docs/heads.md.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_SSL_OPTIONS = {
    "labeled": Option(
        int, 0,
        "semi-supervised: keep N labels and train D as a K+1-class classifier (0 = off)", min=0,
    ),
    "class_weight": Option(float, 1.0, "weight of D's supervised class loss when labeled > 0", min=0.0),
}


def _nonsaturating(labeled: int = 0, class_weight: float = 1.0) -> Any:
    from ganlab_plugins.objectives_impl import NonSaturating

    return NonSaturating(labeled, class_weight)


def _minimax(labeled: int = 0, class_weight: float = 1.0) -> Any:
    from ganlab_plugins.objectives_impl import Minimax

    return Minimax(labeled, class_weight)


def _ssl_accuracy(max_examples: int = 10000) -> Any:
    from ganlab_plugins.objectives_impl import SemiSupervisedAccuracy

    return SemiSupervisedAccuracy(max_examples)


@hookimpl
def register_losses(register: Any) -> None:
    register(
        "nonsaturating", _nonsaturating,
        summary="non-saturating GAN game: G minimises the head's loss for 'real' on its samples",
        options=dict(_SSL_OPTIONS),
    )
    register(
        "minimax", _minimax,
        summary="original minimax game: G maximises D's loss for 'fake' (saturates)",
        options=dict(_SSL_OPTIONS),
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "ssl", _ssl_accuracy,
        summary="semi-supervised D's class accuracy on the test split (runs with loss.labeled > 0)",
        options={"max_examples": Option(int, 10000, "test examples to classify", min=1)},
    )
