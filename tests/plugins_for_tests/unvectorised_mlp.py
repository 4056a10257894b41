"""Test plugin: the built-in ``mlp`` networks from an architecture that does not declare ``vectorisable``.

A population with it must fall back to training its seeds one after another.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _make(hidden_scale: float = 1.0) -> Any:
    from ganlab_plugins.architectures.mlp import MLPArchitecture

    class Unvectorised(MLPArchitecture):
        vectorisable = False

    return Unvectorised(hidden_scale=hidden_scale)


@hookimpl
def register_architectures(register: Any) -> None:
    register("unvectorised-mlp", _make, summary="the mlp, not declared vectorisable (tests only)",
             options={"hidden_scale": Option(float, 1.0, "multiplies every hidden width", min=0.01)})
