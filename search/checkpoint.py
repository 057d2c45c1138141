"""checkpoint.pt: what a run folder's checkpoint holds, and reading it without running code.

A checkpoint is a dict of plain data and tensors (STATE_TYPES): `config` (the run's Config as a
dict), `model` (the state_dict), and for resuming the optimizer and schedule states, the epoch,
the history and torch's RNG state; a search adds `candidates` (a supernet), a finetune `plan`.
`read_checkpoint` unpickles with torch's restricted loader, so a file that pickles an object is
refused, never run; `load_checkpoint` rebuilds the model the checkpoint describes.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hqflow.config import Config, config_from_dict
from hqflow.errors import UserError
from hqflow.io import atomic_write
from hqflow.search.distributed import to_cpu
from hqflow.search.model import Spikformer, quant_layers

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically, every tensor moved to the CPU first: a checkpoint written on a
    GPU loads on a machine without one (and `load_checkpoint` puts it on any device)."""
    atomic_write(path, lambda p: torch.save(to_cpu(state), p))


def load_checkpoint(run: str | Path, device: torch.device | str | None = None) -> tuple[Config, Spikformer, dict[str, Any]]:
    """Read a run folder's (or a checkpoint file's) config and model; the rest of the state as a dict.

    The file is read onto the CPU (whatever device wrote it); the model is then moved to `device`
    (default: stays on the CPU). The rest of the state stays on the CPU: an optimizer's
    load_state_dict moves its tensors to its parameters' device."""
    path = Path(run)
    if not path.exists():
        raise UserError(f"{path}: no such run folder or checkpoint file")
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    state = read_checkpoint(path)
    check_state(state, path)
    cfg = config_from_dict(state["config"], f"{path}: config")
    model = build_model(cfg, state, str(path))
    load_weights(model, state["model"], str(path))
    if device is not None:
        model.to(device)
    return cfg, model, state


def read_checkpoint(path: Path) -> Any:
    """Unpickle `path` with torch's restricted loader: tensors, dicts, lists, strings and numbers.

    A checkpoint is plain data (hqflow writes nothing else into one), so `weights_only=True`
    refuses any pickled object that would run code while loading, instead of running it.
    """
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file; expected a checkpoint written by hqflow")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            raise UserError(f"{path}: refused: the checkpoint pickles the object {found.group(1)}, which could "
                            f"run code on loading; hqflow loads only tensors and plain data") from None
        raise UserError(f"{path}: not a readable checkpoint (corrupt or not written by torch.save)") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable checkpoint: truncated, corrupt or not written by torch.save "
                        f"({first})") from None


# What an hqflow checkpoint may hold, and the type of each entry (`config` and `model` always).
STATE_TYPES: dict[str, type] = {"config": dict, "model": dict, "epoch": int, "history": list, "optimizer": dict,
                                "schedule": dict, "w_opt": dict, "a_opt": dict, "rng": torch.Tensor,
                                "plan": dict, "candidates": list}


def check_state(state: Any, path: Path, required: tuple[str, ...] = ("config", "model")) -> None:
    """A loaded checkpoint's entries: `required` present, each of its type, the model's tensors finite."""
    if not isinstance(state, dict):
        raise UserError(f"{path}: not an hqflow checkpoint (a {type(state).__name__}, expected a dict)")
    missing = [k for k in required if k not in state]
    if missing:
        raise UserError(f"{path}: not an hqflow checkpoint (entry {', '.join(map(repr, missing))} missing)")
    for key, kind in STATE_TYPES.items():
        if key in state and (not isinstance(state[key], kind) or isinstance(state[key], bool)):
            raise UserError(f"{path}: entry {key!r} is a {type(state[key]).__name__}, expected a {kind.__name__}")
    for name, tensor in state["model"].items():
        if not isinstance(tensor, torch.Tensor):
            raise UserError(f"{path}: model tensor {name!r} is a {type(tensor).__name__}, expected a tensor")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: model tensor {name!r} holds NaN or infinity (did the training diverge?)")
    if "candidates" in state and not all(isinstance(n, str) for n in state["candidates"]):
        raise UserError(f"{path}: entry 'candidates' must list format names, got {state['candidates']!r}")
    if "epoch" in state and state["epoch"] < 0:
        raise UserError(f"{path}: entry 'epoch' is {state['epoch']}, expected >= 0")


def restore_state(state: dict[str, Any], path: Path, objects: dict[str, Any], record: type) -> list:
    """What `--resume` reads from a checkpoint: check it, load `objects` (entry -> an optimizer or
    schedule) from their entries, restore torch's RNG if saved; return the history as `record`s."""
    check_state(state, path, ("config", "model", "epoch", "history", *objects))
    names = {f.name for f in dataclasses.fields(record)}
    history = state["history"]
    if len(history) != state["epoch"] or not all(isinstance(h, dict) and set(h) == names for h in history):
        raise UserError(f"{path}: entry 'history' does not hold one {record.__name__} record per epoch "
                        f"({len(history)} records for epoch {state['epoch']})")
    for key, obj in objects.items():
        try:
            obj.load_state_dict(state[key])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise UserError(f"{path}: entry {key!r} does not fit this run ({type(err).__name__}: {err})") from None
    if "rng" in state:  # older checkpoints lack it
        try:
            torch.set_rng_state(state["rng"])
        except (RuntimeError, TypeError) as err:
            raise UserError(f"{path}: entry 'rng' is not a torch RNG state ({err})") from None
    return [record(**h) for h in history]


EXTRA_KEYS = ("plan", "candidates")  # what a checkpoint may add to describe its model


def build_model(cfg: Config, state: dict[str, Any], where: str) -> nn.Module:
    """The model a checkpoint holds: fp32, a supernet ("candidates") or fixed to a plan ("plan")."""
    from hqflow.search.supernet import apply_formats, to_supernet

    from hqflow.numerics import Candidate
    from hqflow.plan import plan_from_dict

    model = Spikformer(cfg.model)
    if "candidates" in state:
        try:
            candidates = tuple(Candidate.parse(n) for n in state["candidates"])
        except UserError as err:
            raise UserError(f"{where}: candidates: {err}") from None
        to_supernet(model, candidates)
    if "plan" in state:
        plan = plan_from_dict(state["plan"], f"{where}: plan")
        plan.check_layers(list(quant_layers(model)), f"{where}: plan")
        apply_formats(model, plan.formats())
    return model


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict with an error that lists the tensors whose presence or shape differ."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = ([f"shapes differ: {'; '.join(shapes[:4])}"] if shapes else []) + \
                ([f"missing: {', '.join(missing[:4])}"] if missing else []) + \
                ([f"unexpected: {', '.join(extra[:4])}"] if extra else [])
        raise UserError(f"{where}: checkpoint does not fit this model config ({' | '.join(parts)})")
    model.load_state_dict(weights)
