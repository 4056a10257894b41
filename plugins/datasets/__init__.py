"""Built-in datasets: scikit-learn's digits, the 2-D mixtures, torchvision's image sets, a folder of images.

Registration only: the factories are ``"module:attr"`` strings into the torch
modules of this package, imported when a run loads the dataset.

* ``digits``: scikit-learn's bundled 8×8 handwritten digits, the offline default.
* ``ring8``, ``grid25``: the 2-D Gaussian mixtures of the mode-collapse literature
  (docs/heads.md, "Evaluation protocols"): ring8 has 8 modes (cos 2πi/8, sin 2πi/8)
  with σ = 0.01; grid25 has 25 modes {−4, −2, 0, 2, 4}² with σ = 0.05; samples are
  not scaled. The ``modes`` metric gets their means and σ from
  :func:`ganlab_plugins.datasets.mixtures.mixture_modes`.
* ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, ``stl10``: torchvision's own
  dataset classes, with files looked for under the run's data root (``--data-root``);
  ``--download`` lets torchvision fetch missing files. ``stl10`` trains on the 100k
  unlabelled images at 48×48 by default (the SNGAN protocol) and streams them from disk.
* ``image-folder``: any folder of images, labelled by class subfolders when it has them;
  CelebA, LSUN and FFHQ at the literature's sizes through ``crop``, ``size`` and ``labels``
  (docs/datasets.md).

Every image set but digits is held in memory when its converted tensors fit
``memory_limit_mb`` and streamed from disk (or from its bytes) otherwise.
* ``oracle``, ``fortunes``: token sequences for text GANs (``metadata text=True``): SeqGAN's
  synthetic oracle LSTM, and the character-level lines of Debian's fortunes quotations.
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

#: name → (factory in torchvision_sets, native side, classes, summary)
TORCHVISION: dict[str, tuple[str, int, int, str]] = {
    "mnist": ("mnist", 28, 10, "MNIST handwritten digits via torchvision: 60k train / 10k test, 28x28 grey, 10 classes"),
    "fashion-mnist": ("fashion_mnist", 28, 10,
                      "Fashion-MNIST via torchvision: 60k train / 10k test, 28x28 grey, 10 clothing classes"),
    "cifar10": ("cifar10", 32, 10, "CIFAR-10 via torchvision: 50k train / 10k test, 32x32 colour, 10 classes"),
    "cifar100": ("cifar100", 32, 100,
                 "CIFAR-100 via torchvision: 50k train / 10k test, 32x32 colour, 100 classes (coarse: 20 superclasses)"),
}

IN_MEMORY_VALUES = ("auto", "true", "false", "yes", "no", "on", "off", "1", "0")


def _in_memory_check(value: str) -> str | None:
    if value.strip().lower() in IN_MEMORY_VALUES:
        return None
    return "must be auto, true or false"


def _exclude_class(what: str, classes: int = 10) -> Option:
    return Option(int, -1, f"drop this {what} from the training split (-1: none); "
                  "the test split keeps every class", min=-1, max=classes - 1)


def _streaming(what: str = "converted dataset") -> dict[str, Option]:
    """The options of a dataset that is held in memory when it fits and streamed otherwise."""
    return {
        "in_memory": Option(str, "auto", f"hold the {what} in memory (true), stream it from disk "
                            "(false), or decide by memory_limit_mb (auto)", check=_in_memory_check),
        "memory_limit_mb": Option(int, 2048, "auto: the largest converted tensor held in memory, in MiB", min=0),
        "num_workers": Option(int, 2, "DataLoader workers when streaming", min=0),
    }


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
    extra = {"cifar100": {"coarse": Option(bool, False, "label by the 20 superclasses (coarse_labels) instead of "
                                           "the 100 classes")}}
    for name, (attr, native, classes, summary) in TORCHVISION.items():
        register(
            name, f"{_PACKAGE}.torchvision_sets:{attr}",
            summary=summary,
            options={
                "size": Option(int, native, f"image side in pixels (native: {native}; resized bilinearly otherwise)",
                               min=4, max=512),
                "exclude_class": _exclude_class("class", classes),
                **_streaming(),
                **extra.get(name, {}),
            },
        )
    register(
        "stl10", f"{_PACKAGE}.stl10:STL10",
        summary="STL-10 via torchvision: 100k unlabelled + 5k train / 8k test, 96x96 colour (default 48x48, the "
                "SNGAN protocol), streamed from disk when large",
        options={
            "split": Option(str, "unlabeled", "training images: unlabeled (100k, no labels), train (5k, 10 classes) "
                            "or train+unlabeled (105k, no labels); the 8k test split is the reference",
                            choices=("unlabeled", "train", "train+unlabeled")),
            "size": Option(int, 48, "image side in pixels (native: 96; resized bilinearly otherwise; SNGAN: 48)",
                           min=4, max=512),
            **_streaming(),
        },
    )
    register(
        "image-folder", f"{_PACKAGE}.image_folder:ImageFolder",
        summary="A folder of images, resized and centre-cropped; class subfolders give labels",
        options={
            "path": Option(str, "", "the folder (required); images directly in it, or in one subfolder per class"),
            "size": Option(int, 64, "image side in pixels: shorter side resized to it, then centre-cropped",
                           min=4, max=1024),
            "crop": Option(int, 0, "first cut each image's centre crop x crop square (0: none; CelebA 178x218: "
                           "108 or 140, then size 64)", min=0, max=16384),
            "labels": Option(str, "auto", "auto: class subfolders give labels; none: every image under the folder, "
                             "at any depth, unlabelled (FFHQ, LSUN exports)", choices=("auto", "none")),
            "resample": Option(str, "bicubic", "PIL's resizing filter (bilinear: torchvision's Resize, as Mimicry's "
                               "CelebA and LSUN loaders)", choices=("bicubic", "bilinear", "lanczos", "box")),
            "channels": Option(int, 3, "3 for RGB, 1 for greyscale", choices=(1, 3)),
            **_streaming("converted folder"),
        },
    )
    register(
        "oracle", f"{_PACKAGE}.text:Oracle",
        summary="text: SeqGAN's synthetic benchmark, sequences sampled from a seeded random LSTM (NLL_oracle is exact)",
        options={
            "vocab_size": Option(int, 5000, "vocabulary size V (SeqGAN: 5000)", min=2, max=1_000_000),
            "seq_len": Option(int, 20, "tokens per sequence (SeqGAN: 20)", min=1, max=1000),
            "samples": Option(int, 10_000, "training sequences (SeqGAN: 10 000)", min=1),
            "test_samples": Option(int, 2000, "held-out sequences, drawn after the training ones (references of "
                                   "BLEU and n-gram JSD; 0: none)", min=0),
            "hidden": Option(int, 32, "the oracle LSTM's hidden size (SeqGAN: 32)", min=1),
            "embedding": Option(int, 32, "the oracle's token embedding size (SeqGAN: 32)", min=1),
            "oracle_seed": Option(int, 0, "seed of the oracle's parameters and of every sequence it samples", min=0),
        },
        text=True,
    )
    register(
        "fortunes", f"{_PACKAGE}.text:Fortunes",
        summary="text: the lines of Debian's fortunes quotations, character level, padded to seq_len (offline; "
                "apt-get install fortunes-min)",
        options={
            "path": Option(str, "/usr/share/games/fortunes", "a fortune file or a directory of them (quotations "
                           "separated by lines holding only %)"),
            "seq_len": Option(int, 32, "characters per line: longer lines cut, shorter ones padded (Gulrajani et "
                              "al. 2017: 32)", min=1, max=1024),
            "min_count": Option(int, 5, "characters seen fewer times in the training split become <unk>", min=1),
            "test_fraction": Option(float, 0.1, "share of lines held out (references of BLEU and n-gram JSD)",
                                    min=0.0, max=0.9),
            "split_seed": Option(int, 0, "seed of the train/test shuffle of lines", min=0),
        },
        text=True,
    )
