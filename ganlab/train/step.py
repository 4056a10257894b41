"""The step object: what objectives and regularisers see of one training step (the one contract,
``discriminator_loss(step)`` / ``generator_loss(step)``, since hookspec 2.0).

The step hands over D, the samples and the batch together, with D's scores cached so that two
terms never score the same batch twice. A population's step is the same object over every
replica's rows one after another (replica-major): per-sample code is unchanged, and the two
reductions whose meaning differs, ``mean`` and ``batch_mean``, reduce each replica's own rows, so
one objective or regulariser trains both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch


def critic_score(head: Any, logits: torch.Tensor) -> torch.Tensor:
    """D's scalar score of each sample, the quantity margin losses and penalties use.

    A head may define ``score(logits)``. Otherwise: the single logit of a one-score head
    (sigmoid: s), and for heads with the real classes first and "fake" last,
    ``logsumexp(z_real classes) - z_fake`` (two classes: the margin z_real - z_fake).
    Penalties differentiate this score, never a head's loss: the Fenchel-Young losses of
    sparse heads are piecewise quadratic, with second derivatives that vanish where the
    map is saturated, which would make a penalty on them silently zero.
    """
    own = getattr(head, "score", None)
    if callable(own):
        return own(logits)
    if logits.dtype in (torch.float16, torch.bfloat16):  # half-precision D: score in float32
        logits = logits.float()
    if logits.shape[-1] == 1:
        return logits[..., 0]
    return torch.logsumexp(logits[..., :-1], dim=-1) - logits[..., -1]


class Step:
    """One D update (``phase == "d"``) or G update (``phase == "g"``) of a run, or of every replica of a
    population at once (``replicas``: N, whose rows follow one another in every tensor; None in a run).

    ``real``/``real_labels``: the real batch (in the G phase, the last D update's batch);
    ``noise`` and ``fake``: this update's (detached in the D phase, differentiable in the G phase);
    ``discriminator``: D as it trains (the DDP-synchronised one when distributed); ``head``;
    ``number``: the training step being made (1-based); ``d_step``: which D update of the step.

    ``auxiliary`` and ``features(x)``: the network an objective trains on D's features (InfoGAN's Q) and
    those features, where the objective declares ``auxiliary_network``.

    Conditional runs (``ganlab.train.conditioning``): ``fake_labels`` are the classes the fakes were
    generated for (None in an unconditional run), and where D is conditional (``conditional``) it is
    called as ``D(x, y)``: ``scores``, ``critic`` and ``input_gradient`` give it the fakes' labels for
    ``fake`` and the real batch's labels for any other tensor (the real batch, and the interpolates of a
    gradient penalty, as StudioGAN's conditional WGAN-GP does), unless ``labels`` are passed.
    """

    def __init__(self, *, phase: str, number: int, d_step: int | None, real: torch.Tensor,
                 real_labels: torch.Tensor | None, noise: torch.Tensor, fake: torch.Tensor,
                 discriminator: Callable[[torch.Tensor], torch.Tensor], head: Any,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 uniform: Callable[[int], torch.Tensor] | None = None,
                 replicas: int | None = None, fake_labels: torch.Tensor | None = None,
                 conditional: bool = False, features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 auxiliary: Any = None) -> None:
        self.phase, self.number, self.d_step = phase, number, d_step
        self.fake_labels, self.conditional = fake_labels, conditional
        self._features = features
        self.auxiliary = auxiliary
        self.real, self.real_labels, self.noise, self.fake = real, real_labels, noise, fake
        self.discriminator, self.head = discriminator, head
        self.replicas = replicas
        self._augment = augment
        self._uniform = uniform
        # keyed by the ids of x and its labels; both are kept alongside so their ids cannot be reused
        self._scores: dict[tuple[int, int], tuple[torch.Tensor, Any, torch.Tensor]] = {}

    # ---- scoring ------------------------------------------------------------
    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as D sees it in training: through the run's augmentations (none: unchanged)."""
        return x if self._augment is None else self._augment(x)

    def labels_for(self, x: torch.Tensor) -> torch.Tensor | None:
        """The class labels D is given with ``x`` in a conditional run: the fakes' for ``fake``, the real
        batch's otherwise; None where D is unconditional."""
        if not self.conditional:
            return None
        return self.fake_labels if x is self.fake else self.real_labels

    def scores(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's raw scores of ``x`` (augmented as in training), computed once per tensor (and labels)."""
        if labels is None:
            labels = self.labels_for(x)
        key = (id(x), id(labels))
        found = self._scores.get(key)
        if found is not None and found[0] is x and found[1] is labels:
            return found[2]
        seen = self.augment(x)
        out = self.discriminator(seen, labels) if self.conditional else self.discriminator(seen)
        self._scores[key] = (x, labels, out)
        return out

    def remember(self, x: torch.Tensor, scores: torch.Tensor) -> None:
        """Record scores the engine already computed for ``x`` with its default labels (e.g. real and fake
        in one call)."""
        labels = self.labels_for(x)
        self._scores[(id(x), id(labels))] = (x, labels, scores)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """D's last hidden features of ``x`` (augmented as in training), for an objective that trains a
        network on them (``auxiliary``: InfoGAN's Q head). Only where the objective declares one."""
        if self._features is None:
            raise RuntimeError("D's features are handed to objectives that declare auxiliary_network()")
        return self._features(self.augment(x))

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's scalar score per scored row of ``x`` (:func:`critic_score`), differentiable in x and D."""
        return critic_score(self.head, self.scores(x, labels))

    # ---- the reductions that differ between a run and a population ------------------------
    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The batch mean of per-sample ``values``: a scalar, or one value per replica."""
        if self.replicas is not None:
            return values.reshape(self.replicas, -1).mean(dim=1)
        return values.mean()

    def batch_mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over the batch of (B, ...) ``values``, kept as one broadcastable row (each replica's own
        mean for its rows, in a population)."""
        if self.replicas is None:
            return values.mean(dim=0, keepdim=True)
        per = values.unflatten(0, (self.replicas, -1))
        return per.mean(dim=1, keepdim=True).expand_as(per).flatten(0, 1)

    def uniform(self, like: torch.Tensor) -> torch.Tensor:
        """U(0, 1) per sample (row) of ``like``, broadcastable against it, drawn from the run's random stream
        (each replica's own, in a population)."""
        rows = like.shape[0]
        u = self._uniform(rows) if self._uniform is not None else torch.rand((rows,), device=like.device)
        return u.to(like.dtype).reshape(rows, *([1] * (like.dim() - 1)))

    @classmethod
    def of_scores(cls, head: Any, real_logits: torch.Tensor, fake_logits: torch.Tensor, phase: str = "d",
                  real_labels: torch.Tensor | None = None) -> "Step":
        """A step that knows D's scores of a real and a fake batch and nothing else: an objective's loss on
        given scores (its unit tests; metrics that differentiate G's loss in its scores)."""
        real, fake = real_logits.new_empty(len(real_logits), 0), fake_logits.new_empty(len(fake_logits), 0)

        def unavailable(*args: Any) -> torch.Tensor:
            raise RuntimeError("Step.of_scores knows the scores of step.real and step.fake only")

        step = cls(phase=phase, number=1, d_step=0 if phase == "d" else None, real=real, real_labels=real_labels,
                   noise=fake, fake=fake, discriminator=unavailable, head=head)
        step.remember(real, real_logits)
        step.remember(fake, fake_logits)
        return step

    def input_gradient(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The gradient of D's critic score with respect to its input ``x``, one flattened row per scored
        row (per sample; per pack with PacGAN), with the graph kept (``create_graph``) so that a penalty
        on it trains D."""
        if labels is None:  # before detaching: the detached copy is no longer ``fake``
            labels = self.labels_for(x)
        x = x.detach().requires_grad_(True)
        score = self.critic(x, labels)
        (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
        return grad.reshape(*score.shape, -1)


def total_of(value: torch.Tensor | Mapping[str, torch.Tensor], who: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An objective's or regulariser's result as (sum, named terms); a bare tensor is one unnamed term."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{who} returned an empty dict of loss terms")
        terms = dict(value)
        total = sum(terms.values())
        return total, terms  # type: ignore[return-value]
    return value, {}
