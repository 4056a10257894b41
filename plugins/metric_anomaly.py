"""``anomaly``: the discriminator as an anomaly detector (the seed article's use).

With ``--set dataset.exclude_class=C`` a labelled dataset drops class C from
its training split and keeps every class in its test split; the GAN never
sees C. The metric scores each test image by 1 − p_real(D(x)) and reports
``anomaly.auroc``: the area under the ROC curve separating class-C test images
(positives) from the other classes' test images (negatives); 0.5 is chance.
Registration only; torch is imported by the factory.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _anomaly(samples: int = 0) -> Any:
    from ganlab_plugins.metric_anomaly_impl import AnomalyMetric

    return AnomalyMetric(samples=samples)


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "anomaly", _anomaly,
        summary="AUROC of D's 1 - p_real separating the held-out class (dataset.exclude_class) from the rest",
        options={
            "samples": Option(int, 0, "test images scored per evaluation (0: the whole test split; otherwise a "
                              "fixed random subset)", min=0),
        },
    )
