"""Head diagnostics (torch code); registered in :mod:`ganlab_plugins.metrics`."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ganlab.train.step import Step, total_of


class HeadDiagnostics:
    """``diag.*`` metrics of the discriminator's head at one evaluation, and its pictures.

    * ``diag.p_real_real`` / ``diag.p_real_fake``: mean p_real on a real and a generated batch;
    * ``diag.frac_exact_0`` / ``diag.frac_exact_1``: fraction of the head's output
      probabilities (every class, both batches) that are exactly 0 / exactly 1;
    * ``diag.entropy``: mean Shannon entropy (nats) of the head's output, 0·log 0 = 0;
    * ``diag.g_grad_norm``: mean over generated samples x of ‖∇_x ℓ_G(x)‖₂, the
      per-sample generator loss's gradient at the sample (vanishing-gradient signal);
    * ``diag.g_grad_zero``: fraction of those gradients that are exactly zero
      (the minimax game with a sparse head once D rejects fakes with margin).

    Pictures (:mod:`.head_pictures`), drawn from these very batches and gradients: ``head_histograms``
    (every run) and, where samples are 2-D vectors, ``field``.
    """

    def __init__(self, samples: int = 512, grad_samples: int = 256, field: bool = True, histograms: bool = True,
                 field_resolution: int = 64) -> None:
        self.samples = int(samples)
        self.grad_samples = int(grad_samples)
        self.field = bool(field)
        self.histograms = bool(histograms)
        self.field_resolution = int(field_resolution)

    def applies_to(self, run: Any) -> bool:
        return True  # every run has a head

    def evaluate(self, ctx: Any) -> dict[str, Any]:
        n = self.samples
        if ctx.config is not None:
            n = min(n, int(getattr(ctx.config, "eval_samples", n)))
        head = ctx.head
        # a conditional D scores a sample given its class: real samples with their labels, fakes with the
        # classes they were generated for
        labelled = getattr(ctx, "conditioning", None) is not None and ctx.conditioning.discriminator
        if labelled:
            (real, real_y), (fake, fake_y) = ctx.real_labelled(n), ctx.generate_labelled(n)
            real_logits, fake_logits = ctx.discriminate(real, real_y), ctx.discriminate(fake, fake_y)
        else:
            real, fake = ctx.real_batch(n), ctx.generate(n)
            real_logits, fake_logits = ctx.discriminate(real), ctx.discriminate(fake)
        probs = torch.cat([head.probs(real_logits), head.probs(fake_logits)])
        p_real_real, p_real_fake = head.p_real(real_logits), head.p_real(fake_logits)
        out: dict[str, Any] = {
            "diag.p_real_real": p_real_real.mean().item(),
            "diag.p_real_fake": p_real_fake.mean().item(),
            "diag.frac_exact_0": (probs == 0).float().mean().item(),
            "diag.frac_exact_1": (probs == 1).float().mean().item(),
            # xlogy(0, 0) = 0: no NaN where sparse heads output exact zeros
            "diag.entropy": (-torch.special.xlogy(probs, probs).sum(dim=-1)).mean().item(),
        }
        gradients = norms = None
        if ctx.objective is not None and scores_only(ctx.objective):
            precision = str(getattr(ctx.config, "precision", "fp32")) if ctx.config is not None else "fp32"
            # a relativistic G loss judges its samples against real ones: it gets the real batch's scores
            gradients = generator_gradients(ctx.objective, head, ctx.discriminator, fake[: self.grad_samples],
                                            precision, real_logits[: self.grad_samples],
                                            fake_y[: self.grad_samples] if labelled else None)
            norms = gradients.flatten(1).norm(dim=1)
            out["diag.g_grad_norm"] = norms.mean().item()
            out["diag.g_grad_zero"] = (norms == 0).float().mean().item()
        if getattr(ctx, "pictures", True):
            from ganlab_plugins.metrics import head_pictures

            if self.histograms:
                out["head_histograms"] = head_pictures.histograms_picture(ctx, p_real_real, p_real_fake, norms)
            if self.field and ctx.run is not None and head_pictures.field_applies(ctx.run):
                out["field"] = head_pictures.field_picture(ctx, real, fake, gradients, self.field_resolution)
        return out


def scores_only(objective: Any) -> bool:
    """Does the objective's G loss read D's scores alone (not AC-GAN's classes, not InfoGAN's Q)?"""
    return not getattr(objective, "predicts_classes", False) and not hasattr(objective, "auxiliary_network")


def generator_gradient_norms(objective: Any, head: Any, discriminator: Any, x: torch.Tensor,
                             precision: str = "fp32", real_logits: torch.Tensor | None = None,
                             labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) L2 norms of :func:`generator_gradients`: each sample's ‖∇_x ℓ_G(x)‖₂."""
    return generator_gradients(objective, head, discriminator, x, precision, real_logits, labels).flatten(1).norm(dim=1)


def generator_gradients(objective: Any, head: Any, discriminator: Any, x: torch.Tensor,
                        precision: str = "fp32", real_logits: torch.Tensor | None = None,
                        labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B, *x.shape[1:]) float32: ∇_x of each sample's generator loss (``generator_loss`` on a step that
    knows the scores of ``x`` and of the real batch, ``real_logits``).

    The G loss is a batch mean, so it is scaled by B to give each sample's own
    gradient (comparable across batch sizes). D runs as the generator sees it in
    training (its current train/eval mode, the run's precision); its buffers
    (batch-norm statistics) are restored afterwards and its parameters get no .grad.
    """
    x = x.detach().clone().requires_grad_(True)
    buffers = [(b, b.detach().clone()) for b in getattr(discriminator, "buffers", lambda: [])()]
    try:
        with torch.enable_grad(), _autocast(x.device, precision):
            scores = discriminator(x) if labels is None else discriminator(x, labels)
            real = real_logits if real_logits is not None else scores.detach()
            step = Step.of_scores(head, real, scores, phase="g")
            loss = total_of(objective.generator_loss(step), "loss")[0] * x.shape[0]
        (grad,) = torch.autograd.grad(loss, x)
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return grad.detach().float()


def _autocast(device: torch.device, precision: str) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
