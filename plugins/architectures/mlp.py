"""Fully connected generator and discriminator, as in the article ganlab grew from.

G: latent → 256 → 512 → 1024 → prod(data_shape), ReLU between layers, Tanh out.
D: prod(data_shape) → 1024 → 512 → 256 → K, LeakyReLU(0.2) and Dropout(0.3)
after each hidden layer, and no final activation: the head turns D's raw
scores into probabilities, so the losses can work from logits.

One deliberate departure: for vector data (``data_shape == (D,)``, the 2-D
mixtures) G's output is linear by default. Those samples are not scaled to
[-1, 1] (grid25's modes sit at ±4), so a Tanh would make the outer modes
unreachable. ``output="tanh"`` restores the article's layer everywhere.

Options express other fully connected GANs, e.g. PacGAN's 2-D networks (Lin et al.
2018: G 4 x 400 ReLU, D 3 x 200 ReLU, no Dropout): ``g_widths=(400, 400, 400, 400)``,
``d_widths=(200, 200, 200)``, ``d_activation="relu"``, ``dropout=0`` (PacGAN's G also has
BatchNorm after each hidden layer: ``g_batchnorm=True``). With no options
the modules, and the order in which they are initialised, are the article's.

``conditional=True`` makes a class-conditional pair (``plugins/architectures/conditional.py``):
G takes a class embedding concatenated to z, D adds a projection of its last hidden features
(``projection=False``: D stays unconditional, as in AC-GAN).

``spectral_norm=True`` normalises every linear layer of D spectrally (``plugins/architectures/spectral.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab_plugins.architectures.common import check_build_args, check_classes
from ganlab_plugins.architectures.conditional import CLASS_DIM, Projection, check_labels, with_class
from ganlab_plugins.architectures.spectral import spectral_normalise

ARTICLE_G_WIDTHS = (256, 512, 1024)
ARTICLE_D_WIDTHS = (1024, 512, 256)
#: D's hidden activation by option value; LeakyReLU(0.2) is the article's
D_ACTIVATIONS = ("leaky_relu", "relu")


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], widths: tuple[int, ...], tanh: bool,
                 batchnorm: bool = False, num_classes: int = 0, class_dim: int = CLASS_DIM) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        # conditional (num_classes > 0): a class embedding joins the noise at the input
        self.classes = nn.Embedding(num_classes, class_dim) if num_classes else None
        layers: list[nn.Module] = []
        fan_in = latent_dim + (class_dim if num_classes else 0)
        for width in widths:
            layers.append(nn.Linear(fan_in, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            fan_in = width
        layers.append(nn.Linear(fan_in, math.prod(self.data_shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes is not None:
            z = with_class(z, self.classes, check_labels(labels, z.shape[0], "generator"))
        return self.main(z).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], widths: tuple[int, ...], dropout: float, num_logits: int,
                 activation: str = "leaky_relu", num_classes: int = 0, spectral: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = math.prod(data_shape)
        for width in widths:
            act = nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(0.2, inplace=True)
            # Dropout(0) stays a module: a dropout=0 run's state_dict keys are those of earlier runs
            layers += [nn.Linear(fan_in, width), act, nn.Dropout(dropout)]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_logits))
        self.main = nn.Sequential(*layers)
        # a projection discriminator (num_classes > 0) projects the last hidden features on the class
        self.projection = Projection(num_classes, fan_in, num_logits, spectral) if num_classes else None
        #: the width of ``features``: what an objective's own head on D reads (InfoGAN's Q)
        self.feature_dim = fan_in
        if spectral:
            spectral_normalise(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output (B, feature_dim)."""
        # reshape, not view: a channels_last or sliced batch need not be contiguous
        x = x.reshape(x.shape[0], -1)
        for layer in list(self.main)[:-1]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.main(x.reshape(x.shape[0], -1))
        labels = check_labels(labels, x.shape[0], "discriminator")
        h = self.features(x)
        return self.main[-1](h) + self.projection(h, labels)


class MLPArchitecture:
    """The ``mlp`` architecture: serves any data shape, flattened."""

    convolutional = False
    # no batch statistics in D (Dropout is per element): real and fake can share one D call
    samplewise_discriminator = True
    # a population (`--seeds`) may stack its replicas: Dropout is replayed per replica
    vectorisable = True

    def __init__(self, hidden_scale: float = 1.0, dropout: float = 0.3, output: str = "auto",
                 g_widths: tuple[int, ...] = ARTICLE_G_WIDTHS, d_widths: tuple[int, ...] = ARTICLE_D_WIDTHS,
                 d_activation: str = "leaky_relu", g_batchnorm: bool = False, conditional: bool = False,
                 projection: bool = True, class_dim: int = CLASS_DIM, spectral_norm: bool = False) -> None:
        if d_activation not in D_ACTIVATIONS:
            raise ValueError(f"d_activation must be one of {D_ACTIVATIONS}, not {d_activation!r}")
        self.hidden_scale = hidden_scale
        self.dropout = dropout
        self.output = output
        self.g_widths = tuple(int(w) for w in g_widths)
        self.d_widths = tuple(int(w) for w in d_widths)
        self.d_activation = d_activation
        self.g_batchnorm = g_batchnorm
        self.spectral_norm = bool(spectral_norm)
        # read by the engine (ganlab.train.conditioning): G(z, y), and D(x, y) when it projects
        self.conditional = bool(conditional)
        self.conditional_discriminator = self.conditional and bool(projection)
        self.class_dim = int(class_dim)

    def _widths(self, base: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(w * self.hidden_scale)) for w in base)

    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int,
              num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        check_build_args("mlp", data_shape, latent_dim, num_logits)
        check_classes("mlp", self.conditional, num_classes)
        tanh = self.output == "tanh" or (self.output == "auto" and len(data_shape) > 1)
        g_classes = num_classes if self.conditional else 0
        d_classes = num_classes if self.conditional_discriminator else 0
        generator = MLPGenerator(latent_dim, data_shape, self._widths(self.g_widths), tanh, self.g_batchnorm,
                                 g_classes, self.class_dim)
        discriminator = MLPDiscriminator(data_shape, self._widths(self.d_widths), self.dropout, num_logits,
                                         self.d_activation, d_classes, self.spectral_norm)
        return generator, discriminator

