"""Built-in datasets: scikit-learn's digits, the 2-D mixtures, torchvision's image sets, a folder of images.

Registration only: the factories are ``"module:attr"`` strings into the torch
modules of this package, imported when a run loads the dataset.

* ``digits``: scikit-learn's bundled 8×8 handwritten digits, the offline default.
* ``ring8``, ``grid25``: the 2-D Gaussian mixtures of the mode-collapse literature
  (docs/heads.md, "Evaluation protocols"): ring8 has 8 modes (cos 2πi/8, sin 2πi/8)
  with σ = 0.01; grid25 has 25 modes {−4, −2, 0, 2, 4}² with σ = 0.05; samples are
  not scaled. The ``modes`` metric gets their means and σ from
  :func:`ganlab_plugins.datasets.mixtures.mixture_modes`.
* ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision's own dataset classes, with
  files looked for under the run's data root (``--data-root``); ``--download`` lets
  torchvision fetch missing files.
* ``image-folder``: any folder of images, labelled by class subfolders when it has them.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_PACKAGE = "ganlab_plugins.datasets"

#: mixture name → summary; the ``modes`` metric applies to exactly these datasets
MIXTURES: dict[str, str] = {
    "ring8": "2-D mixture of 8 Gaussians on the unit circle, sigma 0.01 (mode-collapse benchmark)",
    "grid25": "2-D mixture of 25 Gaussians on the grid {-4,-2,0,2,4}^2, sigma 0.05 (mode-collapse benchmark)",
}

#: name → (factory in torchvision_sets, native side, summary)
TORCHVISION: dict[str, tuple[str, int, str]] = {
    "mnist": ("mnist", 28, "MNIST handwritten digits via torchvision: 60k train / 10k test, 28x28 grey, 10 classes"),
    "fashion-mnist": ("fashion_mnist", 28,
                      "Fashion-MNIST via torchvision: 60k train / 10k test, 28x28 grey, 10 clothing classes"),
    "cifar10": ("cifar10", 32, "CIFAR-10 via torchvision: 50k train / 10k test, 32x32 colour, 10 classes"),
}

IN_MEMORY_VALUES = ("auto", "true", "false", "yes", "no", "on", "off", "1", "0")


def _in_memory_check(value: str) -> str | None:
    if value.strip().lower() in IN_MEMORY_VALUES:
        return None
    return "must be auto, true or false"


def _exclude_class(what: str) -> Option:
    return Option(int, -1, f"drop this {what} from the training split (-1: none); "
                  "the test split keeps every class", min=-1, max=9)


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "digits", f"{_PACKAGE}.digits:Digits",
        summary="scikit-learn's 1,797 8x8 handwritten digits, resized; 10 classes; offline (the default)",
        options={
            "size": Option(int, 32, "image side in pixels after bilinear resizing", min=4, max=256),
            "exclude_class": _exclude_class("digit"),
        },
    )
    for name, summary in MIXTURES.items():
        register(
            name, f"{_PACKAGE}.mixtures:{name}",
            summary=summary,
            options={
                "samples": Option(int, 50_000, "size of the training pool drawn from the mixture", min=1),
                "seed": Option(int, -1, "seed of the pool (-1: the run's seed)", min=-1),
            },
        )
    for name, (attr, native, summary) in TORCHVISION.items():
        register(
            name, f"{_PACKAGE}.torchvision_sets:{attr}",
            summary=summary,
            options={
                "size": Option(int, native, f"image side in pixels (native: {native}; resized bilinearly otherwise)",
                               min=4, max=512),
                "exclude_class": _exclude_class("class"),
            },
        )
    register(
        "image-folder", f"{_PACKAGE}.image_folder:ImageFolder",
        summary="A folder of images, resized and centre-cropped; class subfolders give labels",
        options={
            "path": Option(str, "", "the folder (required); images directly in it, or in one subfolder per class"),
            "size": Option(int, 64, "image side in pixels: shorter side resized to it, then centre-cropped",
                           min=4, max=1024),
            "channels": Option(int, 3, "3 for RGB, 1 for greyscale", choices=(1, 3)),
            "in_memory": Option(str, "auto", "hold the converted folder in memory (true), stream it from disk "
                                "(false), or decide by memory_limit_mb (auto)", check=_in_memory_check),
            "memory_limit_mb": Option(int, 2048, "auto: the largest converted tensor held in memory, in MiB",
                                      min=0),
            "num_workers": Option(int, 2, "DataLoader workers when streaming", min=0),
        },
    )
