"""Built-in architectures: the article's fully connected GAN (``mlp``), DCGAN (``dcgan``), and the
text GANs' sequence networks (``lstm``, ``conv``; ``metadata text=True``: they serve text datasets only).

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


#: G's output mapping of the text architectures (``plugins/architectures/token_outputs.py``)
TEXT_OUTPUT_OPTIONS = {
    "output": Option(str, "softmax", "G's per-position mapping: softmax (never an exact one-hot), sparsemax or "
                     "entmax (exact one-hots and sparse mixtures), gumbel (straight-through Gumbel-softmax: "
                     "one-hot samples, biased gradient)", choices=("softmax", "sparsemax", "entmax", "gumbel")),
    "alpha": Option(float, 1.5, "with output=entmax: alpha of alpha-entmax, 1 < alpha <= 2 (1.5 exact, others "
                    "by bisection)", min=1.0, min_exclusive=True, max=2.0),
    "tau": Option(float, 1.0, "with output=gumbel: temperature of the relaxed sample whose gradient G gets",
                  min=0.0, min_exclusive=True),
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
    register(
        "lstm", "ganlab_plugins.architectures.text:LSTMTextArchitecture",
        summary="text: autoregressive LSTM G feeding back its own output distributions, LSTM D; G's output mapping "
                "is an option (softmax, sparsemax, entmax, gumbel)",
        options={
            "hidden": Option(int, 128, "LSTM hidden size of G and D", min=1),
            "embedding": Option(int, 64, "token embedding size (G: its previous distribution times a V x embedding "
                                "matrix; D: a V -> embedding linear layer)", min=1),
            **TEXT_OUTPUT_OPTIONS,
        },
        text=True,
    )
    register(
        "conv", "ganlab_plugins.architectures.text:ConvTextArchitecture",
        summary="text: the 1-D residual convolutional G and D of Gulrajani et al. 2017's character-level WGAN-GP; "
                "G's output mapping is an option (softmax, sparsemax, entmax, gumbel)",
        options={
            "dim": Option(int, 128, "channels of the residual Conv1d blocks (the paper: 512)", min=1),
            "blocks": Option(int, 5, "residual blocks in each of G and D (the paper: 5)", min=0),
            **TEXT_OUTPUT_OPTIONS,
        },
        text=True,
    )
