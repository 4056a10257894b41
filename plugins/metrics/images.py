"""The ``images`` metric (torch code); registered in :mod:`ganlab_plugins.metrics`.

Protocol, fixed per run and logged as ``images.*`` params (docs/heads.md,
"Evaluation protocols"):

* classes R: the labels present in the training split (all classes, or all but
  ``exclude_class``); the generator is asked to model those, so the reference
  and every prediction are restricted to R;
* sample counts: ``samples`` (or the run's ``eval_samples``) asked for; n =
  min(asked, training images) generated samples per evaluation, and m =
  min(asked, test images of R) reference images. The generated count is not
  capped by the test split: on a small data set (digits: 360 test images) that
  cap made every evaluation draw 360 samples, and the Fréchet distance of 360
  samples in 128 dimensions varies by ±0.2 from draw to draw, as much as the
  differences it should rank;
* reference: the m test-split images of R, chosen with a fixed seed, the same
  at every evaluation and in every run on the dataset;
* model: n generated samples (the evaluation's seeded noise stream) against
  the reference; floor (``*_real``): n training images against the same
  reference, i.e. what a generator reproducing its training set would score
  with as many samples; with n equal to the whole training split (digits) the
  floor has no subset noise at all;
* features: the 128-d penultimate layer of the cached classifier; predictions:
  its argmax over R;
* ``images.fld``: Fréchet distance of Gaussians fitted to the features;
  ``images.kid``: mean unbiased MMD² with kernel (x·y/d + 1)³ over random
  subsets of min(``kid_subset_size``, n, m) (Bińkowski et al. 2018,
  arXiv:1801.01401);
* ``images.coverage``: fraction of R whose share of the predictions is at least
  ``coverage_threshold`` times its fair share 1/|R| (default 0.5: a class counts
  from 1/(2|R|) of the samples, 5 % on ten classes; see :func:`coverage`);
  ``images.class_kl``: KL(predicted class histogram ‖ uniform over R) in nats;
* conditional generators: the n samples are generated for balanced classes (0, 1, …, K − 1, 0, …),
  and ``images.cond_accuracy`` is the share of those asked for a class c in R that the classifier
  labels c (chance: 1/|R|), beside ``images.classifier_test_accuracy``, its ceiling on real images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ganlab.config import SETTINGS
from ganlab_plugins.metrics import images_classifier as clf
from ganlab_plugins.metrics.stats import frechet_distance, kernel_inception_distance, kl_to_uniform, mean_cov

#: seed of the reference and floor subsets: the same images for every run on a dataset
SUBSET_SEED = 0
CLASSIFIER_SEED = 0


def labelled_images(data: Any) -> Any:
    """The TensorData (or a StreamingData's preview) if it has labels, a test split and image shape, else None."""
    if data is None:
        return None
    if not hasattr(data, "x"):
        data = getattr(data, "preview", None)
    if data is None or getattr(data, "y", None) is None:
        return None
    if getattr(data, "test_x", None) is None or getattr(data, "test_y", None) is None:
        return None
    if len(data.x.shape) != 4 or int(getattr(data, "num_classes", 0)) < 2:
        return None
    return data


def class_histogram(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Counts (|R|,) of argmax predictions over the classes R (``classes``, sorted label values)."""
    pred = logits[:, classes].argmax(dim=1)
    return torch.bincount(pred, minlength=len(classes))


#: a class counts as covered from this fraction of its fair share 1/K of the predictions
COVERAGE_THRESHOLD = 0.5


def coverage(counts: torch.Tensor, threshold: float = COVERAGE_THRESHOLD) -> float:
    """Fraction of the K classes with count > 0 and count / Σ counts ≥ threshold / K.

    Why half the fair share by default rather than "predicted at least once": the
    classifier labels every generated image, blurred blobs included, so a class
    the generator has dropped still collects the misclassified samples of the
    others; one such sample per class would make every class covered. On real
    data every class sits near its fair share (digits: 10 % each; with 1,437
    samples a class's share varies by ±0.8 points), so half of it (5 %) is
    six standard deviations away and counts every class of a real set, while a
    class the generator produces at under half the data's rate has lost most of
    its mass and does not count. Threshold 0 restores "predicted at least once".
    """
    counts = counts.to(torch.float64)
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    covered = (counts > 0) & (counts / total >= threshold / len(counts))
    return float(covered.to(torch.float64).mean())


@dataclass
class _Reference:
    """What stays fixed through a run: classifier, classes, generated sample count n, reference
    features (m of them), floors."""

    classifier: clf.TrainedClassifier
    classes: torch.Tensor
    n: int
    ref_feats: torch.Tensor
    floor: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ref_feats = self.ref_feats.to(torch.float64)
        self.ref_mean, self.ref_cov = mean_cov(self.ref_feats)


class ImageMetrics:
    """``images.*`` metrics; the classifier and the reference statistics are computed at the
    first evaluation and kept for the rest of the run."""

    def __init__(self, samples: int = 0, classifier_epochs: int = 10, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, coverage_threshold: float = COVERAGE_THRESHOLD) -> None:
        self.samples = int(samples)
        self.classifier_epochs = int(classifier_epochs)
        self.kid_subsets = int(kid_subsets)
        self.kid_subset_size = int(kid_subset_size)
        self.coverage_threshold = float(coverage_threshold)
        self._ref: _Reference | None = None
        self._ref_key: Any = None

    def applies_to(self, run: Any) -> bool:
        return labelled_images(run.data) is not None

    # ---- the fixed part ---------------------------------------------------
    def _requested(self, ctx: Any) -> int:
        if self.samples > 0:
            return self.samples
        if ctx.config is not None:
            return int(ctx.config.eval_samples)
        return int(SETTINGS["eval_samples"].default)

    def _stats(self, feats: torch.Tensor, logits: torch.Tensor, ref: _Reference) -> dict[str, float]:
        if not bool(torch.isfinite(feats).all()):
            # a diverging generator: report NaN rather than fail the run inside a matrix square root
            return dict.fromkeys(("fld", "kid", "coverage", "class_kl"), float("nan"))
        counts = class_histogram(logits, ref.classes)
        return {
            "fld": frechet_distance(*mean_cov(feats), ref.ref_mean, ref.ref_cov),
            "kid": kernel_inception_distance(feats, ref.ref_feats, self.kid_subsets, self.kid_subset_size,
                                             seed=SUBSET_SEED),
            "coverage": coverage(counts, self.coverage_threshold),
            "class_kl": kl_to_uniform(counts),
        }

    def reference(self, ctx: Any) -> _Reference:
        data = labelled_images(ctx.data)
        if data is None:
            raise ValueError("the images metric needs labelled image data with a test split")
        key = (id(data), self._requested(ctx))
        if self._ref is not None and self._ref_key == key:
            return self._ref
        train_y, test_y = data.y.cpu(), data.test_y.cpu()
        classes = torch.unique(train_y)  # sorted
        test_idx = torch.nonzero(torch.isin(test_y, classes)).flatten()
        requested = self._requested(ctx)
        # generated and floor samples are capped by the training split only, the reference by the
        # test split: the two sizes need not match (module docstring)
        n, m = min(requested, len(train_y)), min(requested, len(test_idx))
        if min(n, m) < 2 or len(classes) < 2:
            raise ValueError(f"the images metric needs >= 2 classes and >= 2 images per split "
                             f"(classes {len(classes)}, test images {len(test_idx)}, training images {len(train_y)})")
        options = ctx.config.options_of("dataset") if ctx.config is not None else {}
        classifier = clf.load_or_train(ctx.cache_dir, ctx.dataset_name, options, data, classes,
                                       self.classifier_epochs, CLASSIFIER_SEED, ctx.device)
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        ref_idx = test_idx[torch.randperm(len(test_idx), generator=gen)[:m]]
        train_idx = torch.randperm(len(train_y), generator=gen)[:n]
        ref_feats, _ = classifier.features_and_logits(data.test_x[ref_idx.to(data.test_x.device)], ctx.device)
        floor_feats, floor_logits = classifier.features_and_logits(data.x[train_idx.to(data.x.device)], ctx.device)
        ref = _Reference(classifier, classes, n, ref_feats)
        ref.floor = {f"images.{k}_real": v for k, v in self._stats(floor_feats, floor_logits, ref).items()}
        kid_size = min(self.kid_subset_size, n, m)
        ref.params = {
            "images.samples": n,
            "images.reference_samples": m,
            "images.reference": f"{m} test-split images of the {len(classes)} training classes (seed {SUBSET_SEED})",
            "images.floor": f"{n} training-split images vs the same reference",
            "images.feature_extractor": clf.ARCH,
            "images.feature_dim": clf.FEATURE_DIM,
            "images.classifier_test_accuracy": round(classifier.test_accuracy, 4),
            "images.classifier_epochs": self.classifier_epochs,
            "images.classifier_train_images": len(train_y),
            "images.kid": (f"unbiased MMD^2, kernel (x.y/d+1)^3, "
                           f"{1 if kid_size == n == m else self.kid_subsets} subsets of {kid_size}"),
            "images.coverage_threshold": self.coverage_threshold,
        }
        self._ref, self._ref_key = ref, key
        return ref

    # ---- per evaluation ---------------------------------------------------
    def evaluate(self, ctx: Any) -> dict[str, float]:
        ref = self.reference(ctx)
        ctx.params.update(ref.params)
        conditioning = getattr(ctx, "conditioning", None)
        if conditioning is not None and conditioning.generator:
            samples, asked = ctx.generate_labelled(ref.n)
        else:
            samples, asked = ctx.generate(ref.n), None
        feats, logits = ref.classifier.features_and_logits(samples, ctx.device)
        out = {f"images.{k}": v for k, v in self._stats(feats, logits, ref).items()}
        if asked is not None:
            out["images.cond_accuracy"] = conditional_accuracy(logits, ref.classes, asked)
        out.update(ref.floor)
        return out


def conditional_accuracy(logits: torch.Tensor, classes: torch.Tensor, asked: torch.Tensor) -> float:
    """The share of samples asked for a class among ``classes`` (the training split's label values) that the
    classifier, choosing among those classes as :func:`class_histogram` does, assigns to it."""
    asked, classes, logits = asked.cpu(), classes.cpu(), logits.cpu()
    predicted = classes[logits[:, classes].argmax(dim=1)]
    known = torch.isin(asked, classes)
    if not bool(known.any()):
        return float("nan")
    return float((predicted[known] == asked[known]).float().mean())
