"""Run configuration: model shape, data, training, search and finetuning, from a YAML file.

A config file has up to five sections, each a frozen dataclass below; every key is optional and
falls back to the dataclass default, and an unknown or mistyped key is an error that names the
file, the section and the key (with the closest known key as a hint):

    model: {img_size: 24, embed_dim: 64, num_heads: 4, depth: 1, pools: [true, true, false, false]}
    data:  {dataset: digits-dvs, time_steps: 4}
    train: {epochs: 30, batch_size: 32, lr: 0.005}
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hqflow.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """Spikformer shape (DESIGN.md, "Model").

    The tokenizer has four Conv3x3 stages with channels in_channels -> D/8 -> D/4 -> D/2 -> D;
    `pools[i]` says whether stage i ends with MaxPool(3, 2, 1). Tokens: (img_size / 2^sum(pools))^2.
    """

    img_size: int = 128
    in_channels: int = 2
    num_classes: int = 10
    embed_dim: int = 256
    num_heads: int = 16
    depth: int = 2
    mlp_ratio: int = 4
    pools: tuple[bool, ...] = (True, True, True, True)
    tau: float = 2.0
    v_threshold: float = 1.0
    attn_threshold: float = 0.5
    attn_scale: float = 0.25

    def __post_init__(self) -> None:
        if self.embed_dim % 8:
            raise UserError(f"model.embed_dim: {self.embed_dim} is not a multiple of 8")
        if self.embed_dim % self.num_heads:
            raise UserError(
                f"model.num_heads: {self.num_heads} does not divide embed_dim {self.embed_dim}"
            )
        if len(self.pools) != 4:
            raise UserError(f"model.pools: needs 4 entries (one per conv stage), got {len(self.pools)}")
        if self.img_size % (2 ** sum(self.pools)):
            raise UserError(
                f"model.img_size: {self.img_size} is not divisible by 2^{sum(self.pools)} (the pools)"
            )
        if self.tau <= 1.0:
            raise UserError(f"model.tau: must be > 1, got {self.tau}")

    @property
    def grid(self) -> int:
        """Side of the token grid after the tokenizer's pools."""
        return self.img_size // 2 ** sum(self.pools)

    @property
    def num_tokens(self) -> int:
        return self.grid**2


@dataclass(frozen=True)
class DataConfig:
    """Which event data set, and how it becomes frames [T, 2, H, W] (H = W = model.img_size)."""

    dataset: str = "digits-dvs"
    time_steps: int = 16
    data_root: str | None = None
    val_fraction: float = 0.1  # held out of the training split (used by the search stage)
    max_train_samples: int = 0  # 0: all; else a seeded subset of the training split (quick checks)

    def __post_init__(self) -> None:
        if self.time_steps < 1:
            raise UserError(f"data.time_steps: must be >= 1, got {self.time_steps}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"data.val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.max_train_samples < 0:
            raise UserError(f"data.max_train_samples: must be >= 0, got {self.max_train_samples}")


@dataclass(frozen=True)
class TrainConfig:
    """The Spikformer recipe: AdamW, linear warmup then cosine decay, label smoothing."""

    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 6e-2
    warmup_epochs: int = 10
    label_smoothing: float = 0.1
    grad_clip: float = 0.0  # 0 disables clipping
    augment_shift: int = 0  # random translation of training frames by up to this many pixels
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UserError(f"train.lr: must be > 0, got {self.lr}")


@dataclass(frozen=True)
class SearchConfig:
    """Gumbel-softmax search (DESIGN.md, "Quantization and search").

    Each step first updates the selection logits alpha on a held-out batch with the hard
    (one-hot, straight-through) sample and the loss CE + hw_lambda * E / E_fp32, then the
    weights on a training batch with the soft sample and CE. The temperature falls
    exponentially from tau_start to tau_end over the search.
    """

    hw_lambda: float = 0.5
    candidates: tuple[str, ...] = ("fp32", "po2-2", "po2z-4", "uniform-2", "uniform-4")
    epochs: int = 10
    tau_start: float = 5.0
    tau_end: float = 0.1
    alpha_lr: float = 0.02
    weight_lr: float = 5e-4
    weight_decay: float = 0.01
    energy_table: str | None = None  # YAML of operation energies; None: the 45 nm table shipped

    def __post_init__(self) -> None:
        if self.hw_lambda < 0:
            raise UserError(f"search.hw_lambda: must be >= 0, got {self.hw_lambda}")
        if not 0 < self.tau_end <= self.tau_start:
            raise UserError(f"search.tau_end, tau_start: need 0 < tau_end <= tau_start, got "
                            f"{self.tau_end}, {self.tau_start}")
        if not self.candidates:
            raise UserError("search.candidates: needs at least one format")
        from hqflow.numerics import Candidate

        for name in self.candidates:
            try:
                Candidate.parse(name)
            except UserError as err:
                raise UserError(f"search.candidates: {err}") from None


@dataclass(frozen=True)
class FinetuneConfig:
    """Quantization-aware training with the plan fixed: cosine decay from lr to min_lr."""

    epochs: int = 10
    lr: float = 5e-4
    min_lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_epochs: int = 0


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        part = _section(section, {**dataclasses.asdict(getattr(self, section)), **changes}, "<override>")
        return dataclasses.replace(self, **{section: part})


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
             "search": SearchConfig, "finetune": FinetuneConfig}


def _check_value(cls: type, key: str, value: Any, where: str) -> Any:
    """Check one value against the dataclass field's annotation; return it in that type."""
    hint = typing.get_type_hints(cls)[key]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    bad = UserError(f"{where}: {key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_check_value_plain(args[0], v, bad) for v in value)
    return _check_value_plain(hint, value, bad)


def _check_value_plain(hint: type, value: Any, bad: UserError) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise bad
    if not isinstance(value, hint):
        raise bad
    return value


def _section(name: str, raw: Any, where: str) -> Any:
    cls = _SECTIONS[name]
    if not isinstance(raw, dict):
        raise UserError(f"{where}: section '{name}' must be a mapping, got {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            raise UserError(f"{where}: unknown key '{name}.{key}'{hint}")
        values[key] = _check_value(cls, key, value, f"{where}: {name}")
    return cls(**values)


def config_from_dict(raw: Any, where: str = "<config>") -> Config:
    """Build a Config from a plain mapping (a parsed YAML file or a checkpoint's copy)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a config must be a mapping with sections {', '.join(_SECTIONS)}")
    for name in raw:
        if name not in _SECTIONS:
            close = difflib.get_close_matches(str(name), list(_SECTIONS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where}: unknown section '{name}'{hint}; known: {', '.join(_SECTIONS)}")
    return Config(**{name: _section(name, raw[name], where) for name in raw})


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return config_from_dict(raw, str(path))
