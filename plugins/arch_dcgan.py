"""DCGAN (Radford, Metz and Chintala 2015, arXiv:1511.06434): registration only.

The networks live in :mod:`ganlab_plugins.arch_dcgan_impl`, imported when a
run builds them, so that listing components never imports torch.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _make(ngf: int, ndf: int) -> Any:
    from ganlab_plugins.arch_dcgan_impl import DCGANArchitecture

    return DCGANArchitecture(ngf=ngf, ndf=ndf)


@hookimpl
def register_architectures(register: Any) -> None:
    register(
        "dcgan",
        _make,
        summary="DCGAN (Radford et al. 2015): transposed-conv G, strided-conv D, BatchNorm; square images 8 to 128 px",
        options={
            "ngf": Option(int, 64, "generator width: channels of G's last hidden layer", min=1),
            "ndf": Option(int, 64, "discriminator width: channels of D's first layer", min=1),
        },
    )
