"""Test plugin: registers a head under a name the built-in heads plugin already uses."""

from typing import Any

from ganlab import hookimpl


@hookimpl
def register_heads(register: Any) -> None:
    register("sigmoid", lambda: None, summary="clashes with the built-in sigmoid (tests only)")
