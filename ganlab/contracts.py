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
    # discriminator_loss(step), generator_loss(step) on ganlab.train.step.Step (hookspec 2.0)
    "loss": ("discriminator_loss", "generator_loss"),
}

#: kinds that need one of several sets of methods: the first set the object has is its contract
ALTERNATIVES: dict[str, tuple[tuple[str, ...], ...]] = {
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
    if kind == "loss" and missing and not _lacks(made, ("d_loss", "g_loss")):
        raise ComponentError(
            f"loss '{name}' (plugin '{plugin}') is written for the objective contract of hookspec 1.x, which "
            "ganlab 2.0 no longer calls: rename d_loss(head, real_logits, fake_logits, real_labels) to "
            "discriminator_loss(step) and g_loss(head, fake_logits) to generator_loss(step), reading "
            "step.head, step.scores(step.real), step.scores(step.fake) and step.real_labels, and reducing "
            "with step.mean (docs/plugins.md, \"Objectives\")")
    if missing:
        raise ComponentError(
            f"{kind} '{name}' (plugin '{plugin}') returned a {type(made).__name__} without "
            f"{', '.join(missing)}; a {kind} must provide {', '.join(REQUIRED[kind])}"
        )
    return made


def dataset_data_problem(data: Any) -> str | None:
    """What breaks the contract of the data a dataset's ``load`` returned (see :func:`ganlab.data.data_problem`).

    A StreamingData's samples are read later, in DataLoader workers: its class count and its preview are
    what can be checked when it loads.
    """
    from ganlab.data import StreamingData, TensorData, data_problem

    if isinstance(data, StreamingData):
        classes = data.num_classes
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
            return f"num_classes must be an integer >= 0, not {classes!r}"
        return None if data.preview is None else data_problem(data.preview)
    return data_problem(data) if isinstance(data, TensorData) else None


def check_dataset_data(name: str, plugin: str, data: Any) -> Any:
    """Refuse data that breaks the dataset contract in one line naming the dataset and its plugin.

    The engine calls this on every dataset's data, built-in or third-party, when it loads: before any
    network is built or any MLflow run exists, so bad data is bad input, not a FAILED run.
    """
    problem = dataset_data_problem(data)
    if problem is not None:
        raise ComponentError(f"dataset '{name}' (plugin '{plugin}') returned data that breaks the dataset "
                             f"contract: {problem}")
    return data
