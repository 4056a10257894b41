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
    # load(DataRequest) -> TensorData | StreamingData
    "dataset": ("load",),
    # applies_to(run_context), evaluate(EvalContext) -> dict[str, float]
    "metric": ("applies_to", "evaluate"),
    # augment(x, generator) -> x'
    "augmentation": ("augment",),
    # build(params, lr, config) -> torch.optim.Optimizer
    "optimizer": ("build",),
    # sample(n, latent_dim, device, generator=None) -> (n, latent_dim)
    "latent": ("sample",),
}

#: kinds that need one of several sets of methods: the first set the object has is its contract
ALTERNATIVES: dict[str, tuple[tuple[str, ...], ...]] = {
    "loss": (("d_loss", "g_loss"), ("discriminator_loss", "generator_loss")),
    # penalty(step) -> Tensor; after_d_step(discriminator)
    "regularizer": (("penalty",), ("after_d_step",)),
}


def _lacks(made: Any, attrs: tuple[str, ...]) -> list[str]:
    return [attr for attr in attrs if not callable(getattr(made, attr, None))]


def check_contract(kind: str, name: str, plugin: str, made: Any) -> Any:
    if kind in ALTERNATIVES:
        options = ALTERNATIVES[kind]
        if all(_lacks(made, attrs) for attrs in options):
            wanted = " or ".join(" and ".join(attrs) for attrs in options)
            raise ComponentError(
                f"{kind} '{name}' (plugin '{plugin}') returned a {type(made).__name__} without "
                f"{wanted}; a {kind} must provide {wanted}"
            )
        return made
    missing = _lacks(made, REQUIRED.get(kind, ()))
    if missing:
        raise ComponentError(
            f"{kind} '{name}' (plugin '{plugin}') returned a {type(made).__name__} without "
            f"{', '.join(missing)}; a {kind} must provide {', '.join(REQUIRED[kind])}"
        )
    return made
