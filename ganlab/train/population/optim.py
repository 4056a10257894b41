"""One replica's view of an optimiser over stacked parameters.

The built-in optimisers (Adam, AdamW, SGD, RMSprop) are elementwise, so one over
the stacked (N, ...) tensors is N independent ones. A replica's checkpoint must still hold an ordinary
single-run optimiser state (a child run resumes as a single run, and a single
run's checkpoint can join a population), so this view slices the stacked
state on the way out and writes a single run's state into its slice on the way in.
"""

from __future__ import annotations

from typing import Any

import torch


class ReplicaOptimizer:
    """``state_dict``/``load_state_dict`` of replica ``index`` of ``stacked`` (a torch optimiser)."""

    def __init__(self, stacked: torch.optim.Optimizer, index: int) -> None:
        self.stacked = stacked
        self.index = index

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.stacked.param_groups

    def state_dict(self) -> dict[str, Any]:
        full = self.stacked.state_dict()
        state = {
            key: {name: self._slice(name, value) for name, value in entry.items()}
            for key, entry in full["state"].items()
        }
        return {"state": state, "param_groups": copy_groups(full["param_groups"])}

    def _slice(self, name: str, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if name == "step":  # shared by all replicas: they all take every step
            return value.detach().clone()
        return value.detach()[self.index].clone()

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Write a single run's optimiser state into this replica's slice."""
        params = [p for group in self.stacked.param_groups for p in group["params"]]
        entries = state["state"]
        if len(state["param_groups"]) != len(self.stacked.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(state["param_groups"], self.stacked.param_groups)
        ):
            raise ValueError("the optimiser state does not match the population's parameters")
        for position, param in enumerate(params):
            entry = entries.get(position)
            if entry is None:
                continue
            target = self.stacked.state[param]
            for name, value in entry.items():
                if not isinstance(value, torch.Tensor):
                    target[name] = value
                elif name == "step":
                    if name not in target:
                        target[name] = value.detach().clone().to(param.device)
                    else:
                        target[name].copy_(value)
                else:
                    if name not in target:
                        target[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    target[name][self.index].copy_(value)


def copy_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(group) for group in groups]
