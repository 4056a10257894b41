"""The ``inception`` metric: FID, KID, IS and precision/recall on Inception-v3 features, as the
GAN literature reports them; registered in :mod:`ganlab_plugins.metrics`.

Every step that makes the numbers is torch-fidelity's own code (its extractor and its metric
functions), so they are the numbers torch-fidelity, and ``torchmetrics`` (which uses
torch-fidelity's extractor), give for the same images. Protocol (docs/heads.md, "Evaluation
protocols", "Inception metrics"), logged as ``inception.*`` run params:

* **images**: generated and real images alike become uint8 RGB by the rule of
  :mod:`.inception_features` (round((x + 1)·127.5), greyscale repeated to 3 channels), and
  torch-fidelity resizes them to 299×299 with its TensorFlow-1 bilinear rule
  (``inception.resize``);
* **samples**: n = ``samples`` (50,000 by default) generated per evaluation, from the
  evaluation's seeded noise stream; the reference is m = min(n, split size) images of the
  ``reference`` split (``train`` by default) (:mod:`.inception_reference`), whose features
  are cached on disk, so an evaluation costs only the n generated samples;
* **weights**: a checked file (:mod:`.inception_weights`), recorded by its hash
  (``inception.weights``);
* ``inception.fid``: FID of the generated pool features against the reference's statistics;
  ``inception.kid`` (± ``kid_std``): KID over ``kid_subsets`` subsets of
  min(``kid_subset_size``, n, m); ``inception.is`` (± ``is_std``): the Inception Score over
  ``is_splits`` (10) splits, with ``inception.is_real`` the reference images' own; ``inception.precision`` and
  ``inception.recall`` with k = ``pr_neighbours`` (:mod:`.inception_scores`).

When it applies: to image data with 1 or 3 channels, with the weights at hand. Under
``metrics = "auto"`` a run on the CPU leaves it off unless ``auto_on_cpu`` is set (50,000
Inception-v3 passes per evaluation take hours on a CPU: a digits run that took seconds would
take hours), and a run without the weights leaves it off; either way with one line saying why.
Named in ``metrics``, it is used on any device, and missing weights are refused before the
run starts, in one line naming the variable to set and the file to fetch.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ganlab.errors import ConfigError
from ganlab_plugins.metrics import inception_features as feats
from ganlab_plugins.metrics import inception_reference as refs
from ganlab_plugins.metrics import inception_scores as scores
from ganlab_plugins.metrics import inception_weights as weights

KEYS = ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall")
#: (data, reason) pairs whose note this process has printed
_NOTED: set[tuple[int, str]] = set()


def image_channels(shape: tuple[int, ...]) -> int | None:
    """The channel count of (C, H, W) image samples, None for any other shape."""
    return int(shape[0]) if len(shape) == 3 else None


class InceptionMetrics:
    """``inception.*``; the extractor and the reference are made at the first evaluation and kept."""

    def __init__(self, samples: int = 50_000, reference: str = "train", kid_subsets: int = 100,
                 kid_subset_size: int = 1000, pr_neighbours: int = 3, is_splits: int = scores.IS_SPLITS,
                 auto_on_cpu: bool = False) -> None:
        self.samples = int(samples)
        self.split = str(reference)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.pr_neighbours = int(pr_neighbours)
        self.is_splits = int(is_splits)
        self.auto_on_cpu = bool(auto_on_cpu)
        if max(self.pr_neighbours + 1, self.is_splits) > self.samples:
            raise ConfigError(f"metric.inception.samples = {self.samples} is too few for pr_neighbours = "
                              f"{self.pr_neighbours} and is_splits = {self.is_splits} (it needs at least "
                              f"{max(self.pr_neighbours + 1, self.is_splits)})")
        self.weights: weights.Weights | None = None
        self._extractor: feats.Extractor | None = None
        self._reference: refs.Reference | None = None
        self._reference_key: Any = None
        self._params: dict[str, Any] = {}

    # ---- does it apply ------------------------------------------------------
    def applies_to(self, run: Any) -> bool:
        """Images with 1 or 3 channels and the weights at hand (see the module docstring).

        Under ``auto`` a reason to leave it off is one ``ganlab: note:`` line; named in
        ``metrics``, a missing piece is a ConfigError, raised before the run's record exists.
        """
        config = getattr(run, "config", None)
        named = config is not None and config.metric_names is not None
        channels = image_channels(tuple(run.data_shape))
        if channels is None:
            return False  # not images (points, token sequences): nothing to say
        if channels not in feats.CHANNELS:
            return self._off(run, named, f"{channels}-channel images have no Inception-v3 input (it takes 1 or 3)")
        if refs.real_images(run.data, self.split) is None:
            raise ConfigError(f"metric.inception.reference = '{self.split}', but dataset "
                              f"'{config.name_of('dataset') if config else '?'}' has no {self.split} split")
        if not named and not self.auto_on_cpu and torch.device(run.device).type == "cpu":
            return self._off(run, False, f"the run is on the CPU, where {self.samples} Inception-v3 passes per "
                                    "evaluation take hours; set metric.inception.auto_on_cpu=true (and a smaller "
                                    "metric.inception.samples) or name it in --set metrics=...")
        found = weights.find(download=bool(config.download) if config is not None else False)
        if found is None:
            return self._off(run, named, f"no Inception-v3 weights; {weights.how_to_get()}")
        self.weights = found
        return True

    @staticmethod
    def _off(run: Any, named: bool, why: str) -> bool:
        if named:
            raise ConfigError(f"metric 'inception' cannot run: {why}")
        # the replicas of a population each ask, about the same data: the note is said once for it
        said = (id(getattr(run, "data", None)), why)
        if said not in _NOTED:
            _NOTED.add(said)
            print(f"ganlab: note: inception metrics off: {why}", file=sys.stderr)
        return False

    # ---- the fixed part -------------------------------------------------------
    def reference(self, ctx: Any) -> refs.Reference:
        """The extractor and the reference, made (or read from the cache) at the first evaluation."""
        data = ctx.run.data if getattr(ctx, "run", None) is not None else ctx.data
        key = (id(data), ctx.dataset_name)
        if self._reference is not None and self._reference_key == key:
            return self._reference
        if self.weights is None:  # evaluated without applies_to (a test, a plugin's own loop)
            self.weights = weights.find(download=False)
            if self.weights is None:
                raise ConfigError(f"metric 'inception' cannot run: no Inception-v3 weights; {weights.how_to_get()}")
        images = refs.real_images(data, self.split)
        if images is None:
            raise ConfigError(f"metric.inception.reference = '{self.split}', but dataset '{ctx.dataset_name}' "
                              f"has no {self.split} split")
        m = refs.reference_size(images, self.samples, self.pr_neighbours)
        rows = refs.chosen(images, m)
        options = ctx.config.options_of("dataset") if ctx.config is not None else {}
        path = refs.cache_path(ctx.cache_dir, ctx.dataset_name, options, images, rows, self.weights.sha256,
                               self.is_splits)
        if self._extractor is None:
            self._extractor = feats.Extractor(self.weights.path, ctx.device)
        reference = refs.load(path) or refs.compute(path, self._extractor, images, rows, self._inception_score)
        self._reference, self._reference_key = reference, key
        self._params = self.protocol(reference)
        return reference

    def protocol(self, reference: refs.Reference) -> dict[str, Any]:
        import torch_fidelity

        return {
            "inception.samples": self.samples,
            "inception.reference": self.split,
            "inception.reference_samples": reference.count,
            "inception.resize": feats.RESIZE,
            "inception.weights": self.weights.digest if self.weights else "",
            "inception.input": feats.INPUT_RULE,
            "inception.features": "pool3 2048-d (FID, KID, precision/recall); logits_unbiased 1008-d (IS)",
            "inception.kid": (f"unbiased MMD^2, kernel (x.y/d+1)^3, {self.kid_subsets} subsets of "
                              f"{self._kid_size(reference)}"),
            "inception.is_splits": self.is_splits,
            "inception.pr_k": self.pr_neighbours,
            "inception.library": f"torch-fidelity {torch_fidelity.__version__}",
        }

    def _inception_score(self, logits: torch.Tensor) -> tuple[float, float]:
        return scores.inception_score(logits, self.is_splits)

    def _kid_size(self, reference: refs.Reference) -> int:
        return min(self.kid_subset_size, self.samples, reference.count)

    # ---- per evaluation -------------------------------------------------------
    def evaluate(self, ctx: Any) -> dict[str, float]:
        reference = self.reference(ctx)
        ctx.params.update(self._params)
        assert self._extractor is not None
        batch = feats.batch_size(self._extractor.device)
        pools, logits = [], []
        for start in range(0, self.samples, batch):
            x = ctx.generate(min(batch, self.samples - start))
            if not bool(torch.isfinite(x).all()):
                # a diverging generator: report NaN rather than score clamped garbage
                return {**dict.fromkeys((f"inception.{k}" for k in KEYS), float("nan")),
                        "inception.is_real": reference.inception_score[0]}
            pool, logit = self._extractor.features([x])
            pools.append(pool)
            logits.append(logit)
        return self.scores(torch.cat(pools), torch.cat(logits), reference)

    def scores(self, pool: torch.Tensor, logits: torch.Tensor, reference: refs.Reference) -> dict[str, float]:
        """``inception.*`` of generated features ``pool`` (n, 2048) and ``logits`` (n, 1008)."""
        kid_mean, kid_std = scores.kid(pool, reference.features, self.kid_subsets, self._kid_size(reference))
        is_mean, is_std = self._inception_score(logits)
        device = self._extractor.device if self._extractor is not None else "cpu"
        precision, recall = scores.precision_recall(pool, reference.features, self.pr_neighbours, device)
        return {
            "inception.fid": scores.fid(pool, reference.mu, reference.sigma),
            "inception.kid": kid_mean, "inception.kid_std": kid_std,
            "inception.is": is_mean, "inception.is_std": is_std,
            "inception.is_real": reference.inception_score[0],
            "inception.precision": precision, "inception.recall": recall,
        }
