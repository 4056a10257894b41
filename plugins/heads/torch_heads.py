"""Discriminator output heads: probability maps and their proper losses (torch code).

Imported only when a run builds a head; :mod:`ganlab_plugins.heads` registers the
factories without importing torch.

Conventions shared by every head (docs/heads.md, "Conventions" to "Proper losses"):

* D emits raw scores ``z`` of shape (B, C). The probability vector has the real
  classes first and the fake class **last**: plain GANs have C = 2 (real, fake),
  a semi-supervised discriminator has C = K + 1. The sigmoid head has one score
  and reports ``probs = [σ(s), 1 − σ(s)]``.
* Every loss is per sample (B,), computed from scores, never from a probability:
  nothing here takes ``log`` of a probability.
* All head math runs in float32 with autocast disabled, so a bf16 network still
  gets exact probabilities and losses (``entmax_bisect`` in bf16 returns NaN);
  float64 scores stay float64 (references and tests).
* Two-class heads come in two parametrisations (``head.scores``, docs/heads.md, "A head
  and its parametrisation"): two units ``z = [z_real, z_fake]`` (the default), or one
  score s fed to the map as ``z = [s, 0]``, whose margin moves at the sigmoid head's speed.

Fenchel–Young losses (Blondel, Martins & Niculae 2020) for the sparse heads are
written directly in torch as ``Ω*(z) − z_y`` with ``Ω*(z) = ⟨p*, z⟩ + H(p*)``
and ``p* = mapping(z)`` computed without grad. The value is exact and the
gradient is exactly ``p* − e_y``; unlike the entmax package's loss classes this
compiles under ``torch.compile``. Its second derivative is zero (p* is a
constant to autograd), so a gradient penalty must not differentiate through a
head loss twice — penalise the scores instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from ganlab.errors import ComponentError

_F = TypeVar("_F", bound=Callable[..., Any])


def float32_head(method: _F) -> _F:
    """Run a head method on float32 scores with autocast off on the scores' device."""

    @functools.wraps(method)
    def wrapper(self: Any, logits: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return method(self, logits if logits.dtype == torch.float64 else logits.float(), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Head:
    """Shared logic of the heads with C ≥ 2 scores whose regulariser Ω has Ω(e_y) = 0.

    Subclasses provide ``_map`` (the probability mapping) and ``_conjugate``
    (Ω*, the convex conjugate, with gradient ``_map``). Every loss follows:

    * ``loss(z, y) = Ω*(z) − z_y`` (cross-entropy for softmax, Fenchel–Young otherwise);
    * ``fake_loss(z) = loss(z, fake)``;
    * ``real_loss(z)``: the loss for "some real class". With two scores it is
      ``loss(z, real)``; with K + 1 it is ``Ω*(z) − Ω*(z_1..K)`` (softmax:
      ``−log(1 − p_fake)`` from logits), zero exactly when p_fake = 0 for sparse heads;
    * ``class_loss(z, y) = Ω*(z_1..K) − z_y``: the supervised K-way loss.

    ``scores`` (the option ``head.scores``) picks the two-class parametrisation: 2, D emits
    ``[z_real, z_fake]``; 1, D emits one score s and every method sees ``z = [s, 0]``, so the
    margin t = s feeds the map (softmax then is the sigmoid head exactly). With two units a
    gradient step moves t twice as far as it moves s, and t starts √2 larger under the same
    initialisation: "softmax vs sigmoid" with two units compares a step size, not a map.
    K + 1 classes keep K + 1 units (there the maps differ), so one score refuses them.
    """

    name = "head"
    sparse = False

    def __init__(self, scores: int = 2) -> None:
        if scores not in (1, 2):
            raise ComponentError(f"head '{self.name}' needs scores = 1 or 2, not {scores!r}")
        self.scores = int(scores)

    def num_logits(self, num_classes: int = 1) -> int:
        """Scores D must emit: one per real class plus one for "fake" (one in all with ``scores = 1``)."""
        if num_classes < 1:
            raise ComponentError(f"head '{self.name}' needs at least one real class, not {num_classes}")
        if self.scores == 1:
            if num_classes != 1:
                raise ComponentError(
                    f"head '{self.name}' with head.scores=1 feeds one score into a two-class map (real, fake) and "
                    f"cannot separate {num_classes} real classes plus fake; use head.scores=2 (K+1 = "
                    f"{num_classes + 1} scores)")
            return 1
        return num_classes + 1

    def _z(self, logits: torch.Tensor) -> torch.Tensor:
        """The (B, C) scores the map sees: D's own, or ``[s, 0]`` for one score s. Checked either way."""
        if self.scores == 1:
            if logits.dim() != 2 or logits.shape[-1] != 1:
                raise ComponentError(
                    f"head '{self.name}' with head.scores=1 expects one score per sample, shape (B, 1), got "
                    f"{tuple(logits.shape)}; the architecture must emit head.num_logits() scores")
            return torch.cat([logits, torch.zeros_like(logits)], dim=-1)
        _check_scores(self.name, logits)
        return logits

    # -- to be provided by subclasses --------------------------------------
    def _map(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        return self._map(z)

    def _conjugate(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- probabilities --------------------------------------------------------
    @float32_head
    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) distribution in float32: real classes first, fake last."""
        return self._probs(self._z(logits))

    @float32_head
    def p_real(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) probability that the sample is real, 1 − p_fake.

        Summed over the real classes rather than computed as ``1 − p_fake``: a
        tiny p_real (a confidently rejected fake) keeps its precision.
        """
        return self._probs(self._z(logits))[:, :-1].sum(dim=-1)

    # -- losses ---------------------------------------------------------------
    @float32_head
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) proper loss for class indices ``target`` (fake = C − 1)."""
        z = self._z(logits)
        return self._loss(z, target)

    @float32_head
    def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) loss for the target "fake" (the last class)."""
        z = self._z(logits)
        return self._loss(z, _full(z, z.shape[-1] - 1))

    @float32_head
    def real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) loss for "real, whichever real class": Ω*(z) − Ω*(z_1..K)."""
        z = self._z(logits)
        if z.shape[-1] == 2:  # one real class: Ω*(z_real) = z_real
            return self._loss(z, _full(z, 0))
        return self._conjugate(z) - self._conjugate(z[:, :-1])

    @float32_head
    def class_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) supervised loss over the K real classes only: Ω*(z_1..K) − z_y."""
        real = self._z(logits)[:, :-1]
        if real.shape[-1] == 1:  # a single real class carries no class information
            return real.new_zeros(real.shape[0])
        return self._loss(real, labels)

    def predict_class(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) most likely real class (every head's map is monotone in the scores)."""
        return self._z(logits)[:, :-1].argmax(dim=-1)

    def _loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._conjugate(z) - z.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()" if self.scores == 2 else f"{type(self).__name__}(scores=1)"


class SoftmaxHead(Head):
    """Softmax over (real, fake) or (K real classes, fake); cross-entropy loss.

    Ω is the negative Shannon entropy, Ω* = logsumexp. With two scores
    p_real = σ(z_real − z_fake): the same functions as the sigmoid head.
    """

    name = "softmax"

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, dim=-1)

    def _conjugate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(z, dim=-1)

    def _loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, target.long(), reduction="none")


