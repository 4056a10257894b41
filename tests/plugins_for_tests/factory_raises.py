"""Test plugin: a head whose factory raises."""

from typing import Any

from ganlab import hookimpl


def _make() -> Any:
    raise ValueError("the exploding head always explodes")


@hookimpl
def register_heads(register: Any) -> None:
    register("exploding", _make, summary="raises when built (tests only)")
