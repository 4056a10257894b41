"""Built-in metrics: head diagnostics, the mode-collapse metric, image metrics, anomaly detection.

Registration only: the factories are ``"module:attr"`` strings into the torch
modules of this package, imported when a run builds the metric.

* ``diagnostics``, logged at every evaluation of every run: what makes a comparison
  of output heads scientific (docs/heads.md, "Head diagnostics"): how sure D is on
  real and generated batches, how often the head saturates to exactly 0 or 1, its
  output entropy, and how much gradient the generator's loss still sends to the
  generated samples (:mod:`.diagnostics`); and two pictures of the same samples: the histograms of
  p_real and of the gradient norms, and on 2-D data D's field (:mod:`.head_pictures`, drawn by
  :mod:`.figures`).
* ``modes``, for the 2-D mixtures: the protocol of docs/heads.md, "Evaluation
  protocols" (VEEGAN, PacGAN and later papers): draw 2,500 generated samples; a
  sample is *high quality* (HQ) when it lies within 3σ of its nearest mode; a mode
  is *captured* when at least one HQ sample has it as nearest mode. Logged:
  ``modes.captured``, ``modes.hq_percent`` and ``modes.kl_uniform`` (see
  :mod:`.modes` for the exact definitions and the no-HQ convention). The sample
  count is this metric's own option, not the run's ``eval_samples``: the number of
  captured modes grows with the number of samples drawn, so the published protocol
  fixes it at 2,500, and 2,500 points in 2-D cost nothing.
* ``images``, for labelled image datasets: Fréchet LeNet distance, KID, class
  coverage and class KL, with their real-vs-real floors. No Inception weights can
  be downloaded here, so the feature space is that of a small CNN classifier ganlab
  trains once per dataset on its training split (docs/heads.md, "Evaluation
  protocols"); see :mod:`.images` for the exact protocol and
  :mod:`.images_classifier` for the network.
* ``inception``, for images with 1 or 3 channels: the numbers the GAN literature reports,
  FID, KID, Inception Score and precision/recall (Kynkäänniemi et al. 2019) on Inception-v3
  features, each computed by torch-fidelity's own extractor and functions. It needs the
  Inception weights (``GANLAB_INCEPTION_WEIGHTS``, or torch-fidelity's file in torch's hub
  cache); the real images' features are cached on disk per dataset, options, split and
  weights. Under ``metrics = "auto"`` it is used where the weights are at hand and the run is
  not on the CPU (``auto_on_cpu`` overrides that), otherwise left off with one line saying
  why; named in ``metrics`` without weights, the run is refused before it starts. Its
  protocol params (``inception.samples``, ``.reference``, ``.reference_samples``,
  ``.resize``, ``.weights``) are declared with ``protocol=``: ``ganlab compare`` refuses to
  average or test its numbers across runs that differ in them. See :mod:`.inception`.
* ``text``, for token sequences: how sparse G's per-position distributions are, n-gram JSD, BLEU-4
  and self-BLEU against held-out text, and NLL_oracle on the oracle dataset (:mod:`.text`).
* ``anomaly``: the discriminator as an anomaly detector (the seed article's use).
  With ``--set dataset.exclude_class=C`` a labelled dataset drops class C from its
  training split and keeps every class in its test split; the GAN never sees C.
  The metric scores each test image by 1 − p_real(D(x)) and reports
  ``anomaly.auroc``: the area under the ROC curve separating class-C test images
  (positives) from the other classes' test images (negatives); 0.5 is chance.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl
from ganlab_plugins.datasets import MIXTURES

_PACKAGE = "ganlab_plugins.metrics"
#: the ``inception`` metric's run params whose values define its protocol: ``ganlab compare`` never
#: averages or tests its numbers across runs that differ in one of them
INCEPTION_PROTOCOL = ("inception.samples", "inception.reference", "inception.reference_samples",
                      "inception.resize", "inception.weights")


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "diagnostics", f"{_PACKAGE}.diagnostics:HeadDiagnostics",
        summary="head diagnostics: p_real on real/fake, exact 0/1 outputs, entropy, G gradient norm",
        logs="diag",  # its metrics are diag.*, not diagnostics.* (a sweep's objective is checked against it)
        options={
            "samples": Option(int, 512, "real and generated samples per evaluation (capped by eval_samples)", min=1),
            "grad_samples": Option(int, 256, "generated samples for the generator-gradient norm", min=1),
            "field": Option(bool, True, "2-D samples: the picture 'field' (D's p_real over the plane, its exact 0 and "
                            "1 regions, the points and -grad of G's loss at the fakes) at each evaluation"),
            "field_resolution": Option(int, 64, "cells on a side of the field's grid", min=8, max=512),
            "histograms": Option(bool, True, "the picture 'head_histograms' (p_real on real and generated samples, "
                                 "||grad of G's loss||) at each evaluation"),
        },
    )
    register(
        "modes", f"{_PACKAGE}.modes:ModesMetric",
        summary="2-D mixtures: modes captured, % high-quality samples, KL(HQ mode histogram || uniform)",
        options={
            "samples": Option(int, 2500, "generated samples per evaluation (the protocol's 2500; "
                              "independent of eval_samples)", min=1),
            "hq_sigmas": Option(float, 3.0, "a sample is high quality within this many sigmas of its nearest mode",
                                min=0.0, min_exclusive=True),
        },
        datasets=tuple(MIXTURES),
        headline=("modes.captured", "modes.hq_percent"),
    )
    register(
        "images", f"{_PACKAGE}.images:ImageMetrics",
        summary="labelled images: Frechet LeNet distance, KID, class coverage and class KL, with real-vs-real floors",
        options={
            "samples": Option(int, 0, "samples per set (0: the run's eval_samples): generated samples and the "
                              "floor's training images capped by the training split, reference images by "
                              "the test split", min=0),
            "classifier_epochs": Option(int, 10, "epochs of the feature classifier's training (cached)", min=1),
            "kid_subsets": Option(int, 100, "random subsets KID averages over", min=1),
            "kid_subset_size": Option(int, 1000, "samples per KID subset (capped by the sample count)", min=2),
            "coverage_threshold": Option(float, 0.5, "a class is covered when it gets at least this fraction of "
                                         "its fair share 1/K of the predictions (0.5: from 1/(2K) of the samples; "
                                         "0: predicted at least once)", min=0.0, max=1.0),
        },
        headline=("images.fld", "images.kid"),
    )
    register(
        "inception", f"{_PACKAGE}.inception:InceptionMetrics",
        summary="images: Inception-v3 FID, KID, IS and precision/recall through torch-fidelity (needs its weights)",
        options={
            "samples": Option(int, 50_000, "generated samples per evaluation (the field's 50,000); the reference "
                              "takes as many images of its split, capped by the split's size", min=10),
            "reference": Option(str, "train", "the split the generated samples are compared with",
                                choices=("train", "test")),
            "kid_subsets": Option(int, 100, "random subsets KID averages over", min=1),
            "kid_subset_size": Option(int, 1000, "samples per KID subset (capped by both sample counts)", min=2),
            "pr_neighbours": Option(int, 3, "k of precision/recall's k-nearest-neighbour balls", min=1),
            "is_splits": Option(int, 10, "splits the Inception Score is averaged over (each estimates p(y) "
                                "from its own samples)", min=1),
            "auto_on_cpu": Option(bool, False, "with metrics='auto', use it on a CPU run too (each evaluation "
                                  "passes every sample through Inception-v3: lower samples first)"),
        },
        protocol=INCEPTION_PROTOCOL,
        headline=("inception.fid", "inception.is"),  # the published tables' columns
    )
    register(
        "text", f"{_PACKAGE}.text:TextMetrics",
        summary="token sequences: exact one-hot share and non-zeros per position, n-gram JSD (n=1..4), BLEU-4, "
                "self-BLEU; NLL_oracle on the oracle dataset",
        options={
            "samples": Option(int, 1000, "generated sequences per evaluation", min=2),
            "references": Option(int, 2000, "held-out sequences BLEU and the n-gram JSD compare against (a fixed "
                                 "random subset)", min=1),
            "self_bleu_samples": Option(int, 250, "samples scored against all others for self-BLEU", min=1),
        },
    )
    register(
        "anomaly", f"{_PACKAGE}.anomaly:AnomalyMetric",
        summary="AUROC of D's 1 - p_real separating the held-out class (dataset.exclude_class) from the rest",
        options={
            "samples": Option(int, 0, "test images scored per evaluation (0: the whole test split; otherwise a "
                              "fixed random subset)", min=0),
        },
    )
