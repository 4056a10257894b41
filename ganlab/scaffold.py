"""Templates behind ``ganlab new-plugin``: a working plugin package per component kind.

A generated package is what docs/plugins.md describes: a ``pyproject.toml``
with one entry point in the ``ganlab`` group, a light registration module
(``plugin.py``), the component's implementation in a module the factory
imports (``impl.py``), a README and a test written with :mod:`ganlab.testing`
that passes as soon as the package is installed.

Templates use :class:`string.Template` (``$name``) so that the Python code in
them needs no brace escaping. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ganlab import __version__
from ganlab.errors import GanlabError, did_you_mean

KINDS = ("head", "loss", "architecture", "dataset", "metric")
KIND_ALIASES = {"arch": "architecture", "objective": "loss", "data": "dataset"}
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_MAX_NAME = 40


@dataclass(frozen=True)
class Names:
    """Every name derived from the one the user typed."""

    component: str  # "fancy-head": the component and entry-point name
    distribution: str  # "ganlab-fancy-head": the directory and the pip name
    package: str  # "ganlab_fancy_head": the import package


def names_for(name: str) -> Names:
    """Validate ``name`` and derive the package's names; refuse with one clear line."""
    base = name[len("ganlab-"):] if name.startswith("ganlab-") else name
    if not _NAME.match(base) or len(base) > _MAX_NAME:
        raise GanlabError(
            f"plugin name '{name}' is not valid: use lowercase letters, digits and single hyphens, "
            f"starting with a letter, at most {_MAX_NAME} characters (e.g. 'tempered-softmax')"
        )
    return Names(component=base, distribution=f"ganlab-{base}", package=f"ganlab_{base.replace('-', '_')}")


def normalise_kind(kind: str) -> str:
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise GanlabError(f"unknown plugin kind '{kind}'{did_you_mean(kind, KINDS)} (valid: {', '.join(KINDS)})")
    return kind


def render(names: Names, kind: str) -> dict[str, str]:
    """The package's files, relative path -> text."""
    major_minor = ".".join(__version__.split(".")[:2])
    values = {
        "name": names.component, "dist": names.distribution, "package": names.package, "kind": kind,
        "ganlab_min": major_minor, "hook": _HOOKS[kind], "class_name": _CLASS_NAMES[kind],
        "summary": _SUMMARIES[kind],
    }
    kind_values = {key: Template(text).substitute(values) for key, text in _KIND_PARTS[kind].items()}
    values.update(kind_values)
    values["test_imports"] = _test_imports(values["test_body"])
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{names.package}/__init__.py": _INIT,
        f"src/{names.package}/plugin.py": _PLUGIN,
        f"src/{names.package}/impl.py": _IMPLS[kind],
        f"tests/test_{names.package}.py": _TEST,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


def write_package(names: Names, kind: str, parent: Path) -> Path:
    """Write the package as ``parent/<distribution>``; never touch an existing directory.

    Files go to a temporary sibling first and are renamed into place, so an
    interrupted scaffold leaves nothing half-written behind.
    """
    target = parent / names.distribution
    if target.exists() or target.is_symlink():
        raise GanlabError(f"{target} already exists; remove it or choose another NAME or --dir (nothing was written)")
    if not parent.is_dir():
        raise GanlabError(f"--dir {parent} is not a directory")
    files = render(names, kind)
    staging = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=parent))
    try:
        package = staging / names.distribution  # made by mkdir, so it gets the user's umask, not 0700
        for relative, text in files.items():
            path = package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.rename(package, target)  # atomic, and fails rather than merging if target appeared meanwhile
        staging.rmdir()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GanlabError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _test_imports(body: str) -> str:
    """The standard-library and third-party imports a generated test uses, and no others."""
    lines = ["import math"] if "math." in body else []
    lines.append("from importlib.metadata import entry_points")
    if "Path(" in body:
        lines.append("from pathlib import Path")
    third_party = [f"import {module}" for module in ("pytest", "torch") if f"{module}." in body]
    if third_party:
        lines += ["", *third_party]
    return "\n".join(lines)


_HOOKS = {"head": "register_heads", "loss": "register_losses", "architecture": "register_architectures",
          "dataset": "register_datasets", "metric": "register_metrics"}
_CLASS_NAMES = {"head": "Head", "loss": "Objective", "architecture": "Architecture", "dataset": "Dataset",
                "metric": "Metric"}
