"""Built-in architectures: the article's fully connected GAN (``mlp``) and DCGAN (``dcgan``).

Registration only: the factories are ``"module:attr"`` strings into
:mod:`ganlab_plugins.architectures.mlp` and :mod:`ganlab_plugins.architectures.dcgan`,
imported when a run builds the networks, so that listing components never imports torch.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


@hookimpl
def register_architectures(register: Any) -> None:
    register(
        "mlp", "ganlab_plugins.architectures.mlp:MLPArchitecture",
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
    register(
        "dcgan", "ganlab_plugins.architectures.dcgan:DCGANArchitecture",
        summary="DCGAN (Radford et al. 2015): transposed-conv G, strided-conv D, BatchNorm; square images 8 to 128 px",
        options={
            "ngf": Option(int, 64, "generator width: channels of G's last hidden layer", min=1),
            "ndf": Option(int, 64, "discriminator width: channels of D's first layer", min=1),
        },
    )
