"""Full training state (modules, optimisers, RNG, step) as safetensors + JSON: no pickle."""

from pathlib import Path
from typing import Any

import torch

from ldmkit.checkpoint import load_tensors, save_tensors, write_json

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def flatten_optimizer(name: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state_dict into tensors (keyed by path) and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for pid, entries in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}/{pid}/{key}"] = value
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    """Inverse of `flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in plain["state"].items()}
    prefix = f"{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, entry = key[len(prefix) :].split("/", 1)
            state.setdefault(int(pid), {})[entry] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_train_state(
    directory: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, torch.Tensor],
    info: dict[str, Any],
) -> None:
    """Write modules' and optimisers' states, RNG states and `info` (step, history...)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"info": info, "optimizers": {}}
    for name, module in modules.items():
        tensors.update({f"module.{name}/{k}": v for k, v in module.state_dict().items()})
    for name, optimizer in optimizers.items():
        t, p = flatten_optimizer(f"optim.{name}", optimizer.state_dict())
        tensors.update(t)
        plain["optimizers"][name] = p
    tensors.update({f"rng/{k}": v for k, v in rng.items()})
    save_tensors(tensors, directory / STATE_TENSORS)
    write_json(directory / STATE_JSON, plain)


def load_train_state(
    directory: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore modules and optimisers in place; returns (rng states, info)."""
    import json

    tensors = load_tensors(directory / STATE_TENSORS)
    plain = json.loads((directory / STATE_JSON).read_text())
    for name, module in modules.items():
        prefix = f"module.{name}/"
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(
            unflatten_optimizer(f"optim.{name}", tensors, plain["optimizers"][name])
        )
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}
    return rng, plain["info"]