_SUMMARIES = {
    "head": "a K+1-score softmax head with a score scale; cross-entropy from logits",
    "loss": "the non-saturating game with a weight on D's fake term",
    "architecture": "one-hidden-layer fully connected G and D",
    "dataset": "points on a noisy circle in 2-D, in [-1, 1]",
    "metric": "distance between the means of generated and real samples",
}

# ---- per-kind pieces ----------------------------------------------------------------
_KIND_PARTS: dict[str, dict[str, str]] = {
    "head": {
        "options": '{"scale": Option(float, 1.0, "multiplies D\'s scores before the softmax", min=0.0, '
                   'min_exclusive=True)}',
        "factory_args": "scale: float",
        "factory_call": "scale",
        "cli": "ganlab run --head $name --set head.scale=2",
        "toml": '[head]\nname = "$name"\nscale = 2.0',
        "test_body": '''def test_probabilities_and_losses():
    head = make_plugin_manager(plugin, builtins=False).registry.get("head", "$name").create({"scale": 2.0})
    logits = torch.randn(8, head.num_logits(1), dtype=torch.bfloat16) * 100
    assert torch.allclose(head.probs(logits).sum(-1), torch.ones(8))
    assert head.real_loss(logits).dtype == torch.float32  # heads compute in float32
    assert torch.isfinite(head.real_loss(logits)).all() and torch.isfinite(head.fake_loss(logits)).all()


def test_trains():
    recorded = run_steps(head="$name", steps=2, plugins=[plugin])
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])
''',
    },
    "loss": {
        "options": '{"fake_weight": Option(float, 1.0, "weight of D\'s loss on generated samples", min=0.0)}',
        "factory_args": "fake_weight: float",
        "factory_call": "fake_weight",
        "cli": "ganlab run --loss $name --set loss.fake_weight=0.5",
        "toml": '[loss]\nname = "$name"\nfake_weight = 0.5',
        "test_body": '''@pytest.mark.parametrize("head", ["sigmoid", "softmax", "sparsemax"])
def test_trains_with_every_head(head):
    recorded = run_steps(head=head, loss="$name", steps=2, plugins=[plugin], metrics="none")
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])
''',
    },
    "architecture": {
        "options": '{"hidden": Option(int, 128, "width of the hidden layer of G and D", min=1)}',
        "factory_args": "hidden: int",
        "factory_call": "hidden",
        "cli": "ganlab run --arch $name --set arch.hidden=256",
        "toml": '[arch]\nname = "$name"\nhidden = 256',
        "test_body": '''@pytest.mark.parametrize("dataset", ["tiny-images", "tiny-vectors"])
def test_trains_on_images_and_vectors(dataset):
    recorded = run_steps(arch="$name", dataset=dataset, steps=2, plugins=[plugin], metrics="none")
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])


def test_shapes():
    arch = make_plugin_manager(plugin, builtins=False).registry.get("architecture", "$name").create({"hidden": 16})
    generator, discriminator = arch.build((1, 8, 8), 4, 3)
    fake = generator(torch.randn(5, 4))
    assert fake.shape == (5, 1, 8, 8) and discriminator(fake).shape == (5, 3)
''',
    },
    "dataset": {
        "options": '{"samples": Option(int, 2000, "points in the training pool", min=1), '
                   '"noise": Option(float, 0.05, "Gaussian noise around the circle", min=0.0)}',
        "factory_args": "samples: int, noise: float",
        "factory_call": "samples, noise",
        "cli": "ganlab run --dataset $name --set dataset.samples=5000",
        "toml": '[dataset]\nname = "$name"\nsamples = 5000',
        "test_body": '''def test_loads_scaled_and_seeded():
    from ganlab.data import DataRequest

    dataset = make_plugin_manager(plugin, builtins=False).registry.get("dataset", "$name").create({"samples": 100})
    a, b = dataset.load(DataRequest(root=Path("data"), seed=1)), dataset.load(DataRequest(root=Path("data"), seed=1))
    assert len(a) == 100 and a.x.abs().max() <= 1 and torch.equal(a.x, b.x)


def test_trains():
    recorded = run_steps(dataset={"name": "$name", "samples": 256}, steps=2, plugins=[plugin], metrics="none")
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])
''',
    },
    "metric": {
        "options": '{"samples": Option(int, 256, "generated and real samples per evaluation", min=1)}',
        "factory_args": "samples: int",
        "factory_call": "samples",
        "cli": "ganlab run --set metrics=$name",
        "toml": 'metrics = ["$name"]\n[metric.$name]\nsamples = 512',
        "test_body": '''def test_is_evaluated():
    recorded = run_steps(steps=2, plugins=[plugin], metrics="$name")
    assert recorded["eval_step"] == [2.0]
    assert recorded["$name.mean_gap"][0] >= 0
''',
    },
}

