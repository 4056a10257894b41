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


#: The head methods checked on one small batch of scores before training, and the shape each returns
#: for B samples of C classes (the real classes and fake).
HEAD_OUTPUTS = (("probs", "(B, C)"), ("p_real", "(B,)"), ("real_loss", "(B,)"), ("fake_loss", "(B,)"),
                ("loss", "(B,)"))


def head_outputs_problem(head: Any, num_logits: int, num_classes: int = 1, batch: int = 3) -> str | None:
    """What a head returns wrongly for ``batch`` samples of ``num_logits`` scores and ``num_classes``
    real classes (None: nothing); ``probs`` must be distributions over the real classes and fake.

    A per-sample loss of shape (B, 1) or a scalar where (B,) is due would broadcast into the
    objective's mean and train on silently; one call of each method on random scores finds it.
    """
    import torch

    scores = torch.randn(batch, num_logits, generator=torch.Generator().manual_seed(0))
    for method, shape in HEAD_OUTPUTS:
        args = (scores, torch.zeros(batch, dtype=torch.long)) if method == "loss" else (scores,)
        try:
            out = getattr(head, method)(*args)
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's method is the finding
            return f"{method}() failed on a ({batch}, {num_logits}) batch of scores: {type(exc).__name__}: {exc}"
        wanted = (batch, num_classes + 1) if method == "probs" else (batch,)
        if not isinstance(out, torch.Tensor):
            return f"{method}() returned {type(out).__name__}, not a tensor of shape {shape}"
        if tuple(out.shape) != wanted:
            return (f"{method}() returned shape {list(out.shape)} for {batch} samples of {num_logits} scores; it must "
                    f"return {shape} = {list(wanted)}" + ("" if method == "probs" else ", one value per sample"))
        if not bool(torch.isfinite(out).all()):
            return f"{method}() returned NaN or infinite values on finite scores"
        if method == "probs" and not (bool((out >= 0).all()) and torch.allclose(out.sum(-1), torch.ones(batch), atol=1e-4)):
            return "probs() must return distributions (each row >= 0, summing to 1)"
    return None


def check_head_outputs(name: str, plugin: str, head: Any, num_logits: int, num_classes: int = 1) -> None:
    """Refuse, in one line naming the head and its plugin, a head whose outputs break the contract."""
    problem = head_outputs_problem(head, num_logits, num_classes)
    if problem is not None:
        raise ComponentError(f"head '{name}' (plugin '{plugin}') breaks the head contract: {problem}")


def metric_values_problem(values: Any) -> str | None:
    """What is wrong with what a metric's ``evaluate`` returned (None: nothing): a dict of named real
    numbers (Python, NumPy or 0-d tensors), NaN meaning "undefined at this evaluation", and pictures
    (:class:`ganlab.Picture`, checked by :func:`ganlab.record.pictures.picture_problem`)."""
    import math
    import numbers

    from ganlab.record.pictures import Picture, picture_problem

    if values is None:
        return None
    if not isinstance(values, dict):
        return f"evaluate() returned {type(values).__name__}, not a dict of metric name -> number"
    for key, value in values.items():
        if isinstance(value, Picture):
            problem = picture_problem(key, value)
            if problem is not None:
                return f"evaluate() {problem}"
            continue
        if not isinstance(key, str) or not key:
            return f"evaluate() returned a value under {key!r}; metric names are non-empty strings"
        number = value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            return f"evaluate() returned {type(value).__name__} for '{key}', not a number or a ganlab.Picture"
        if math.isinf(float(number)):  # NaN is allowed: "undefined at this evaluation" (an AUROC of one class)
            return f"evaluate() returned {float(number)} for '{key}'"
    return None
