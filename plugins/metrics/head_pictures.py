"""The head diagnostics' pictures, as arrays (torch code); drawn by :mod:`.figures` in the record writer.

Both come from the batches and gradients :class:`.diagnostics.HeadDiagnostics` measured at the same
evaluation, so a picture and the ``diag.*`` numbers beside it describe the same samples.

* ``field`` (samples that are 2-D vectors): D's p_real on a ``resolution`` × ``resolution`` grid
  covering the real batch and the fakes (10 % margin, square), the cells where it is exactly 0 and
  exactly 1 (the masks the figure hatches), the real points, the fakes, and −∇ₓℓ_G at the fakes
  ``diag.g_grad_norm`` measured (the first ``grad_samples``): an arrow where it is not zero, a dot
  of its own colour where it is exactly zero (the fakes ``diag.g_grad_zero`` counts). An arrow is
  ``arrow_scale`` × ‖∇ₓℓ_G‖ long in the plane's units, the scale chosen so that the longest is a
  tenth of the plot's width; the figure states it.
* ``head_histograms`` (every run): p_real on the real and the generated batch, as shares of the batch
  in ``P_BINS`` bins strictly between 0 and 1, with the samples at exactly 0 and exactly 1 counted
  apart; and ‖∇ₓℓ_G‖ over the fakes, in ``GRAD_BINS`` bins of log10 ‖∇‖, with the exact zeros apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganlab.record.pictures import Picture

FIELD_DRAW = "ganlab_plugins.metrics.figures:draw_field"
HISTOGRAMS_DRAW = "ganlab_plugins.metrics.figures:draw_histograms"
#: bins of p_real strictly between 0 and 1; of log10 ‖∇ₓℓ_G‖ over the non-zero gradients
P_BINS = 20
GRAD_BINS = 24
#: the grid's margin around the points, as a share of their extent; the longest arrow, as a share of the width
MARGIN = 0.1
LONGEST_ARROW = 0.1


def field_applies(run: Any) -> bool:
    """Is D's p_real a function over the plane? Samples that are 2-D vectors, scored one by one (no
    packing) and without a class (no conditional D)."""
    conditioning = getattr(run, "conditioning", None)
    return (tuple(run.data_shape) == (2,) and int(getattr(run.config, "pack", 1)) == 1
            and (conditioning is None or not conditioning.discriminator))


def _title(ctx: Any) -> str:
    """What the picture is of: the run's head, loss and dataset, and the step."""
    name_of = getattr(ctx.config, "name_of", None)
    try:
        components = f"head {name_of('head')}, loss {name_of('loss')}, " if callable(name_of) else ""
    except (KeyError, TypeError):
        components = ""
    return f"{components}{ctx.dataset_name}, step {ctx.step}"


def field_grid(real: np.ndarray, fake: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid's x and y coordinates: a square over the finite points with a margin of MARGIN."""
    points = np.concatenate([real, fake])
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        points = np.zeros((1, 2))
    low, high = points.min(axis=0), points.max(axis=0)
    centre, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-3) * (1 + MARGIN)
    return (np.linspace(centre[0] - half, centre[0] + half, resolution),
            np.linspace(centre[1] - half, centre[1] + half, resolution))


def field_picture(ctx: Any, real: torch.Tensor, fake: torch.Tensor, gradients: torch.Tensor | None,
                  resolution: int = 64) -> Picture:
    """The ``field`` picture of one evaluation. ``gradients``: ∇ₓℓ_G at ``fake[:len(gradients)]`` (None
    when the objective's G loss is not a function of D's scores alone: no arrows)."""
    real_np = real.detach().float().cpu().reshape(len(real), 2).numpy()
    fake_np = fake.detach().float().cpu().reshape(len(fake), 2).numpy()
    xs, ys = field_grid(real_np, fake_np, resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)  # row i is y = ys[i]
    cells = torch.from_numpy(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float32))
    p_real = ctx.head.p_real(ctx.discriminate(cells.to(ctx.device))).float().cpu().numpy().reshape(resolution,
                                                                                                  resolution)
    if gradients is None:
        at, arrows, zero, scale = np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, bool), 0.0
    else:
        at = fake_np[: len(gradients)]
        arrows = (-gradients).float().cpu().reshape(len(gradients), 2).numpy()
        norms = gradients.float().cpu().reshape(len(gradients), 2).norm(dim=1).numpy()
        zero = norms == 0
        longest = float(norms[np.isfinite(norms)].max()) if np.isfinite(norms).any() else 0.0
        scale = LONGEST_ARROW * float(xs[-1] - xs[0]) / longest if longest > 0 else 0.0
    return Picture.plot(FIELD_DRAW, title=_title(ctx), x=xs, y=ys, p_real=p_real, exact_0=p_real == 0,
                        exact_1=p_real == 1, real=real_np, fake=fake_np, at=at, arrows=arrows, zero=zero,
                        arrow_scale=scale)


def p_counts(values: torch.Tensor, bins: int = P_BINS) -> dict[str, Any]:
    """p_real values as a histogram: ``counts`` in ``bins`` equal bins of (0, 1) (``edges``), ``exact_0``
    and ``exact_1`` the samples at exactly 0 and 1, ``n`` all of them."""
    v = values.detach().float().cpu().numpy().ravel()
    inside = v[(v > 0) & (v < 1)]
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(inside, bins=edges)
    return {"edges": edges, "counts": counts, "exact_0": int((v == 0).sum()), "exact_1": int((v == 1).sum()),
            "n": int(v.size)}


def norm_counts(norms: torch.Tensor, bins: int = GRAD_BINS) -> dict[str, Any]:
    """‖∇ₓℓ_G‖ values as a histogram: ``counts`` of log10 ‖∇‖ in ``bins`` equal bins (``edges``, in log10)
    over the non-zero finite ones, ``zero`` the exact zeros, ``n`` all of them."""
    v = norms.detach().float().cpu().numpy().ravel()
    positive = v[(v > 0) & np.isfinite(v)]
    if len(positive):
        low, high = np.floor(np.log10(positive.min())), np.ceil(np.log10(positive.max()))
        edges = np.linspace(low, max(high, low + 1), bins + 1)
        counts, _ = np.histogram(np.log10(positive), bins=edges)
    else:
        edges, counts = np.zeros(0), np.zeros(0, dtype=np.int64)
    return {"edges": edges, "counts": counts, "zero": int((v == 0).sum()), "n": int(v.size)}


def histograms_picture(ctx: Any, p_real_real: torch.Tensor, p_real_fake: torch.Tensor,
                       norms: torch.Tensor | None) -> Picture:
    """The ``head_histograms`` picture of one evaluation (``norms`` None: no gradient panel)."""
    return Picture.plot(HISTOGRAMS_DRAW, title=_title(ctx), real=p_counts(p_real_real), fake=p_counts(p_real_fake),
                        grad=None if norms is None else norm_counts(norms))
