"""Built-in architectures: the article's fully connected GAN (``mlp``), DCGAN (``dcgan``), SNGAN's
ResNets (``sngan``: 32, 48 and 64 px), and the text GANs' sequence networks (``lstm``, ``conv``;
``metadata text=True``: they serve text datasets only).

Every image architecture's D takes ``spectral_norm`` (Miyato et al. 2018;
``plugins/architectures/spectral.py``): on by default in ``sngan``, off in ``mlp`` and ``dcgan``.

Registration only: the factories are ``"module:attr"`` strings into
:mod:`ganlab_plugins.architectures.mlp`, :mod:`ganlab_plugins.architectures.dcgan`,
:mod:`ganlab_plugins.architectures.resnet` and :mod:`ganlab_plugins.architectures.text`,
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


#: SNGAN's conditional options: G has no class embedding (its BatchNorms are conditional), so no class_dim
SNGAN_CONDITIONAL_OPTIONS = {key: option for key, option in CONDITIONAL_OPTIONS.items() if key != "class_dim"}


def spectral_norm_option(default: bool, where: str) -> Option:
    """``spectral_norm``: the option of every image architecture's D."""
    return Option(bool, default, f"spectral normalisation of every layer of D (Miyato et al. 2018: one power "
                  f"iteration per training forward){where}")


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
            "spectral_norm": spectral_norm_option(False, ", the projection's embedding included"),
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
            "spectral_norm": spectral_norm_option(False, ", in place of D's BatchNorm (as SNGAN's standard CNN "
                                                  "and StudioGAN)"),
            **CONDITIONAL_OPTIONS,
        },
    )
    register(
        "sngan", "ganlab_plugins.architectures.resnet:SNGANArchitecture",
        summary="SNGAN's ResNets (Miyato et al. 2018): up-sampling residual G with BatchNorm, spectrally "
                "normalised residual D with global sum pooling; square images of 32, 48 or 64 px "
                "(conditional=true: conditional BatchNorm in G and a projection D)",
        options={
            "ngf": Option(int, 0, "G's width: channels of its first feature map, each up-block then as published "
                          "(0: the published 256 at 32 px, 512 at 48, 1024 at 64)", min=0),
            "ndf": Option(int, 0, "D's width: channels of its last block, the others as published "
                          "(0: the published 128 at 32 px, 1024 at 48 and 64)", min=0),
            "spectral_norm": spectral_norm_option(True, ", the projection's embedding included (false: the same "
                                                  "ResNet D unnormalised, e.g. for a gradient penalty)"),
            "upsampling": Option(str, "nearest", "G's 2x upsampling: nearest (the paper's code) or bilinear "
                                 "(Mimicry's)", choices=("nearest", "bilinear")),
            **SNGAN_CONDITIONAL_OPTIONS,
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
