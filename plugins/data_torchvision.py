"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own dataset classes.

Files are looked for under the run's data root (``--data-root``), where
torchvision keeps them; ``--download`` lets torchvision fetch missing files.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ganlab import Option, hookimpl

#: name → (torchvision class, native side, channels, summary)
DATASETS: dict[str, tuple[str, int, int, str]] = {
    "mnist": ("MNIST", 28, 1, "MNIST handwritten digits via torchvision: 60k train / 10k test, 28x28 grey, 10 classes"),
    "fashion-mnist": ("FashionMNIST", 28, 1,
                      "Fashion-MNIST via torchvision: 60k train / 10k test, 28x28 grey, 10 clothing classes"),
    "cifar10": ("CIFAR10", 32, 3, "CIFAR-10 via torchvision: 50k train / 10k test, 32x32 colour, 10 classes"),
}


def _make(name: str, size: int, exclude_class: int) -> Any:
    from ganlab_plugins.data_torchvision_impl import TorchvisionImages

    return TorchvisionImages(name, DATASETS[name][0], size=size, exclude_class=exclude_class)


@hookimpl
def register_datasets(register: Any) -> None:
    for name, (_, native, _, summary) in DATASETS.items():
        register(
            name,
            partial(_make, name),
            summary=summary,
            options={
                "size": Option(int, native, f"image side in pixels (native: {native}; resized bilinearly otherwise)",
                               min=4, max=512),
                "exclude_class": Option(int, -1, "drop this class from the training split (-1: none); "
                                        "the test split keeps every class", min=-1, max=9),
            },
        )
