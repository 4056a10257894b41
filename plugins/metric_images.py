"""``images``: Fréchet LeNet distance, KID, class coverage and class KL for
labelled image datasets (digits, MNIST, Fashion-MNIST, CIFAR-10, or any
dataset giving labels and a test split), with their real-vs-real floors.

No Inception weights can be downloaded here, so the feature space is that of
a small CNN classifier ganlab trains once per dataset on its training split
(SCIENCE.md §5); see :mod:`ganlab_plugins.metric_images_impl` for the exact
protocol and :mod:`ganlab_plugins.metric_images_classifier` for the network.
Registration only; torch is imported by the factory.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _images(samples: int = 0, classifier_epochs: int = 10, kid_subsets: int = 100, kid_subset_size: int = 1000,
            coverage_threshold: float = 0.1) -> Any:
    from ganlab_plugins.metric_images_impl import ImageMetrics

    return ImageMetrics(samples=samples, classifier_epochs=classifier_epochs, kid_subsets=kid_subsets,
                        kid_subset_size=kid_subset_size, coverage_threshold=coverage_threshold)


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "images", _images,
        summary="labelled images: Frechet LeNet distance, KID, class coverage and class KL, with real-vs-real floors",
        options={
            "samples": Option(int, 0, "generated and real samples per set (0: the run's eval_samples); "
                              "capped by the sizes of the test and training splits", min=0),
            "classifier_epochs": Option(int, 10, "epochs of the feature classifier's training (cached)", min=1),
            "kid_subsets": Option(int, 100, "random subsets KID averages over", min=1),
            "kid_subset_size": Option(int, 1000, "samples per KID subset (capped by the sample count)", min=2),
            "coverage_threshold": Option(float, 0.1, "a class is covered when it gets at least this fraction of "
                                         "its uniform share of predictions (0: predicted at least once)",
                                         min=0.0, max=1.0),
        },
    )
