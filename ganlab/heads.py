"""A base class for discriminator heads: define the probability mapping and its regulariser, get the rest.

A head with C ≥ 2 scores (K real classes first, fake last) whose probabilities are the argmax of a
regularised linear problem over the simplex,

    p*(z) = argmax_{p ∈ Δ} ⟨p, z⟩ − Ω(p),

has one proper loss, its Fenchel–Young loss (Blondel, Martins & Niculae 2020):

    L(z; y) = Ω*(z) + Ω(e_y) − z_y,   Ω*(z) = ⟨p*(z), z⟩ − Ω(p*(z)),   ∇_z L = p*(z) − e_y.

softmax (Ω = negative Shannon entropy), sparsemax (Ω = ½‖p‖²) and α-entmax (Ω = negative Tsallis
entropy) are such heads. :class:`FenchelYoungHead` asks a subclass for the two functions that define
one, ``mapping(z)`` (p*) and ``regularizer(p)`` (Ω), and supplies everything the head contract asks
for (docs/plugins.md, "Heads"; docs/heads.md for the mathematics). Importing this module imports no
torch: the methods import it when they run, so a plugin file may subclass it at its top level.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ganlab.errors import ComponentError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["FenchelYoungHead"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _head_math(method: _F) -> _F:
    """Run a head method with autocast off, on scores in float32 (float64 scores stay float64)."""

    @functools.wraps(method)
    def wrapper(self: Any, logits: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.autocast(device_type=logits.device.type, enabled=False):
            if logits.dtype != torch.float64:
                logits = logits.float()
            return method(self, logits, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class FenchelYoungHead:
    """A discriminator head defined by its mapping p* and its regulariser Ω; the base gives the losses.

    A subclass defines two methods (and a ``name`` for messages)::

        class Sparsemax(FenchelYoungHead):
            name = "my-sparsemax"

            def mapping(self, z):             # (B, C) scores -> (B, C) probabilities
                from entmax import sparsemax
                return sparsemax(z, dim=-1)

            def regularizer(self, p):         # (B, C) probabilities -> (B,) Omega(p)
                return 0.5 * (p * p).sum(dim=-1)

    What the two must satisfy:

    * ``mapping(z)`` is the argmax over the simplex of ⟨p, z⟩ − ``regularizer(p)``, row by row, for
      any number of classes C ≥ 2 (the K + 1 losses use it on the K real scores too). The base calls
      it on scores shifted by their row maximum (the argmax does not change when a constant is added
      to every score), without gradient.
    * ``regularizer(p)`` is Ω, convex, the same function for every C, and unchanged by an extra class
      of zero probability (Ω(p, 0) = Ω(p): true of every Ω that is a sum of one function per class
      with value 0 at 0, as all the heads above are). Any additive constant is fine: the loss adds
      Ω(e_y) itself, so Ω need not vanish on one-hot vectors. It is called on one-hot vectors, so
      write 0·log 0 as 0 (``torch.special.xlogy(p, p)``, not ``p * p.log()``).

    The mapping alone determines Ω only through an integral (∇Ω* = p*), which has no general closed
    form, so the regulariser is asked for rather than guessed: without it the loss value would be
    wrong, though its gradient would not.

    What the base supplies, in float32 with autocast off (float64 scores stay float64), from the
    scores and never from the log of a probability:

    * ``loss(z, y) = Ω*(z) + Ω(e_y) − z_y`` with ``Ω*(z) = ⟨p*, z⟩ − Ω(p*)``; p* is a constant to
      autograd, so the gradient is exactly ``p* − e_y`` (as exact as ``mapping`` is) and the second
      derivative is zero: a gradient penalty must differentiate D's scores, never this loss;
    * ``fake_loss(z) = loss(z, fake)``; ``real_loss(z)``, "real, whichever real class": ``loss(z, real)``
      with two scores, ``Ω*(z) − Ω*(z_1..K)`` with K + 1;
    * ``class_loss(z, y) = Ω*(z_1..K) + Ω(e_y) − z_y`` (the K-way loss of AC-GAN and the
      semi-supervised objective) and ``predict_class(z)`` (the largest real score: the mapping of a
      permutation-symmetric Ω keeps the order of the scores);
    * ``probs(z)`` (B, C), ``p_real(z)`` (B,), ``num_logits(K) = K + 1``, and a ComponentError naming
      the head when D's scores, ``mapping`` or ``regularizer`` have the wrong shape.
    """

    #: the head's name in error messages (the class name if unset); users pick it by its registered name
    name: str | None = None

    # -- what a subclass defines ----------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C) probabilities p*(z) = argmax_p ⟨p, z⟩ − Ω(p), real classes first, fake last."""
        raise NotImplementedError(f"{type(self).__name__} must define mapping(z)")

    def regularizer(self, p: torch.Tensor) -> torch.Tensor:
        """(B,) Ω(p) for (B, C) probabilities p: the regulariser whose argmax ``mapping`` computes."""
        raise NotImplementedError(f"{type(self).__name__} must define regularizer(p)")

    # -- the head contract ----------------------------------------------------------------------
    def num_logits(self, num_classes: int = 1) -> int:
        """Scores D must emit: one per real class plus one for "fake"."""
        if num_classes < 1:
            raise ComponentError(f"head '{self._label}' needs at least one real class, not {num_classes}")
        return num_classes + 1

    @_head_math
    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) distribution: real classes first, fake last."""
        self._check_scores(logits)
        return self._map(logits - logits.detach().amax(dim=-1, keepdim=True))

    @_head_math
    def p_real(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) probability that the sample is real: the mass on the real classes (precise when tiny)."""
        self._check_scores(logits)
        return self._map(logits - logits.detach().amax(dim=-1, keepdim=True))[:, :-1].sum(dim=-1)

    @_head_math
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) Fenchel–Young loss for class indices ``target`` (fake = C − 1)."""
        self._check_scores(logits)
        return self._loss(logits, target)

    @_head_math
    def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) loss for the target "fake" (the last class)."""
        self._check_scores(logits)
        return self._loss(logits, self._full(logits, logits.shape[-1] - 1))

    @_head_math
    def real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) loss for "real, whichever real class": Ω*(z) − Ω*(z_1..K); with two scores, loss(z, real)."""
        self._check_scores(logits)
        if logits.shape[-1] == 2:
            return self._loss(logits, self._full(logits, 0))
        return self.conjugate(logits) - self.conjugate(logits[:, :-1])

    @_head_math
    def class_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) supervised loss over the K real classes only: Ω*(z_1..K) + Ω(e_y) − z_y."""
        self._check_scores(logits)
        real = logits[:, :-1]
        if real.shape[-1] == 1:  # a single real class carries no class information
            return real.new_zeros(real.shape[0])
        return self._loss(real, labels)

    def predict_class(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) most likely real class."""
        self._check_scores(logits)
        return logits[:, :-1].argmax(dim=-1)

    # -- the mathematics ------------------------------------------------------------------------
    def conjugate(self, z: torch.Tensor) -> torch.Tensor:
        """(B,) Ω*(z) = ⟨p*, z⟩ − Ω(p*), with gradient p* (p* is computed without grad).

        Computed on scores shifted by their (constant) row maximum, Ω*(z + c) = Ω*(z) + c, so that
        ⟨p*, z⟩ stays accurate for large scores.
        """
        import torch

        shift = z.detach().amax(dim=-1, keepdim=True)
        shifted = z - shift
        with torch.no_grad():
            p = self._map(shifted)
            omega = self._regularizer(p)
        return shift.squeeze(-1) + (p * shifted).sum(dim=-1) - omega

    def _loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        target = target.long().to(z.device)
        with torch.no_grad():
            one_hot = torch.nn.functional.one_hot(target, z.shape[-1]).to(z.dtype)
            omega_y = self._regularizer(one_hot)
        return self.conjugate(z) + omega_y - z.gather(-1, target.unsqueeze(-1)).squeeze(-1)

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        p = self.mapping(z)
        if tuple(p.shape) != tuple(z.shape):
            raise ComponentError(f"head '{self._label}': mapping(z) returned shape {tuple(p.shape)} for scores of "
                                 f"shape {tuple(z.shape)}; it must return one probability per score")
        return p

    def _regularizer(self, p: torch.Tensor) -> torch.Tensor:
        omega = self.regularizer(p)
        if tuple(omega.shape) != (p.shape[0],):
            raise ComponentError(f"head '{self._label}': regularizer(p) returned shape {tuple(omega.shape)} for "
                                 f"probabilities of shape {tuple(p.shape)}; it must return one value per row, "
                                 f"({p.shape[0]},)")
        return omega

    def _check_scores(self, logits: torch.Tensor) -> None:
        if logits.dim() != 2 or logits.shape[-1] < 2:
            raise ComponentError(
                f"head '{self._label}' expects scores of shape (B, C) with C >= 2 (real classes + fake), "
                f"got {tuple(logits.shape)}; the architecture must emit head.num_logits() scores")

    @staticmethod
    def _full(logits: torch.Tensor, index: int) -> torch.Tensor:
        import torch

        return torch.full((logits.shape[0],), index, dtype=torch.long, device=logits.device)

    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
