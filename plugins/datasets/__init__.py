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
