"""Class-conditional runs: which networks see labels, and which labels the fakes get.

An architecture declares ``conditional = True`` to have its generator called as ``G(z, y)``,
and ``conditional_discriminator`` (default: the same as ``conditional``) to have its D called
as ``D(x, y)``; ``y`` is a (B,) tensor of class indices in ``[0, num_classes)``. Such an
architecture's ``build`` receives ``num_classes``, the dataset's number of classes. Unconditional
architectures are called as before, ``G(z)`` and ``D(x)``, and their ``build`` never sees it.

The engine draws each fake batch's labels (``fake_labels``): ``uniform`` over the classes, or
``real``, the labels of the real batch the same D update trains on, so the fake batch has the
real batch's class histogram.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ganlab.errors import ComponentError, GanlabError

FAKE_LABELS = {
    "uniform": "each fake's class drawn uniformly from the dataset's classes",
    "real": "the fakes take the real batch's labels (the same class histogram)",
}


@dataclass(frozen=True)
class Conditioning:
    """How a run conditions its networks on class labels."""

    num_classes: int
    generator: bool
    discriminator: bool
    fake_labels: str = "uniform"

    def draw(self, n: int, real_labels: torch.Tensor | None, device: Any,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The labels of ``n`` fakes (from torch's global stream unless ``generator`` is given)."""
        if self.fake_labels == "real" and real_labels is not None and len(real_labels) == n:
            return real_labels.to(device=device, dtype=torch.long)
        return torch.randint(self.num_classes, (n,), device=device, generator=generator)

    def balanced(self, n: int, device: Any, offset: int = 0) -> torch.Tensor:
        """Labels 0, 1, ..., K-1, 0, 1, ... for ``n`` samples (starting at ``offset``): equal class shares,
        the same at every evaluation, so conditional metrics compare across steps."""
        return (torch.arange(offset, offset + n, device=device) % self.num_classes).long()


def declared(arch: Any) -> tuple[bool, bool]:
    """(conditional generator, conditional discriminator) as the architecture declares them."""
    generator = bool(getattr(arch, "conditional", False))
    discriminator = bool(getattr(arch, "conditional_discriminator", generator))
    return generator, discriminator


def conditioning_for(arch: Any, arch_name: str, data: Any, dataset_name: str, fake_labels: str,
                     dataset: Any = None) -> Conditioning | None:
    """The run's conditioning, or None for an unconditional architecture; refuses unlabelled data in one line.

    A dataset component declaring ``labelled = False`` has no classes to condition on even where its data
    carries indices (a 2-D mixture's mode indices are a by-product of sampling, not annotations).
    """
    generator, discriminator = declared(arch)
    if not (generator or discriminator):
        return None
    if discriminator and not generator:
        raise ComponentError(f"architecture '{arch_name}' declares a conditional discriminator but an unconditional "
                             "generator: its fakes would have no class to be judged by; set conditional = True "
                             "(a conditional G) or conditional_discriminator = False")
    classes = int(getattr(data, "num_classes", 0) or 0)
    labelled = classes >= 2 and (getattr(data, "y", None) is not None or not hasattr(data, "y")) \
        and getattr(dataset, "labelled", True) is not False
    if not labelled:
        raise ComponentError(
            f"architecture '{arch_name}' is conditional (it is called with class labels), but dataset "
            f"'{dataset_name}' has no class labels; use a labelled dataset (e.g. digits, mnist, cifar10) "
            "or set arch.conditional=false"
        )
    return Conditioning(classes, generator, discriminator, fake_labels)


def build_with_classes(build: Callable[..., Any], conditioning: Conditioning | None) -> Callable[..., Any]:
    """``build(shape, latent_dim, num_logits)``, passing ``num_classes`` when the run is conditional."""
    if conditioning is None:
        return build
    try:
        parameters = inspect.signature(build).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes = "num_classes" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if not takes:
        raise ComponentError("a conditional architecture's build() must accept num_classes "
                             "(build(data_shape, latent_dim, num_logits, num_classes))")

    def with_classes(shape: Any, latent_dim: int, num_logits: int) -> Any:
        return build(shape, latent_dim, num_logits, num_classes=conditioning.num_classes)

    return with_classes


def generator_call(G: Any, conditioning: Conditioning | None) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``f(z, y)``: G with its labels when it is conditional, ``G(z)`` otherwise."""
    if conditioning is not None and conditioning.generator:
        return lambda z, y: G(z, y)
    return lambda z, y: G(z)


def discriminator_call(D: Any, conditioning: Conditioning | None) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``f(x, y)``: D with the labels when it is conditional, ``D(x)`` otherwise."""
    if conditioning is not None and conditioning.discriminator:
        def scored(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
            if y is None:
                raise GanlabError("this run's discriminator is conditional: scoring samples needs their labels")
            return D(x, y)
        return scored
    return lambda x, y: D(x)


def check_class(label: int, conditioning: Conditioning | None, what: str) -> None:
    """Refuse a requested class on an unconditional run, or one outside ``[0, K)``."""
    if conditioning is None or not conditioning.generator:
        raise GanlabError(f"--class needs a conditional run; {what} has an unconditional generator")
    if not 0 <= label < conditioning.num_classes:
        raise GanlabError(f"--class {label} is out of range: {what} was trained on classes 0 to "
                          f"{conditioning.num_classes - 1}")
