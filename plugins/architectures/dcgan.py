"""DCGAN networks (Radford, Metz and Chintala 2015, arXiv:1511.06434).

G projects the noise to a ``base``×``base`` map ("project and reshape": a
linear layer, exactly a transposed convolution applied to a 1×1 input), then
doubles the resolution with stride-2 transposed convolutions, each
followed by BatchNorm and ReLU, and ends in Tanh. D mirrors it with stride-2
convolutions and LeakyReLU(0.2), BatchNorm on every layer but the first, no
pooling, and a last ``base``×``base`` convolution that emits the head's
``num_logits`` raw scores. Weights are drawn from N(0, 0.02), BatchNorm scales
from N(1, 0.02), biases are 0, as in the paper.

Sizes: ``base`` is 4 (8, 16, 32, 64, 128) or 7 (14, 28, 56, 112), so MNIST's
28×28 needs no padding. Channels follow the paper's 64×64 network: the
coarsest layers are the widest, ``ngf``·2^k capped at 8·``ngf``.

The projection is written as ``nn.Linear`` + reshape rather than a transposed
convolution on a 1×1 map: the same function, but a 1×1 map has ambiguous
strides under channels_last, and torch.compile's inductor then miscompiles
that convolution's backward (stride assertion in convolution_backward, seen
on an H100/H200 with torch 2.x).

Layers followed by BatchNorm carry no bias (BatchNorm's shift replaces
it); the first and last layers of D and the last of G keep theirs.

``conditional=True`` (``plugins/architectures/conditional.py``): G takes a class embedding
concatenated to z and every BatchNorm of G becomes conditional BatchNorm (a scale and shift per
class); D adds the projection of its last feature map, summed over positions as in Miyato and
Koyama's discriminators, on the class (``projection=False``: D stays unconditional, as in AC-GAN).

``spectral_norm=True`` (``plugins/architectures/spectral.py``): every layer of D is spectrally
normalised, and D's BatchNorm layers are left out (their convolutions keep a bias instead), as in
SNGAN's "standard CNN" discriminator and StudioGAN's DCGAN with spectral normalisation: a
BatchNorm's scale would undo the normalisation's bound on D's Lipschitz constant.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ComponentError
from ganlab_plugins.architectures.common import check_image_build
from ganlab_plugins.architectures.conditional import (
    CLASS_DIM,
    ConditionalBatchNorm2d,
    Projection,
    check_labels,
    with_class,
)
from ganlab_plugins.architectures.spectral import spectral_normalise

BASES = (4, 7)
MAX_SIZE = 128
MAX_WIDTH_MULT = 8
SUPPORTED_SIZES: tuple[int, ...] = tuple(
    sorted(base * 2**k for base in BASES for k in range(1, 8) if base * 2**k <= MAX_SIZE)
)


def plan(size: int) -> tuple[int, int]:
    """(base, number of doublings) for a supported image size."""
    for base in BASES:
        ups = 0
        side = size
        while side > base and side % 2 == 0:
            side //= 2
            ups += 1
        if side == base and ups >= 1 and size <= MAX_SIZE:
            return base, ups
    raise ComponentError(
        f"architecture 'dcgan' does not support {size}x{size} images; supported sizes: "
        f"{', '.join(map(str, SUPPORTED_SIZES))} (set the dataset's size option to one of them)"
    )


def _width(unit: int, level: int) -> int:
    return unit * min(2**level, MAX_WIDTH_MULT)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, size: int, ngf: int, num_classes: int = 0,
                 class_dim: int = CLASS_DIM) -> None:
        super().__init__()
        base, ups = plan(size)
        width = _width(ngf, ups - 1)
        # conditional (num_classes > 0): the class embedding joins z, and BatchNorm scales per class
        self.classes = nn.Embedding(num_classes, class_dim) if num_classes else None

        def norm(channels_: int) -> nn.Module:
            return ConditionalBatchNorm2d(channels_, num_classes) if num_classes else nn.BatchNorm2d(channels_)

        self.project = nn.Linear(latent_dim + (class_dim if num_classes else 0), width * base * base, bias=False)
        self.projected_shape = (width, base, base)
        layers: list[nn.Module] = [norm(width), nn.ReLU(inplace=True)]
        for level in range(ups - 2, -1, -1):
            narrower = _width(ngf, level)
            layers += [
                nn.ConvTranspose2d(width, narrower, 4, 2, 1, bias=False),
                norm(narrower),
                nn.ReLU(inplace=True),
            ]
            width = narrower
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes is None:
            return self.main(self.project(z).view(z.shape[0], *self.projected_shape))
        labels = check_labels(labels, z.shape[0], "generator")
        x = self.project(with_class(z, self.classes, labels)).view(z.shape[0], *self.projected_shape)
        for layer in self.main:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, size: int, ndf: int, num_logits: int, num_classes: int = 0,
                 spectral: bool = False) -> None:
        super().__init__()
        base, ups = plan(size)
        width = _width(ndf, 0)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for level in range(1, ups):
            wider = _width(ndf, level)
            if spectral:  # no BatchNorm under spectral normalisation (module docstring)
                layers += [nn.Conv2d(width, wider, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            else:
                layers += [
                    nn.Conv2d(width, wider, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(wider),
                    nn.LeakyReLU(0.2, inplace=True),
                ]
            width = wider
        layers.append(nn.Conv2d(width, num_logits, base, 1, 0))
        self.main = nn.Sequential(*layers)
        self.projection = Projection(num_classes, width, num_logits, spectral) if num_classes else None
        #: the width of ``features`` (the last feature map, flattened): what an objective's own head on
        #: D reads (InfoGAN's Q)
        self.feature_dim = width * base * base

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self.main)[:-1]:
            x = layer(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden feature map, flattened (B, feature_dim)."""
        return self.feature_map(x).flatten(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.projection is None:
            return self.main(x).flatten(1)
        labels = check_labels(labels, x.shape[0], "discriminator")
        h = self.feature_map(x)
        return self.main[-1](h).flatten(1) + self.projection(h.sum(dim=(2, 3)), labels)


def init_weights(module: nn.Module) -> None:
    """Radford et al.'s initialisation, applied with ``Module.apply``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:  # conditional BatchNorm: its own init
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANArchitecture:
    """The ``dcgan`` architecture: square images (C, S, S) with S in SUPPORTED_SIZES."""

    convolutional = True
    # a population (`--seeds`) may stack its replicas: each replica's BatchNorm keeps its own
    # running statistics (stacked buffers) and normalises over its own batch, as a single run does
    vectorisable = True

    def __init__(self, ngf: int = 64, ndf: int = 64, conditional: bool = False, projection: bool = True,
                 class_dim: int = CLASS_DIM, spectral_norm: bool = False) -> None:
        self.ngf = ngf
        self.ndf = ndf
        self.spectral_norm = bool(spectral_norm)
        # read by the engine (ganlab.train.conditioning): G(z, y), and D(x, y) when it projects
        self.conditional = bool(conditional)
        self.conditional_discriminator = self.conditional and bool(projection)
        self.class_dim = int(class_dim)

    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int,
              num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        channels, height, width = check_image_build("dcgan", data_shape, latent_dim, num_logits, self.conditional,
                                                    num_classes)
        if height != width:
            raise ComponentError(
                f"architecture 'dcgan' needs square images, not {height}x{width}; "
                f"supported sizes: {', '.join(map(str, SUPPORTED_SIZES))}"
            )
        plan(height)  # refuses an unsupported size before any layer is made
        generator = DCGANGenerator(latent_dim, channels, height, self.ngf,
                                   num_classes if self.conditional else 0, self.class_dim)
        discriminator = DCGANDiscriminator(channels, height, self.ndf, num_logits,
                                           num_classes if self.conditional_discriminator else 0, self.spectral_norm)
        generator.apply(init_weights)
        discriminator.apply(init_weights)
        if self.spectral_norm:  # after the initialisation: the power iteration starts from those weights
            spectral_normalise(discriminator)
        return generator, discriminator
