"""What each kind of component must provide, checked when a factory returns.

The contracts are duck-typed so that plugins need not inherit from anything;
a factory that returns the wrong thing is refused with a message naming the
missing methods instead of failing deep inside the training loop.
"""

from __future__ import annotations

from typing import Any

from ganlab.errors import ComponentError

REQUIRED: dict[str, tuple[str, ...]] = {
    # build(data_shape, latent_dim, num_logits) -> (G, D)
    "architecture": ("build",),
    # num_logits(num_classes), probs(logits), p_real(logits), per-sample proper losses
    "head": ("num_logits", "probs", "p_real", "real_loss", "fake_loss", "loss"),
    # d_loss(head, real_logits, fake_logits, real_labels), g_loss(head, fake_logits)
    "loss": ("d_loss", "g_loss"),
    # load(DataRequest) -> TensorData | StreamingData
    "dataset": ("load",),
    # applies_to(run_context), evaluate(EvalContext) -> dict[str, float]
    "metric": ("applies_to", "evaluate"),
}


def check_contract(kind: str, name: str, plugin: str, made: Any) -> Any:
    missing = [attr for attr in REQUIRED.get(kind, ()) if not callable(getattr(made, attr, None))]
    if missing:
        raise ComponentError(
            f"{kind} '{name}' (plugin '{plugin}') returned a {type(made).__name__} without "
            f"{', '.join(missing)}; a {kind} must provide {', '.join(REQUIRED[kind])}"
        )
    return made
