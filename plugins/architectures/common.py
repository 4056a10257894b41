"""Checks every architecture makes before building (no torch needed)."""

from __future__ import annotations

from ganlab.errors import ComponentError


def check_build_args(arch: str, data_shape: tuple[int, ...], latent_dim: int, num_logits: int) -> None:
    """Refuse arguments no architecture can serve, in one line each."""
    if not data_shape or any(d < 1 for d in data_shape):
        raise ComponentError(f"architecture '{arch}' cannot build for data shape {data_shape}")
    if latent_dim < 1:
        raise ComponentError(f"architecture '{arch}' needs latent_dim >= 1, not {latent_dim}")
    if num_logits < 1:
        raise ComponentError(f"architecture '{arch}' needs num_logits >= 1, not {num_logits}")


def check_classes(arch: str, conditional: bool, num_classes: int) -> None:
    """A conditional network needs the number of classes (the engine passes it to build)."""
    if conditional and num_classes < 2:
        raise ComponentError(f"architecture '{arch}' is conditional but was built with num_classes={num_classes}; "
                             "it needs a labelled dataset with at least 2 classes")


def check_image_build(arch: str, data_shape: tuple[int, ...], latent_dim: int, num_logits: int,
                      conditional: bool, num_classes: int) -> tuple[int, int, int]:
    """An image architecture's checks before it builds: (channels, height, width), or a one-line refusal."""
    check_build_args(arch, data_shape, latent_dim, num_logits)
    check_classes(arch, conditional, num_classes)
    if len(data_shape) != 3:
        raise ComponentError(
            f"architecture '{arch}' needs images shaped (channels, height, width), not data of shape "
            f"{data_shape}; use --arch mlp for vector data such as the 2-D mixtures"
        )
    channels, height, width = data_shape
    return channels, height, width
