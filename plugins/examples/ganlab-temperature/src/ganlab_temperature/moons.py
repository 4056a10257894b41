"""The ``moons`` dataset: scikit-learn's two interleaving half-circles, in memory."""

from __future__ import annotations

import torch

from ganlab.data import DataRequest, TensorData

# The noiseless moons span x in [-1, 2] and y in [-0.5, 1]: centre them, then
# divide by one common scale (keeping the shape round) with room for 3σ of noise.
_CENTRE = (0.5, 0.25)
_HALF_WIDTH = 1.5


class Moons:
    """A fixed pool of two-moons points; the moon index is the label."""

    cacheable = False  # generating a few thousand points beats reading a cache file

    def __init__(self, samples: int = 5000, noise: float = 0.05, seed: int = -1) -> None:
        self.samples, self.noise, self.seed = int(samples), float(noise), int(seed)

    def load(self, request: DataRequest) -> TensorData:
        from sklearn.datasets import make_moons

        seed = request.seed if self.seed < 0 else self.seed
        points, labels = make_moons(n_samples=self.samples, noise=self.noise, random_state=seed)
        x = torch.as_tensor(points, dtype=torch.float32)
        x = ((x - torch.tensor(_CENTRE)) / (_HALF_WIDTH + 3 * self.noise)).clamp(-1.0, 1.0)
        return TensorData(
            x=x, y=torch.as_tensor(labels, dtype=torch.long), num_classes=2,
            source=f"sklearn.datasets.make_moons(n_samples={self.samples}, noise={self.noise}, random_state={seed})",
            class_names=["upper moon", "lower moon"],
        )
