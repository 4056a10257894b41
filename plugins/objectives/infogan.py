"""InfoGAN (Chen et al. 2016) with a Q head whose categorical posterior is any head's map (torch code).

G is fed noise and codes (``--latent infogan``: one-hot categorical codes and continuous codes
uniform on [-1, 1]). Q is a small network on D's last features (D and Q share D's body, as in the
paper) that predicts each code of a generated sample: a categorical code through a probability map,
softmax, sparsemax or entmax (``q_map``), trained with that map's Fenchel–Young loss (for softmax,
the cross-entropy −log Q(c | x)); a continuous code as the mean of a unit-variance Gaussian (loss
½(c − μ)², −log Q up to a constant). With softmax this is the paper's variational lower bound on the
mutual information I(c; G(z, c)) (minus the constant H(c)); a sparse map's Fenchel–Young loss is a
proper loss but not −log Q, so with sparsemax or entmax the term is a surrogate for that bound, not
the bound itself (docs/heads.md, "InfoGAN").

Both players minimise the information loss L_I on generated samples, weighted by ``info_weight``
(continuous codes also by ``continuous_weight``): D (with Q) beside the head's non-saturating game,
G beside its non-saturating loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganlab.errors import ComponentError

#: Q's probability maps for categorical codes, by option value (the heads' maps and Fenchel–Young losses)
Q_MAPS = ("softmax", "sparsemax", "entmax")


def make_q_map(name: str) -> Any:
    """The head whose map and Fenchel-Young loss Q uses for a categorical code (the map over all k values)."""
    from ganlab_plugins.heads.torch_heads import EntmaxHead, SoftmaxHead, SparsemaxHead

    return {"softmax": SoftmaxHead, "sparsemax": SparsemaxHead, "entmax": EntmaxHead}[name]()


class InfoGAN:
    """``infogan``: the non-saturating game plus the information loss of Q on generated samples."""

    name = "infogan"

    def __init__(self, info_weight: float = 1.0, continuous_weight: float = 0.1, q_map: str = "softmax",
                 q_hidden: int = 128) -> None:
        self.info_weight = float(info_weight)
        self.continuous_weight = float(continuous_weight)
        self.q_map_name = q_map
        self.map = make_q_map(q_map)
        self.q_hidden = int(q_hidden)
        self.latent: Any = None
        self.q: nn.Module | None = None

    def use_latent(self, name: str, latent: Any) -> None:
        if not callable(getattr(latent, "codes", None)):
            raise ComponentError(f"loss 'infogan' recovers G's latent codes, but latent '{name}' has none; "
                                 "use --latent infogan")
        if not (latent.categorical or latent.continuous):
            raise ComponentError("loss 'infogan' needs at least one code: set latent.categorical or "
                                 "latent.continuous")
        self.latent = latent

    def auxiliary_network(self, feature_dim: int) -> nn.Module:
        """Q: D's features -> one score per value of each categorical code, and a mean per continuous code."""
        outputs = sum(self.latent.categorical) + self.latent.continuous
        self.q = nn.Sequential(nn.Linear(feature_dim, self.q_hidden), nn.LeakyReLU(0.2, inplace=True),
                               nn.Linear(self.q_hidden, outputs))
        return self.q

    # ---- the information loss ----------------------------------------------------------
    def q_outputs(self, q_out: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Q's output split into categorical scores (one (B, k) block per code) and continuous means."""
        blocks, start = [], 0
        for k in self.latent.categorical:
            blocks.append(q_out[:, start : start + k])
            start += k
        return blocks, q_out[:, start:]

    def information_terms(self, features: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per code kind, the mean loss of Q recovering the codes held in ``noise`` from ``features``."""
        assert self.q is not None, "the engine builds Q (auxiliary_network) before training"
        codes = self.latent.codes(noise)
        scores, means = self.q_outputs(self.q(features))
        terms = {}
        if scores:
            terms["info_cat"] = sum(self.map.loss(s, c).mean() for s, c in zip(scores, codes.categorical))
        if means.shape[1]:
            target = codes.continuous.to(means.dtype)
            terms["info_cont"] = self.continuous_weight * 0.5 * (means - target).pow(2).sum(dim=1).mean()
        return {k: self.info_weight * v for k, v in terms.items()}

    def discriminator_loss(self, step: Any) -> dict[str, torch.Tensor]:
        head = step.head
        adv = head.real_loss(step.scores(step.real)).mean() + head.fake_loss(step.scores(step.fake)).mean()
        return {"adv": adv, **self.information_terms(step.features(step.fake), step.noise)}

    def generator_loss(self, step: Any) -> dict[str, torch.Tensor]:
        adv = step.head.real_loss(step.scores(step.fake)).mean()
        return {"adv": adv, **self.information_terms(step.features(step.fake), step.noise)}

    def __repr__(self) -> str:
        return f"InfoGAN(q_map={self.q_map_name!r}, info_weight={self.info_weight})"


class CodeRecovery:
    """The ``infogan`` metric: how well Q reads the codes back from generated samples.

    ``infogan.code_accuracy``: the share of categorical codes Q's argmax recovers (mean over codes;
    chance 1/k); ``infogan.continuous_mse``: the mean squared error of Q's means (a constant guess of 0
    scores 1/3, the variance of U(-1, 1)); ``infogan.q_zero_fraction``: the share of exactly-zero
    probabilities in Q's categorical posteriors (sparse maps only).
    """

    def __init__(self, samples: int = 1000) -> None:
        self.samples = int(samples)

    def applies_to(self, run: Any) -> bool:
        return isinstance(run.objective, InfoGAN)

    def evaluate(self, ctx: Any) -> dict[str, float]:
        objective: InfoGAN = ctx.objective
        generator = torch.Generator().manual_seed(int(ctx.seed) + 31337)
        noise = ctx.latent.sample(self.samples, ctx.latent_dim, ctx.device, generator)
        codes = ctx.latent.codes(noise)
        conditioning = getattr(ctx, "conditioning", None)  # a conditional G: the classes in turn
        labels = conditioning.balanced(self.samples, ctx.device) if conditioning is not None else None
        with torch.no_grad():
            x = ctx.generate_from(noise, labels)
            scores, means = objective.q_outputs(objective.q(ctx.discriminator.features(x.to(ctx.device))).float())
        out: dict[str, float] = {}
        if scores:
            hits = [(s.argmax(dim=1) == c).float().mean() for s, c in zip(scores, codes.categorical)]
            out["infogan.code_accuracy"] = float(torch.stack(hits).mean())
            probs = torch.cat([objective.map.probs(s) for s in scores], dim=1)
            out["infogan.q_zero_fraction"] = float((probs == 0).float().mean())
        if means.shape[1]:
            out["infogan.continuous_mse"] = float((means - codes.continuous.float()).pow(2).mean())
        return out