class FenchelYoungHead(Head):
    """A sparse head: α-entmax mapping with the Tsallis-entropy Fenchel–Young loss.

    ``Ω*(z) = max_p ⟨p, z⟩ − Ω(p) = ⟨p*, z⟩ + H_α(p*)`` with
    ``H_α(p) = (1 − Σ p_i^α) / (α(α − 1))`` (α = 2: Gini, ½(1 − ‖p‖²)).
    """

    sparse = True
    alpha = 2.0

    def _tsallis(self, p: torch.Tensor) -> torch.Tensor:
        return (1.0 - p.pow(self.alpha).sum(dim=-1)) / (self.alpha * (self.alpha - 1.0))

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        # The same shifted input as in _conjugate, so that probs() is bit for bit
        # the p* in the loss gradient (bisection rounding depends on the shift).
        return self._map(z - z.detach().amax(dim=-1, keepdim=True))

    def _conjugate(self, z: torch.Tensor) -> torch.Tensor:
        # Shift by the (constant) row maximum: Ω*(z + c) = Ω*(z) + c, and the
        # small shifted scores keep ⟨p*, z⟩ accurate for scores up to ±1e4.
        shift = z.detach().amax(dim=-1, keepdim=True)
        shifted = z - shift
        with torch.no_grad():
            p = self._map(shifted)
        # p is a constant to autograd, so d/dz = p exactly: the FY gradient.
        return shift.squeeze(-1) + (p * shifted).sum(dim=-1) + self._tsallis(p)


