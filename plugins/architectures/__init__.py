"""The article's fully connected GAN (``mlp``): registration only.

The networks live in :mod:`ganlab_plugins.arch_mlp_impl`, imported when a run
builds them, so that listing components never imports torch.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _make(hidden_scale: float, dropout: float, output: str) -> Any:
    from ganlab_plugins.arch_mlp_impl import MLPArchitecture

    return MLPArchitecture(hidden_scale=hidden_scale, dropout=dropout, output=output)


@hookimpl
def register_architectures(register: Any) -> None:
    register(
        "mlp",
        _make,
        summary="The article's MLPs: G 256-512-1024 ReLU, D 1024-512-256 LeakyReLU(0.2)+Dropout; images or vectors",
        options={
            "hidden_scale": Option(float, 1.0, "multiplies every hidden width (1.0 = the article)",
                                   min=0.0, min_exclusive=True),
            "dropout": Option(float, 0.3, "dropout after each hidden layer of D (0.3 = the article)",
                              min=0.0, max=0.95),
            "output": Option(str, "auto", "G's output: tanh, linear, or auto (tanh for images, "
                             "linear for vectors such as the unscaled 2-D mixtures)",
                             choices=("auto", "tanh", "linear")),
        },
    )
