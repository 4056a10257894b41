"""Test plugin: components whose methods raise once a run builds them.

* architecture ``build-raises``: ``build()`` raises ValueError;
* loss ``check-raises``: nonsaturating, but ``check()`` raises KeyError;
* dataset ``setup-exits``: ``load()`` calls ``sys.exit(0)``.

Each must end ``ganlab run`` in one line naming the component, its plugin and
the method, exit 2, and no run.
"""

from __future__ import annotations

import sys
from typing import Any

from ganlab import hookimpl


class BuildRaises:
    def build(self, data_shape: Any, latent_dim: int, num_logits: int) -> Any:
        raise ValueError(f"no generator fits data of shape {tuple(data_shape)}")


class CheckRaises:
    def __init__(self) -> None:
        from ganlab_plugins.objectives.games import NonSaturating

        self.base = NonSaturating()

    def check(self, head_name: str, head: Any, data: Any) -> None:
        raise KeyError("labels")

    def discriminator_loss(self, step: Any) -> Any:
        return self.base.discriminator_loss(step)

    def generator_loss(self, step: Any) -> Any:
        return self.base.generator_loss(step)


class LoadExits:
    def load(self, request: Any) -> Any:
        sys.exit(0)


@hookimpl
def register_architectures(register: Any) -> None:
    register("build-raises", BuildRaises, summary="build() raises ValueError (tests only)")


@hookimpl
def register_losses(register: Any) -> None:
    register("check-raises", CheckRaises, summary="check() raises KeyError (tests only)")


@hookimpl
def register_datasets(register: Any) -> None:
    register("load-exits", LoadExits, summary="load() calls sys.exit(0) (tests only)")
