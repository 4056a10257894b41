"""The ``anomaly`` metric (torch code); registered in :mod:`ganlab_plugins.metrics`."""

from __future__ import annotations

from typing import Any

import torch

from ganlab.errors import GanlabError
from ganlab_plugins.metrics.stats import auroc

SUBSET_SEED = 0


def excluded_class(config: Any) -> int:
    """The dataset's ``exclude_class`` option (-1 when absent or none)."""
    if config is None:
        return -1
    value = config.options_of("dataset").get("exclude_class", -1)
    return -1 if value is None else int(value)


def _tensor_data(data: Any) -> Any:
    return data if hasattr(data, "x") else getattr(data, "preview", None)


class AnomalyMetric:
    def __init__(self, samples: int = 0) -> None:
        self.samples = int(samples)
        self._checked: Any = None

    def applies_to(self, run: Any) -> bool:
        cls = excluded_class(run.config)
        if cls < 0:
            return False
        if int(run.config.settings.get("pack", 1)) > 1:
            return False  # a packed D scores packs of images: no score of one test image to rank
        if getattr(run, "conditioning", None) is not None and run.conditioning.discriminator:
            return False  # a conditional D scores an image given a class: no label-free score to rank by
        data = _tensor_data(run.data)
        if data is None or getattr(data, "test_y", None) is None or getattr(data, "y", None) is None:
            return False
        self.check(data, cls, run.config.name_of("dataset"))
        return True

    def check(self, data: Any, cls: int, dataset: str) -> None:
        """The contract the metric relies on: class C absent from training, present in test with other classes."""
        if bool((data.y == cls).any()):
            raise GanlabError(f"dataset '{dataset}' kept class {cls} in its training split despite "
                              f"exclude_class={cls}: the anomaly metric would measure nothing")
        test_y = data.test_y
        if not bool((test_y == cls).any()) or bool((test_y == cls).all()):
            raise GanlabError(f"dataset '{dataset}': the test split needs images of class {cls} and of other "
                              f"classes for the anomaly metric")

    def evaluate(self, ctx: Any) -> dict[str, float]:
        cls = excluded_class(ctx.config)
        data = _tensor_data(ctx.data)
        if self._checked is not data:
            self.check(data, cls, ctx.dataset_name)
            self._checked = data
        x, y = data.test_x, data.test_y.cpu()
        if 0 < self.samples < len(y):
            gen = torch.Generator().manual_seed(SUBSET_SEED)
            idx = torch.randperm(len(y), generator=gen)[: self.samples]
            x, y = x[idx.to(x.device)], y[idx]
        positive = y == cls
        if not bool(positive.any()) or bool(positive.all()):
            raise GanlabError(f"anomaly.samples={self.samples} leaves no image of class {cls} or none of the others; "
                              f"use more samples (0: the whole test split)")
        score = 1.0 - ctx.head.p_real(ctx.discriminate(x)).float().cpu()
        ctx.params.update({
            "anomaly.class": cls,
            "anomaly.positives": int(positive.sum()),
            "anomaly.negatives": int((~positive).sum()),
            "anomaly.split": "test",
            "anomaly.score": "1 - p_real(D(x))",
        })
        if not bool(torch.isfinite(score).all()):
            return {"anomaly.auroc": float("nan")}
        return {"anomaly.auroc": auroc(score, positive)}
