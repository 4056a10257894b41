"""Registration of the example's components.

This module is the entry point ganlab imports for every command, even
``ganlab --help``-like listings, so it imports neither torch nor scikit-learn:
each factory imports its implementation when a run actually uses it.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _temperature_sigmoid(temperature: float) -> Any:
    from ganlab_temperature.heads import TemperatureSigmoidHead

    return TemperatureSigmoidHead(temperature)


def _hinge(margin: float) -> Any:
    from ganlab_temperature.objectives import Hinge

    return Hinge(margin)


def _logit_decay(fake: bool) -> Any:
    from ganlab_temperature.regularizers import LogitDecay

    return LogitDecay(fake)


def _margins(samples: int) -> Any:
    from ganlab_temperature.margins import MarginMetric

    return MarginMetric(samples)


def _moons(samples: int, noise: float, seed: int) -> Any:
    from ganlab_temperature.moons import Moons

    return Moons(samples, noise, seed)


@hookimpl
def register_heads(register: Any) -> None:
    register(
        "temperature-sigmoid", _temperature_sigmoid,
        summary="one score s, p_real = sigmoid(s / T); binary cross-entropy from the scaled logit",
        options={
            "temperature": Option(float, 1.0, "T > 0: divides D's score before the sigmoid",
                                  min=0.0, min_exclusive=True),
        },
    )


@hookimpl
def register_losses(register: Any) -> None:
    register(
        "margin-hinge", _hinge,
        summary="hinge GAN game on the head's margin fake_loss - real_loss (works with every head)",
        options={"margin": Option(float, 1.0, "hinge margin m: D pays relu(m - t) on real, relu(m + t) on fake",
                                  min=0.0, min_exclusive=True)},
    )


@hookimpl
def register_regularizers(register: Any) -> None:
    register(
        "logit-decay", _logit_decay,
        summary="squared critic scores of real (and generated) samples, added to D's loss",
        options={"weight": Option(float, 0.01, "multiplies the penalty", min=0.0),
                 "fake": Option(bool, True, "penalise the scores of generated samples too")},
    )


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "moons", _moons,
        summary="scikit-learn's two interleaving half-circles in 2-D, scaled to [-1, 1]; 2 classes",
        options={
            "samples": Option(int, 5000, "points in the training pool", min=2),
            "noise": Option(float, 0.05, "standard deviation of the Gaussian noise (before scaling)", min=0.0),
            "seed": Option(int, -1, "seed of the pool (-1: the run's seed)", min=-1),
        },
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "margins", _margins,
        summary="the head's margin on real and generated samples: margins.gap, and a picture of both histograms",
        options={"samples": Option(int, 512, "real and generated samples per evaluation", min=1)},
    )
