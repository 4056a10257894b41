"""Running the metrics of a run at one step, without disturbing training.

Evaluation forks the RNG state, so drawing noise for metrics never changes
the training trajectory, and uses a noise stream seeded the same way at every
evaluation, so values are comparable across steps. The networks keep using
batch statistics, as in training (a GAN's BatchNorm running averages mix real
and fake batches and describe neither), but dropout is off and every buffer a
forward pass would update is restored afterwards: evaluating changes nothing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ganlab.context import EvalContext
from ganlab.data import TensorData
from ganlab.contracts import metric_values_problem
from ganlab.errors import GanlabError

# ``trainer`` below is the run's ganlab.train.engine.Trainer, typed loosely: the engine imports this
# module, and importing the engine back here, even for type checking, would close a cycle.


def make_eval_context(trainer: Any, step: int) -> EvalContext:
    import torch

    from ganlab.data import default_cache_dir
    from ganlab.train.runtime import autocast

    from ganlab.train.conditioning import discriminator_call, generator_call

    b, cfg = trainer.b, trainer.b.config
    device = b.device
    cond = b.conditioning
    generator = trainer.sampling_generator
    G, D = generator_call(generator, cond), discriminator_call(b.discriminator, cond)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 7919)
    data = b.data if isinstance(b.data, TensorData) else getattr(b.data, "preview", None)

    def generate_from(noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad(), autocast(device, cfg.precision):
            return torch.cat([G(noise[i : i + 512].to(device),
                                None if labels is None else labels[i : i + 512].to(device)).float()
                              for i in range(0, len(noise), 512)])

    def generate_labelled(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        chunks, labels = [], []
        for start in range(0, n, 512):
            size = min(512, n - start)
            noise = b.latent.sample(size, cfg.latent_dim, device, noise_gen)
            y = cond.balanced(size, device, offset=start) if cond is not None and cond.generator else None
            chunks.append(generate_from(noise, y))
            labels.append(y)
        return torch.cat(chunks), (torch.cat(labels) if labels[0] is not None else None)

    def generate(n: int) -> torch.Tensor:
        return generate_labelled(n)[0]

    def discriminate(x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad(), autocast(device, cfg.precision):
            return torch.cat([D(x[i : i + 512].to(device), None if labels is None else labels[i : i + 512].to(device)).float()
                              for i in range(0, len(x), 512)])

    real_gen = torch.Generator().manual_seed(cfg.seed + 104729)

    def real_labelled(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if data is None:
            x, y = trainer.batches.next()
            return x[:n], (None if y is None else y[:n])
        idx = torch.randint(len(data), (n,), generator=real_gen).to(data.x.device)
        return data.take(idx), (None if data.y is None else data.y[idx.to(data.y.device)])

    def real_batch(n: int) -> torch.Tensor:
        return real_labelled(n)[0]

    conditional = cond is not None
    return EvalContext(
        step=step, device=device, dataset_name=cfg.name_of("dataset"), data=data, head=b.head,
        generator=generator, discriminator=b.discriminator, latent_dim=cfg.latent_dim, seed=cfg.seed,
        cache_dir=default_cache_dir(), generate=generate, discriminate=discriminate, real_batch=real_batch,
        objective=b.objective, run=trainer.ctx, config=cfg, conditioning=cond, latent=b.latent,
        generate_from=generate_from,
        generate_labelled=generate_labelled if conditional else None,
        real_labelled=real_labelled if conditional else None,
    )


@contextlib.contextmanager
def evaluation_mode(*networks: Any) -> Iterator[None]:
    """Dropout off, BatchNorm on batch statistics, buffers restored on exit."""
    import torch

    saved = [{k: v.clone() for k, v in net.state_dict().items() if k in dict(net.named_buffers())} for net in networks]
    dropouts = [m for net in networks for m in net.modules()
                if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training]
    for module in dropouts:
        module.eval()
    try:
        yield
    finally:
        for module in dropouts:
            module.train()
        with torch.no_grad():
            for net, buffers in zip(networks, saved):
                current = dict(net.named_buffers())
                for name, value in buffers.items():
                    current[name].copy_(value)


def evaluate(trainer: Any, step: int) -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics' values at ``step``, and their pictures (key -> :class:`ganlab.Picture`; none when the
    run's ``pictures`` setting is off)."""
    import torch

    from ganlab.record.pictures import Picture, located

    metrics: dict[str, Any] = trainer.ctx.extras.get("metrics", {})
    if not metrics:
        return {}, {}
    devices = [trainer.b.device] if trainer.b.device.type == "cuda" else []
    results: dict[str, float] = {}
    pictures: dict[str, Any] = {}
    wanted = bool(trainer.b.config.settings.get("pictures", True))
    with torch.random.fork_rng(devices=devices), evaluation_mode(trainer.sampling_generator, trainer.b.discriminator):
        ectx = make_eval_context(trainer, step)
        ectx.pictures = wanted
        for name, metric in metrics.items():
            try:
                values = metric.evaluate(ectx)
            except GanlabError:
                raise
            except Exception as exc:
                component = trainer.plugins.registry.get("metric", name)
                if component.provenance.builtin:
                    raise
                print(f"ganlab: warning: metric '{name}' (plugin '{component.provenance.plugin}') failed: "
                      f"{type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            problem = metric_values_problem(values)
            if problem is not None:  # a run is not lost to its metric: this evaluation's values are left out
                component = trainer.plugins.registry.get("metric", name)
                print(f"ganlab: warning: metric '{name}' (plugin '{component.provenance.plugin}') {problem}; "
                      "its values at this evaluation are not logged", file=sys.stderr)
                continue
            for key, value in (values or {}).items():
                if isinstance(value, Picture):
                    if wanted:
                        pictures[key] = located(value)
                else:
                    results[key] = float(value)
        trainer.ctx.extras.setdefault("metric_params", {}).update(ectx.params)
    return results, pictures
