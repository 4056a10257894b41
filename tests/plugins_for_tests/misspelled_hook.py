"""Test plugin: implements 'register_head' (singular), which is no ganlab hook."""

from typing import Any

from ganlab import hookimpl


@hookimpl
def register_head(register: Any) -> None:
    register("never-registered", lambda: None)
