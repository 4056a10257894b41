"""The ``temperature-sigmoid`` head (torch code, imported only when a run builds it).

p_real = σ(s / T) for D's single score s. Its proper loss is the binary
cross-entropy of the scaled logit, computed from the logit with softplus
(−log σ(u) = softplus(−u)), never as log of a probability. T rescales the
score: a large T makes D's output less confident for the same score, which
slows D's saturation early in training; the optimum of the loss is still the
true posterior (a proper scoring rule is invariant to reparametrising the score).

Like every ganlab head it computes in float32 with autocast off, so a bf16
network still gets exact probabilities and losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.errors import ComponentError


class TemperatureSigmoidHead:
    """A sigmoid head whose score is divided by a temperature T > 0."""

    def __init__(self, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ComponentError(f"head 'temperature-sigmoid' needs temperature > 0, not {temperature}")
        self.temperature = float(temperature)

    def num_logits(self, num_classes: int = 1) -> int:
        """One score; a single score cannot tell K real classes apart."""
        if num_classes != 1:
            raise ComponentError(
                f"head 'temperature-sigmoid' has a single score and cannot separate {num_classes} real classes; "
                "use a head with K+1 scores (softmax, sparsemax or entmax)"
            )
        return 1

    def _logit(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) scaled logit u = s / T in float32."""
        if logits.dim() == 2 and logits.shape[-1] == 1:
            logits = logits.squeeze(-1)
        if logits.dim() != 1:
            raise ComponentError(f"head 'temperature-sigmoid' expects scores of shape (B, 1), got {tuple(logits.shape)}")
        return logits.float() / self.temperature

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2): [p_real, p_fake]."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            u = self._logit(logits)
            return torch.stack([torch.sigmoid(u), torch.sigmoid(-u)], dim=-1)

    def p_real(self, logits: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return torch.sigmoid(self._logit(logits))

    def real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) −log p_real = softplus(−s/T)."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return F.softplus(-self._logit(logits))

    def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) −log p_fake = softplus(s/T)."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return F.softplus(self._logit(logits))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) loss for class indices ``target``: 0 = real, 1 = fake."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            u = self._logit(logits)
            return F.softplus(torch.where(target.to(u.device) == 0, -u, u))

    def __repr__(self) -> str:
        return f"TemperatureSigmoidHead(temperature={self.temperature})"
