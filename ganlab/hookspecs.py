"""Every hook a ganlab plugin can implement.

Component hooks receive ``register``: call it once per component,

    register(name, factory, summary="one line", options={"alpha": Option(float, 1.5)})

``factory(**resolved_options)`` is called only when a run uses the component,
so a plugin module should import torch inside its factories: listing plugins
and components stays fast.

Lifecycle hooks receive a :class:`ganlab.context.RunContext` first. Arguments
may be added to a hook in later versions; a hookimpl may accept any subset of
a spec's arguments, so plugins written today keep working (docs/compatibility.md;
the reference docs/hooks.md is generated from this module's docstrings by tools/hooks_doc.py).

This module must import nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ganlab import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import typer

    from ganlab.context import RunContext


class Register(Protocol):
    """The callable a component hook receives."""

    def __call__(
        self,
        name: str,
        factory: Any,
        summary: str = "",
        options: dict[str, Any] | None = None,
        **metadata: Any,
    ) -> None: ...


@hookspec
def register_architectures(register: Register) -> None:
    """Register network families.

    The factory returns an object with ``build(data_shape, latent_dim, num_logits)
    -> (generator, discriminator)``: G maps (B, latent_dim) to (B, *data_shape),
    D maps (B, *data_shape) to raw scores (B, num_logits). ``build`` raises
    :class:`ganlab.errors.ComponentError` for a data shape it cannot serve.

    Class-conditional architectures (since 1.4) set ``conditional = True``: their ``build``
    also receives ``num_classes`` (keyword), G is called as ``G(z, y)`` and D as ``D(x, y)``
    (``conditional_discriminator = False``: ``D(x)``), ``y`` a (B,) tensor of class indices.
    """


@hookspec
def register_heads(register: Register) -> None:
    """Register discriminator output heads.

    The factory returns an object with ``num_logits(num_classes)``,
    ``probs(logits)`` (B, C) in float32 (real classes first, fake last),
    ``p_real(logits)`` (B,), and per-sample proper losses ``real_loss(logits)``,
    ``fake_loss(logits)`` and ``loss(logits, target)``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register GAN objectives.

    The factory returns an object with ``discriminator_loss(step)`` and ``generator_loss(step)``,
    written on the step object (:class:`ganlab.train.step.Step`: the batch, the noise, the fakes,
    D, ``step.head``, cached ``step.scores(x)``); in a conditional run ``step.fake_labels`` are the
    classes the fakes were generated for. (The 1.x contract, ``d_loss``/``g_loss`` on scores, is
    refused since hookspec 2.0, in one line saying what to rename.) Declaring ``vectorisable =
    True`` lets a population stack it: its terms then reduce with ``step.mean``/``step.batch_mean``
    and it keeps no state of its own per run.

    It may return a tensor or a dict of named terms (summed; each logged as
    ``loss.d.NAME`` / ``loss.g.NAME``). Optional: ``num_classes(data) -> int`` (real
    classes D must tell apart; 1 unless semi-supervised), ``check(head_name,
    head, data)`` raising ComponentError for a combination that cannot work,
    ``setup(run: RunContext)`` called once the networks exist, and the declarations
    ``needs_conditional_generator`` / ``predicts_classes`` (refuse an unconditional G / a D given
    the classes it should predict, as AC-GAN does), ``use_latent(name, latent)`` (the run's latent
    component) and ``auxiliary_network(feature_dim) -> nn.Module`` (a network on D's
    ``features(x)`` trained with D and checkpointed: InfoGAN's Q; ``step.auxiliary``).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets.

    The factory returns an object with ``load(request) -> ganlab.data.TensorData``
    (samples scaled to [-1, 1]) or ``ganlab.data.StreamingData`` for data too
    large for memory.
    """


@hookspec
def register_latents(register: Register) -> None:
    """Register what G is fed: ``--latent NAME`` (default ``gaussian``, z ~ N(0, I)).

    The factory returns an object with ``sample(n, latent_dim, device, generator=None) -> Tensor``
    (n, latent_dim), drawing from ``generator`` (a torch.Generator on the CPU, or None, as in
    training, for torch's global stream on ``device``). Optional: ``check(latent_dim)`` raising
    ComponentError for a size it cannot fill, ``codes(noise)`` returning the structured codes a
    sample was drawn with (InfoGAN's), and ``sweep(rows, columns, latent_dim, generator)`` for the
    sample grid: each column keeps one draw of everything but one code, which varies down it.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register evaluation metrics.

    The factory returns an object with ``applies_to(run: RunContext) -> bool``
    (is it meaningful for this run's dataset, head and objective?) and
    ``evaluate(ctx: ganlab.context.EvalContext) -> dict[str, float]``.

    Pictures (since 2.1): a value of that dict may be a :class:`ganlab.Picture` instead of a number.
    Each is logged at the evaluation's step as an image under its key (the MLflow image card of
    that name, with a slider over the steps), and at the run's end the key's pictures become one
    animated GIF, the artifact ``KEY/animation.gif``. A key is 1 to 100 letters, digits, ``_``,
    ``.`` or ``-``. Make one with ``Picture.image(pixels)`` (uint8 H×W or H×W×3, or floats in
    [0, 1]), ``Picture.points(xy)`` (a scatter of N×2 points) or ``Picture.plot("module:function",
    **data)``: the process that writes the record imports the module and calls
    ``function(figure, **data)`` to draw on a matplotlib figure, so the training process neither
    imports matplotlib nor waits for the PNG; ``data`` holds arrays (tensors become NumPy arrays),
    numbers, strings, lists and dicts, at most 8 MiB. A drawing that fails shows its error in the
    picture's place. ``ctx.pictures`` is False when the run logs no pictures (``pictures = false``):
    skip preparing them then. The built-in ``field`` and ``head_histograms`` pictures come this way.
    """


@hookspec
def register_regularizers(register: Register) -> None:
    """Register regularisers of D, several per run (``--reg gp,r1``).

    The factory returns an object with ``penalty(step) -> Tensor`` (a scalar per run, added to
    D's loss times the option ``weight``, every ``every`` steps, scaled by ``every`` as in lazy
    regularisation) and/or ``after_d_step(discriminator)`` (called under ``torch.no_grad()`` after
    each D update: WGAN's weight clipping). Penalties differentiate D's scores (``step.critic``),
    never a head's loss. Reduce over the batch with ``step.mean`` so a population gets one value
    per replica.
    """


@hookspec
def register_augmentations(register: Register) -> None:
    """Register augmentations of D's inputs in training (``--augment diffaugment``).

    The factory returns an object with ``augment(x, generator) -> Tensor``: differentiable in
    ``x`` (G learns through it), drawing its randomness from ``generator`` (a torch.Generator,
    or None for torch's global one). Applied to every D input in training (real, fake and
    penalty inputs), never in evaluation.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimisers, picked per network with ``optimizer_g`` / ``optimizer_d`` beside the built-in
    adam, adamw, sgd and rmsprop (options in ``[optimizer.NAME]`` tables).

    The factory returns an object with ``build(params, lr, config) -> torch.optim.Optimizer``
    (``config``: the run's RunConfig, for shared settings such as ``beta1`` or ``weight_decay``).
    Optional: ``elementwise = True`` when each parameter's update depends on that parameter
    alone (then a population trains it vectorised; otherwise its seeds run one after another),
    and ``state_copies`` (tensors the size of the weights it keeps, or a function of the run's
    configuration giving it; default 2, as Adam). The built-ins are registered through this hook
    too (``ganlab_plugins.optimizers``).
    The learning-rate schedule sets each parameter group's ``lr``.
    """


@hookspec
def plugin_options() -> dict[str, Any] | None:
    """The options of this (lifecycle) plugin: ``{name: Option(...)}``, validated like a component's.

    A run sets them in a ``[plugins.NAME]`` table or with ``--set plugins.NAME.OPTION=VALUE``
    (NAME as ``ganlab plugins`` lists the plugin); hooks read them as
    ``ctx.plugin_options[NAME]``; they are recorded as params ``plugins.NAME.OPTION``. An option
    ``enabled`` declared with default False makes the plugin opt-in: its lifecycle hooks run only
    in the runs that set ``plugins.NAME.enabled = true``.
    """


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``ganlab`` command line (a :class:`typer.Typer`)."""


@hookspec
def on_run_start(ctx: RunContext) -> None:
    """A run is about to train: networks built, tracking run open, ``ctx.step`` set."""


@hookspec
def on_after_d_step(ctx: RunContext, step: int, d_step: int, loss: Any) -> None:
    """The discriminator's optimiser just stepped: update ``d_step`` (0-based, of ``d_steps``) of
    training step ``step`` (numbered as in ``on_step_end``). ``loss`` is the detached D loss.

    Changes made here to ``ctx.discriminator``'s weights (in place, under ``torch.no_grad()``)
    are what the next update sees: WGAN's weight clipping is written on this hook.
    """


@hookspec
def on_after_g_step(ctx: RunContext, step: int, loss: Any) -> None:
    """The generator's optimiser just stepped, before the run's own bookkeeping of ``step``
    (the weight average, divergence checks, logging, ``on_step_end``). ``loss`` is the detached G loss."""


@hookspec
def on_step_end(ctx: RunContext, step: int, losses: dict[str, Any]) -> None:
    """One generator update finished. ``losses`` holds detached 0-d tensors:
    converting them to floats forces a device sync, so do it only at intervals."""


@hookspec
def on_samples(ctx: RunContext, step: int, samples: Any) -> None:
    """Generated samples from the run's fixed noise batch, in data space."""


@hookspec
def on_evaluate(ctx: RunContext, step: int, metrics: dict[str, float], pictures: dict[str, Any]) -> None:
    """Evaluation metrics (head diagnostics and metric plugins) at ``step``, and the pictures the
    metrics returned (since 2.1), by key: :class:`ganlab.Picture` objects, empty when the run
    sets ``pictures = false``."""


@hookspec
def before_checkpoint(ctx: RunContext, step: int) -> None:
    """A checkpoint of ``step`` is about to be written: make what this plugin records durable up to it.

    The checkpoint is written only after every implementation returns, so a
    run resumed from it never skips a step its record lacks; raising stops the
    run before the checkpoint, and the previous one stays the newest.
    """


@hookspec
def on_checkpoint(ctx: RunContext, step: int, path: Any) -> None:
    """A checkpoint was written atomically to ``path``."""


@hookspec
def on_run_end(ctx: RunContext, status: str, error: BaseException | None) -> None:
    """The run ended with ``status`` FINISHED, FAILED or KILLED."""


@hookspec
def plugin_state(ctx: RunContext) -> dict[str, Any] | None:
    """This plugin's state for the checkpoint of ``ctx.step``: tensors and plain containers only
    (dict, list, str, numbers, None), saved under the plugin's name; None saves nothing."""


@hookspec
def restore_plugin_state(ctx: RunContext, state: dict[str, Any]) -> None:
    """The run resumes from a checkpoint: ``state`` is what ``plugin_state`` returned when it was
    written. Called before ``on_run_start``, and only for a plugin whose state the checkpoint holds."""


COMPONENT_HOOKS = {
    "register_architectures": "architecture",
    "register_heads": "head",
    "register_losses": "loss",
    "register_datasets": "dataset",
    "register_latents": "latent",
    "register_metrics": "metric",
    "register_regularizers": "regularizer",
    "register_augmentations": "augmentation",
    "register_optimizers": "optimizer",
}
LIFECYCLE_HOOKS = (
    "on_run_start", "on_after_d_step", "on_after_g_step", "on_step_end", "on_samples", "on_evaluate", "before_checkpoint", "on_checkpoint", "on_run_end",
)