# ---- shared files -------------------------------------------------------------------------
_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A ganlab plugin: $kind '$name'."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["ganlab>=$ganlab_min", "torch>=2.2"]

[project.optional-dependencies]
test = ["pytest>=8"]

# ganlab finds plugins through this entry-point group; the value is the module
# holding the @hookimpl functions.
[project.entry-points.ganlab]
$name = "$package.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

_README = '''# $dist

A ganlab plugin that registers the $kind `$name`:
$summary.

## Install

```bash
pip install -e ".[test]"
ganlab plugins            # lists '$name' (built-in: no) with its version
ganlab components $kind   # lists '$name' with its options
```

## Use

```bash
$cli
```

or in an experiment file:

```toml
$toml
```

## Develop

* `src/$package/plugin.py` registers the $kind (`$hook`). It is imported by every
  `ganlab` command, so keep it free of heavy imports (torch, numpy...).
* `src/$package/impl.py` holds the implementation; the factory in `plugin.py` imports it
  only when a run uses `$name`.
* `tests/test_$package.py` uses `ganlab.testing` (see ganlab's docs/plugins.md): `pytest`.
'''

_INIT = '''"""$dist: a ganlab plugin ($kind '$name')."""

__version__ = "0.1.0"
'''

_PLUGIN = '''"""Registration of $kind '$name'.

ganlab imports this module (the entry point) for every command, so it imports
nothing heavy: the factory imports the implementation when a run uses it.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _make($factory_args) -> Any:
    from $package.impl import $class_name

    return $class_name($factory_call)


@hookimpl
def $hook(register: Any) -> None:
    register(
        "$name", _make,
        summary="$summary",
        options=$options,
    )
'''

_TEST = '''"""Tests of $kind '$name', written with ganlab.testing. Install the package first."""

from __future__ import annotations

$test_imports

from ganlab.testing import make_plugin_manager, run_steps
from $package import plugin


def test_registered_with_its_provenance():
    component = make_plugin_manager(plugin, builtins=False).registry.get("$kind", "$name")
    assert component.provenance.plugin == plugin.__name__ and not component.provenance.builtin
    component.create({})  # the factory's object satisfies the $kind contract


def test_installed_as_an_entry_point():
    found = [ep for ep in entry_points(group="ganlab") if ep.value == "$package.plugin"]
    assert found, "the package is not installed: pip install -e ."


$test_body'''

