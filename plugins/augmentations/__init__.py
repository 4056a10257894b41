"""Built-in augmentations of D's inputs: DiffAugment (Zhao et al. 2020).

Registration only; the torch code is :mod:`ganlab_plugins.augmentations.diffaugment`.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_POLICIES = ("color", "translation", "cutout")


def _policy(value: str) -> str | None:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in _POLICIES]
    if not parts or unknown:
        return f"must list some of {', '.join(_POLICIES)}, comma-separated"
    return None


@hookimpl
def register_augmentations(register: Any) -> None:
    register(
        "diffaugment", "ganlab_plugins.augmentations.diffaugment:DiffAugment",
        summary="differentiable colour, translation and cutout on images, real and fake alike (Zhao et al. 2020)",
        options={
            "policy": Option(str, "color,translation,cutout", "which transforms, in order", check=_policy),
            "translation": Option(float, 0.125, "largest shift, as a fraction of the image side", min=0.0, max=1.0),
            "cutout": Option(float, 0.5, "side of the zeroed square, as a fraction of the image side",
                             min=0.0, max=1.0),
        },
    )
