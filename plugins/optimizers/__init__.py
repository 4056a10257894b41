"""Built-in optimisers: torch's Adam, AdamW, SGD and RMSprop, registered like any plugin's.

They take their options as run settings shared by both networks (``beta1``, ``beta2``, ``momentum``,
``weight_decay``), not ``[optimizer.NAME]`` tables (declared by ``settings``). Registration only: the
torch code is in :mod:`ganlab_plugins.optimizers.torch_optimizers`.
"""

from __future__ import annotations

from typing import Any

from ganlab import hookimpl

BUILT = "ganlab_plugins.optimizers.torch_optimizers"


@hookimpl
def register_optimizers(register: Any) -> None:
    register("adam", f"{BUILT}:Adam", summary="Adam (beta1, beta2, weight_decay); fused on CUDA and the CPU",
             settings=("beta1", "beta2", "weight_decay"))
    register("adamw", f"{BUILT}:AdamW", summary="AdamW, decoupled weight decay (beta1, beta2, weight_decay); fused",
             settings=("beta1", "beta2", "weight_decay"))
    register("sgd", f"{BUILT}:SGD", summary="SGD (momentum, weight_decay)", settings=("momentum", "weight_decay"))
    register("rmsprop", f"{BUILT}:RMSprop", summary="RMSprop (momentum, weight_decay)",
             settings=("momentum", "weight_decay"))
