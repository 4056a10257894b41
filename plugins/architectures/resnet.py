"""SNGAN's ResNet generator and discriminator (Miyato, Kataoka, Koyama and Yoshida 2018, "Spectral
Normalization for Generative Adversarial Networks", appendix B: the ResNets for CIFAR-10 and STL-10).

Layouts by image size, widths as (G: the linear layer's, then each block's output; D: each
block's output), blocks from :mod:`ganlab_plugins.architectures.resblocks`:

* 32×32 (CIFAR-10): G z → linear 4×4×256 → 3 up-blocks of 256 → BN, ReLU, conv 3×3 → tanh;
  D first block 128 (down), a down block 128, 2 blocks 128 → ReLU → global sum pooling → linear.
  The paper's CIFAR-10 ResNet; the Chainer code's ``resnet_32.py``/``snresnet_32.py``; Mimicry's
  ``sngan_32.py``; StudioGAN's ``resnet.py`` at 32.
* 48×48 (STL-10): G 6×6×512 → up-blocks 256, 128, 64; D 64, 128, 256, 512 (each halving), 1024.
  The paper's STL-10 ResNet; Mimicry's ``sngan_48.py``.
* 64×64: G 4×4×1024 → up-blocks 512, 256, 128, 64; D 64, 128, 256, 512, 1024, all down. The
  Chainer code's ``resnet_64.py``/``snresnet_64.py`` and Mimicry's ``sngan_64.py`` (StudioGAN's
  64×64 D keeps its last block at 8×8 and widens each block's hidden layer: not this one).

Weights are Glorot-uniform (gain √2 on the residual 3×3 convolutions, 1 elsewhere), biases 0,
as in the Chainer code. D's last linear layer gives the head's number of scores. Spectral
normalisation (``plugins/architectures/spectral.py``) covers every convolution and linear layer
of D and the projection's embedding; G has none, and BatchNorm only in G (as the paper).

Choices where the sources differ: nearest-neighbour upsampling (the paper's Chainer code;
Mimicry upsamples bilinearly: ``upsampling="bilinear"``); a bias on D's last layer (Mimicry
and StudioGAN; the Chainer 32×32 D has none); D's ReLUs leave the block input unchanged for
its shortcut (the Chainer code; Mimicry's in-place ReLU feeds the shortcut ReLU(x) instead).

``conditional=True``: G's block BatchNorms become conditional BatchNorm (a scale and shift per
class, starting at 1 and 0), as in SNGAN-projection and BigGAN (no class embedding joins z);
D adds the projection of its pooled features on the class (Miyato and Koyama 2018;
``projection=False``: D stays unconditional, as AC-GAN needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ComponentError
from ganlab_plugins.architectures.common import check_image_build
from ganlab_plugins.architectures.conditional import Projection, check_labels
from ganlab_plugins.architectures.resblocks import DownBlock, FirstDownBlock, UpBlock, glorot
from ganlab_plugins.architectures.spectral import spectral_normalise


@dataclass(frozen=True)
class Layout:
    """One published network pair, its widths written as right shifts of ``ngf``/``ndf``."""

    bottom: int  # G's first feature map is bottom x bottom
    ngf: int  # the published G width: its linear layer's channels
    ndf: int  # the published D width: its last block's channels
    g_shifts: tuple[int, ...]  # each up-block's output width is ngf >> shift
    d_shifts: tuple[int, ...]  # each D block's output width is ndf >> shift, the first block first
    d_down: tuple[bool, ...]  # whether each D block after the first halves the resolution


LAYOUTS: dict[int, Layout] = {
    32: Layout(bottom=4, ngf=256, ndf=128, g_shifts=(0, 0, 0), d_shifts=(0, 0, 0, 0), d_down=(True, False, False)),
    48: Layout(bottom=6, ngf=512, ndf=1024, g_shifts=(1, 2, 3), d_shifts=(4, 3, 2, 1, 0),
               d_down=(True, True, True, False)),
    64: Layout(bottom=4, ngf=1024, ndf=1024, g_shifts=(1, 2, 3, 4), d_shifts=(4, 3, 2, 1, 0),
               d_down=(True, True, True, True)),
}
SUPPORTED_SIZES = tuple(sorted(LAYOUTS))


def layout(height: int, width: int) -> Layout:
    """The published layout for (height, width) images, or a one-line refusal."""
    sizes = ", ".join(f"{s}x{s}" for s in SUPPORTED_SIZES)
    if height != width or height not in LAYOUTS:
        raise ComponentError(f"architecture 'sngan' does not support {height}x{width} images; supported sizes: "
                             f"{sizes} (set the dataset's size option to one of them)")
    return LAYOUTS[height]


def _shifted(width: int, shift: int) -> int:
    return max(1, width >> shift)


class ResNetGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, plan: Layout, ngf: int, num_classes: int = 0,
                 upsampling: str = "nearest") -> None:
        super().__init__()
        self.bottom, self.width = plan.bottom, ngf
        self.project = glorot(nn.Linear(latent_dim, ngf * plan.bottom * plan.bottom))
        widths = [ngf, *(_shifted(ngf, s) for s in plan.g_shifts)]
        self.blocks = nn.ModuleList(UpBlock(a, b, num_classes, upsampling) for a, b in zip(widths, widths[1:]))
        self.norm = nn.BatchNorm2d(widths[-1])
        self.to_image = glorot(nn.Conv2d(widths[-1], channels, 3, 1, 1))
        self.conditional = num_classes > 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            labels = check_labels(labels, z.shape[0], "generator")
        h = self.project(z).view(z.shape[0], self.width, self.bottom, self.bottom)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_image(F.relu(self.norm(h))))


class ResNetDiscriminator(nn.Module):
    def __init__(self, channels: int, plan: Layout, ndf: int, num_logits: int, num_classes: int = 0,
                 spectral: bool = True) -> None:
        super().__init__()
        widths = [_shifted(ndf, s) for s in plan.d_shifts]
        blocks: list[nn.Module] = [FirstDownBlock(channels, widths[0])]
        blocks += [DownBlock(a, b, down) for a, b, down in zip(widths, widths[1:], plan.d_down)]
        self.blocks = nn.Sequential(*blocks)
        self.scores = glorot(nn.Linear(widths[-1], num_logits))
        self.projection = Projection(num_classes, widths[-1], num_logits, spectral) if num_classes else None
        #: the width of ``features`` (the pooled last feature map): what an objective's own head on D reads
        self.feature_dim = widths[-1]
        if spectral:
            spectral_normalise(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU of the last block's map, summed over positions (B, feature_dim)."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.projection is None:
            return self.scores(h)
        return self.scores(h) + self.projection(h, check_labels(labels, x.shape[0], "discriminator"))


class SNGANArchitecture:
    """The ``sngan`` architecture: square images of 32, 48 or 64 pixels, any number of channels."""

    convolutional = True
    # a population (`--seeds`) may stack its replicas: G's BatchNorm keeps per-replica statistics, and
    # the spectral norm's power iteration updates each replica's own u and v (plugins/architectures/spectral.py)
    vectorisable = True
    # not samplewise_discriminator, though D has no batch statistics: scoring the real and the fake
    # batch in two calls runs two power iterations per D step, as the paper's code does

    def __init__(self, ngf: int = 0, ndf: int = 0, spectral_norm: bool = True, upsampling: str = "nearest",
                 conditional: bool = False, projection: bool = True) -> None:
        self.ngf, self.ndf = int(ngf), int(ndf)
        self.spectral_norm = bool(spectral_norm)
        self.upsampling = upsampling
        # read by the engine (ganlab.train.conditioning): G(z, y), and D(x, y) when it projects
        self.conditional = bool(conditional)
        self.conditional_discriminator = self.conditional and bool(projection)

    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int,
              num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        channels, height, width = check_image_build("sngan", data_shape, latent_dim, num_logits, self.conditional,
                                                    num_classes)
        plan = layout(height, width)
        generator = ResNetGenerator(latent_dim, channels, plan, self.ngf or plan.ngf,
                                    num_classes if self.conditional else 0, self.upsampling)
        discriminator = ResNetDiscriminator(channels, plan, self.ndf or plan.ndf, num_logits,
                                            num_classes if self.conditional_discriminator else 0, self.spectral_norm)
        return generator, discriminator
