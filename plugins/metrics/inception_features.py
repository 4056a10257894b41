"""Images to Inception-v3 features, through torch-fidelity's own extractor.

The input rule, the same for generated and real images:

* **uint8**: a sample x in [-1, 1] becomes ⌊(x + 1) · 127.5 + ½⌋ clamped to 0..255 (rounded,
  halves up), the value torchvision's ``save_image`` writes to a PNG for (x + 1)/2: a model
  is scored on the pixels its saved samples would hold, and
  real images, stored as 8-bit pixels and scaled to [-1, 1] by the dataset, come back
  to exactly their stored values;
* **channels**: a greyscale image (1 channel) is repeated to 3, as PIL's
  ``convert("RGB")`` does when torch-fidelity reads a greyscale file; 3 channels pass
  unchanged; any other count has no Inception input and the metric does not apply;
* **resize**: torch-fidelity's ``FeatureExtractorInceptionV3`` resizes the uint8 batch to
  299×299 with ``interpolate_bilinear_2d_like_tensorflow1x``, the bilinear rule of the
  TensorFlow 1 graph the published FIDs were computed with (no antialiasing).

Features: ``2048``, the pool3 layer (FID, KID, precision/recall), and
``logits_unbiased``, the 1008 logits without the final bias (Inception Score),
torch-fidelity's defaults for those metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

#: the name runs record as ``inception.resize``
RESIZE = "tf1-bilinear-299"
INPUT_RULE = "uint8 = floor((x+1)*127.5 + 0.5) clamped to 0..255; 1 channel repeated to 3"
POOL, LOGITS = "2048", "logits_unbiased"
CHANNELS = (1, 3)


def batch_size(device: Any) -> int:
    """Images per Inception forward pass: 299×299 activations are large, a CPU gains nothing from more."""
    return 200 if torch.device(device).type == "cuda" else 32


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [-1, 1], C in (1, 3) -> (N, 3, H, W) uint8 by the rule above."""
    if x.dim() != 4 or x.shape[1] not in CHANNELS:
        raise ValueError(f"Inception takes (N, 1 or 3, H, W) images, not shape {list(x.shape)}")
    # float64: the rounding is that of the sample's exact value, not of a float32 product; +0.5 then
    # truncation rounds halves up, as save_image does (torch.round would send 126.5 to 126)
    pixels = ((x.double() + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1).contiguous() if pixels.shape[1] == 1 else pixels


class Extractor:
    """torch-fidelity's Inception-v3 on the run's device, from a checked weights file."""

    def __init__(self, weights_path: Any, device: Any) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.device = torch.device(device)
        # torch-fidelity loads the file itself; ganlab has checked it first (inception_weights.checked)
        net = FeatureExtractorInceptionV3("inception-v3-compat", [POOL, LOGITS],
                                          feature_extractor_weights_path=str(weights_path))
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def features(self, batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool (N, 2048), logits (N, 1008)), float32 on the CPU, of float image batches in [-1, 1]."""
        pools, logits = [], []
        for x in batches:
            # converted on the CPU: float64 there on any run device (MPS has no float64)
            pool, logit = self.net(to_uint8(x.detach().cpu()).to(self.device))
            pools.append(pool.float().cpu())
            logits.append(logit.float().cpu())
        return torch.cat(pools), torch.cat(logits)
