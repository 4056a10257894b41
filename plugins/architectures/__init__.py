"""Built-in architectures: the article's fully connected GAN (``mlp``) and DCGAN (``dcgan``).

Registration only: the factories are ``"module:attr"`` strings into
:mod:`ganlab_plugins.architectures.mlp` and :mod:`ganlab_plugins.architectures.dcgan`,
imported when a run builds the networks, so that listing components never imports torch.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl
from ganlab.options import IntTuple


#: Options of both built-in architectures for class-conditional runs (labelled datasets only).
CONDITIONAL_OPTIONS = {
    "conditional": Option(bool, False, "class-conditional: G(z, y) with a class embedding joined to z (dcgan: and "
                          "conditional BatchNorm), D(x, y) a projection discriminator"),
    "projection": Option(bool, True, "with conditional: D projects its features on the class (Miyato & Koyama "
                         "2018); false: D ignores labels (AC-GAN, whose D learns classes through its loss)"),
    "class_dim": Option(int, 32, "with conditional: size of G's class embedding", min=1),
}


def _some_layers(widths: tuple[int, ...]) -> str | None:
    return None if widths else "needs at least one hidden layer"


@hookimpl
def register_architectures(register: Any) -> None:
    register(
        "mlp", "ganlab_plugins.architectures.mlp:MLPArchitecture",
        summary="The article's MLPs: G 256-512-1024 ReLU, D 1024-512-256 LeakyReLU(0.2)+Dropout; images or vectors "
                "(widths, D's activation and Dropout are options: e.g. PacGAN's 2-D networks)",
        options={
            "hidden_scale": Option(float, 1.0, "multiplies every hidden width (1.0 = the article)",
                                   min=0.0, min_exclusive=True),
            "dropout": Option(float, 0.3, "dropout after each hidden layer of D (0.3 = the article, "
                              "0 = none as in PacGAN)", min=0.0, max=0.95),
            "output": Option(str, "auto", "G's output: tanh, linear, or auto (tanh for images, "
                             "linear for vectors such as the unscaled 2-D mixtures)",
                             choices=("auto", "tanh", "linear")),
            "g_widths": Option(IntTuple, (256, 512, 1024), "G's hidden widths, input side first (PacGAN 2-D: "
                               "400,400,400,400); hidden_scale multiplies them", min=1, check=_some_layers),
            "d_widths": Option(IntTuple, (1024, 512, 256), "D's hidden widths, input side first (PacGAN 2-D: "
                               "200,200,200); hidden_scale multiplies them", min=1, check=_some_layers),
            "d_activation": Option(str, "leaky_relu", "D's hidden activation: leaky_relu (slope 0.2, the "
                                   "article) or relu (PacGAN)", choices=("leaky_relu", "relu")),
            "g_batchnorm": Option(bool, False, "BatchNorm after each hidden layer of G (PacGAN's G; "
                                  "not the article's)"),
            **CONDITIONAL_OPTIONS,
        },
    )
    register(
        "dcgan", "ganlab_plugins.architectures.dcgan:DCGANArchitecture",
        summary="DCGAN (Radford et al. 2015): transposed-conv G, strided-conv D, BatchNorm; square images 8 to 128 px "
                "(conditional=true: a class-conditional G and a projection D)",
        options={
            "ngf": Option(int, 64, "generator width: channels of G's last hidden layer", min=1),
            "ndf": Option(int, 64, "discriminator width: channels of D's first layer", min=1),
            **CONDITIONAL_OPTIONS,
        },
    )
