"""Head diagnostics, logged at every evaluation of every run.

What makes a comparison of output heads scientific (SCIENCE.md §5): how sure D
is on real and generated batches, how often the head saturates to exactly 0 or
1, its output entropy, and how much gradient the generator's loss still sends
to the generated samples. Registration only; torch is imported by the factory.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _diagnostics(samples: int = 512, grad_samples: int = 256) -> Any:
    from ganlab_plugins.metric_diagnostics_impl import HeadDiagnostics

    return HeadDiagnostics(samples, grad_samples)


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "diagnostics", _diagnostics,
        summary="head diagnostics: p_real on real/fake, exact 0/1 outputs, entropy, G gradient norm",
        options={
            "samples": Option(int, 512, "real and generated samples per evaluation (capped by eval_samples)", min=1),
            "grad_samples": Option(int, 256, "generated samples for the generator-gradient norm", min=1),
        },
    )