class SparsemaxHead(FenchelYoungHead):
    """Sparsemax (Martins & Astudillo 2016): Euclidean projection onto the simplex."""

    name = "sparsemax"
    alpha = 2.0

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        from entmax import sparsemax

        return sparsemax(z, dim=-1)

    def _tsallis(self, p: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1.0 - (p * p).sum(dim=-1))


class EntmaxHead(FenchelYoungHead):
    """α-entmax (Peters, Niculae & Martins 2019), 1 < α ≤ 2.

    α = 1.5 uses the exact sort-based ``entmax15``; other values the bisection
    ``entmax_bisect`` (always in float32: it returns NaN in bf16).
    """

    name = "entmax"

    def __init__(self, alpha: float = 1.5, scores: int = 2) -> None:
        super().__init__(scores)
        alpha = float(alpha)
        if not 1.0 < alpha <= 2.0:
            raise ComponentError(
                f"head 'entmax' needs 1 < alpha <= 2, not {alpha} "
                "(alpha -> 1 is softmax: use --head softmax; alpha = 2 is sparsemax)"
            )
        self.alpha = alpha

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        if self.alpha == 1.5:
            from entmax import entmax15

            return entmax15(z, dim=-1)
        from entmax import entmax_bisect

        return entmax_bisect(z, alpha=self.alpha, dim=-1)

    def __repr__(self) -> str:
        return f"EntmaxHead(alpha={self.alpha}{'' if self.scores == 2 else ', scores=1'})"


class SigmoidHead:
    """One score s: p_real = σ(s); binary cross-entropy from the logit (softplus).

    Cannot tell K real classes apart, so it refuses ``num_classes > 1``.
    """

    name = "sigmoid"
    sparse = False

    def num_logits(self, num_classes: int = 1) -> int:
        if num_classes != 1:
            raise ComponentError(
                f"head 'sigmoid' has a single score and cannot separate {num_classes} real classes "
                "plus fake; use a head with K+1 scores (softmax, sparsemax or entmax)"
            )
        return 1

    @staticmethod
    def _score(logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2 and logits.shape[-1] == 1:
            return logits.squeeze(-1)
        if logits.dim() == 1:
            return logits
        raise ComponentError(f"head 'sigmoid' expects scores of shape (B, 1), got {tuple(logits.shape)}")

    @float32_head
    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        s = self._score(logits)
        return torch.stack([torch.sigmoid(s), torch.sigmoid(-s)], dim=-1)

    @float32_head
    def p_real(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._score(logits))

    @float32_head
    def real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-self._score(logits))  # −log σ(s)

    @float32_head
    def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(self._score(logits))  # −log(1 − σ(s))

    @float32_head
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        s = self._score(logits)
        # target 0 (real): softplus(−s); target 1 (fake): softplus(s)
        return F.softplus(torch.where(target.to(s.device) == 0, -s, s))

    def class_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise ComponentError("head 'sigmoid' has no class scores; use softmax, sparsemax or entmax")

    def predict_class(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)

    def __repr__(self) -> str:
        return "SigmoidHead()"


def _full(logits: torch.Tensor, index: int) -> torch.Tensor:
    return torch.full((logits.shape[0],), index, dtype=torch.long, device=logits.device)


def _check_scores(name: str, logits: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[-1] < 2:
        raise ComponentError(
            f"head '{name}' expects scores of shape (B, C) with C >= 2 (real classes + fake), "
            f"got {tuple(logits.shape)}; the architecture must emit head.num_logits() scores"
        )
