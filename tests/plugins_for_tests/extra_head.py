"""A test plugin contributing a head under a new name: a sigmoid with a fixed temperature."""

from ganlab import Option, hookimpl


class HalfSigmoid:
    """p_real = sigmoid(s / 2); its proper loss is the BCE of the scaled logit."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def num_logits(self, num_classes: int = 1) -> int:
        return 1

    def _s(self, logits):
        return logits.float()[:, 0] / self.temperature

    def probs(self, logits):
        import torch

        p = torch.sigmoid(self._s(logits))
        return torch.stack([p, 1 - p], dim=1)

    def p_real(self, logits):
        import torch

        return torch.sigmoid(self._s(logits))

    def real_loss(self, logits):
        import torch.nn.functional as F

        return F.softplus(-self._s(logits))

    def fake_loss(self, logits):
        import torch.nn.functional as F

        return F.softplus(self._s(logits))

    def loss(self, logits, target):
        import torch

        target = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
        return torch.where(target == 0, self.real_loss(logits), self.fake_loss(logits))


@hookimpl
def register_heads(register):
    register("half-sigmoid", HalfSigmoid, summary="sigmoid of the score over a temperature",
             options={"temperature": Option(float, 2.0, "divides the score", min=0.0, min_exclusive=True)})
