"""Test plugin: factories returning the wrong kind of object."""

from typing import Any

from ganlab import hookimpl


@hookimpl
def register_heads(register: Any) -> None:
    register("not-a-head", lambda: "I am a string", summary="returns a str (tests only)")


@hookimpl
def register_architectures(register: Any) -> None:
    register("not-modules", lambda: _Arch(), summary="build returns non-modules (tests only)")


class _Arch:
    def build(self, data_shape: Any, latent_dim: int, num_logits: int) -> Any:
        return "generator", "discriminator"