_IMPLS = {
    "head": '''"""Head '$name': softmax over K real classes + fake, with scores scaled by ``scale``.

Head contract (docs/plugins.md): ``num_logits(num_classes)``; ``probs(logits)``
(B, C) in float32, real classes first and fake last; ``p_real(logits)`` (B,);
per-sample proper losses ``real_loss``, ``fake_loss`` and ``loss(logits,
target)``, computed from the scores (never ``log`` of a probability) in float32
with autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.errors import ComponentError


class Head:
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def num_logits(self, num_classes: int = 1) -> int:
        return num_classes + 1  # one score per real class, plus "fake"

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[-1] < 2:
            raise ComponentError(f"head '$name' expects scores (B, C >= 2), got {tuple(logits.shape)}")
        return logits.float() * self.scale

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return torch.softmax(self._scores(logits), dim=-1)

    def p_real(self, logits: torch.Tensor) -> torch.Tensor:
        return self.probs(logits)[:, :-1].sum(dim=-1)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return F.cross_entropy(self._scores(logits), target.long(), reduction="none")

    def fake_loss(self, logits: torch.Tensor) -> torch.Tensor:
        fake = torch.full((logits.shape[0],), logits.shape[-1] - 1, device=logits.device)
        return self.loss(logits, fake)

    def real_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """-log(1 - p_fake) = logsumexp(z) - logsumexp(z_real), from the scores."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z = self._scores(logits)
            return torch.logsumexp(z, dim=-1) - torch.logsumexp(z[:, :-1], dim=-1)
''',
    "loss": '''"""GAN objective '$name'.

Objective contract (docs/plugins.md): ``d_loss(head, real_logits, fake_logits,
real_labels)`` and ``g_loss(head, fake_logits)`` return scalars written with the
head's per-sample losses, so the objective works with every head.
"""

from __future__ import annotations

import torch


class Objective:
    def __init__(self, fake_weight: float = 1.0) -> None:
        self.fake_weight = float(fake_weight)

    def d_loss(self, head, real_logits: torch.Tensor, fake_logits: torch.Tensor,
               real_labels: torch.Tensor | None = None) -> torch.Tensor:
        return head.real_loss(real_logits).mean() + self.fake_weight * head.fake_loss(fake_logits).mean()

    def g_loss(self, head, fake_logits: torch.Tensor) -> torch.Tensor:
        return head.real_loss(fake_logits).mean()  # non-saturating: G wants its samples called real
''',
    "architecture": '''"""Architecture '$name': one hidden layer in G and in D.

Architecture contract (docs/plugins.md): ``build(data_shape, latent_dim,
num_logits) -> (G, D)``; G maps (B, latent_dim) to (B, *data_shape), D maps
(B, *data_shape) to raw scores (B, num_logits).
"""

from __future__ import annotations

import math

from torch import nn


class Architecture:
    def __init__(self, hidden: int = 128) -> None:
        self.hidden = int(hidden)

    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int) -> tuple[nn.Module, nn.Module]:
        size = math.prod(data_shape)
        # images live in [-1, 1]; vectors (e.g. the 2-D mixtures) are unscaled
        squash = [nn.Tanh()] if len(data_shape) > 1 else []
        generator = nn.Sequential(
            nn.Linear(latent_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, size), *squash,
            nn.Unflatten(1, tuple(data_shape)),
        )
        discriminator = nn.Sequential(
            nn.Flatten(), nn.Linear(size, self.hidden), nn.LeakyReLU(0.2), nn.Linear(self.hidden, num_logits),
        )
        return generator, discriminator
''',
    "dataset": '''"""Dataset '$name': points on a noisy circle.

Dataset contract (docs/plugins.md): ``load(request) -> ganlab.data.TensorData``
(or StreamingData for data too large for memory), samples in [-1, 1].
``request.root`` is where files live, ``request.seed`` the run's seed.
"""

from __future__ import annotations

import math

import torch

from ganlab.data import DataRequest, TensorData


class Dataset:
    cacheable = False  # True caches the loaded tensors on disk, keyed by name and options

    def __init__(self, samples: int = 2000, noise: float = 0.05) -> None:
        self.samples, self.noise = int(samples), float(noise)

    def load(self, request: DataRequest) -> TensorData:
        generator = torch.Generator().manual_seed(request.seed)
        angle = torch.rand(self.samples, generator=generator) * 2 * math.pi
        x = 0.8 * torch.stack([angle.cos(), angle.sin()], dim=1)
        x = x + self.noise * torch.randn(self.samples, 2, generator=generator)
        return TensorData(x=x.clamp(-1.0, 1.0), source=f"noisy circle, {self.samples} points, seed {request.seed}")
''',
    "metric": '''"""Metric '$name': how far the generated mean is from the real mean.

Metric contract (docs/plugins.md): ``applies_to(run)`` says whether the metric
means something for this run; ``evaluate(ctx)`` gets a ganlab.context.EvalContext
(``generate(n)``, ``real_batch(n)``, ``discriminate(x)``, ``head``...) and
returns a dict of floats, named after the metric.
"""

from __future__ import annotations

from typing import Any


class Metric:
    def __init__(self, samples: int = 256) -> None:
        self.samples = int(samples)

    def applies_to(self, run: Any) -> bool:
        return True  # e.g. `return len(run.data_shape) == 1` for vector data only

    def evaluate(self, ctx: Any) -> dict[str, float]:
        fake = ctx.generate(self.samples).flatten(1)
        real = ctx.real_batch(self.samples).flatten(1).to(fake.device)
        return {"$name.mean_gap": float((fake.mean(0) - real.mean(0)).norm())}
''',
}
