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
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from hqflow.errors import UserError
from hqflow.io import read_yaml


class _Bound(typing.NamedTuple):
    """A value range of one config key: `ok(value)` and the words for it in an error."""

    ok: typing.Callable[[Any], bool]
    words: str


def _ge(lo: float) -> _Bound:
    return _Bound(lambda v: v >= lo, f">= {lo}")


def _gt(lo: float) -> _Bound:
    return _Bound(lambda v: v > lo, f"> {lo}")


def _in(lo: float, hi: float) -> _Bound:
    return _Bound(lambda v: lo <= v < hi, f"in [{lo}, {hi})")


def _check_bounds(cfg: Any) -> None:
    """Every float finite, every key within its class's `BOUNDS`; the error names section.key."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        where = f"{cfg.SECTION}.{f.name}"
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{where}: must be a finite number, got {value}")
        bound = cfg.BOUNDS.get(f.name)
        if bound is not None and value is not None and not bound.ok(value):
            raise UserError(f"{where}: must be {bound.words}, got {value}")


MODEL_FAMILIES = ("spikformer", "sdt")  # hqflow.models.FAMILIES: each one's topology builder


@dataclass(frozen=True)
class ModelConfig:
    """The model's family and shape. `family`: spikformer (Zhou et al. 2023) or sdt (the Spike-driven
    Transformer, Yao et al. 2023, with its membrane shortcut: hqflow/topology_sdt.py); both take the sizes below.

    The tokenizer has four Conv3x3 stages with channels in_channels -> D/8 -> D/4 -> D/2 -> D;
    `pools[i]` says whether stage i ends with MaxPool(3, 2, 1). Tokens: (img_size / 2^sum(pools))^2.
    `num_classes` 0 means the data set's: `train` and `search` set it from the loaded data set before
    they build the model or write config.yaml, so a run's files always hold the number.
    """

    family: str = "spikformer"
    img_size: int = 128
    in_channels: int = 2
    num_classes: int = 0  # 0: the data set's class count, resolved when train / search load the data
    embed_dim: int = 256
    num_heads: int = 16
    depth: int = 2
    mlp_ratio: int = 4
    pools: tuple[bool, ...] = (True, True, True, True)
    tau: float = 2.0
    v_threshold: float = 1.0
    attn_threshold: float = 0.5
    attn_scale: float = 0.25

    SECTION: ClassVar[str] = "model"
    BOUNDS: ClassVar[dict[str, _Bound]] = {
        "img_size": _ge(1), "in_channels": _ge(1), "num_classes": _ge(0), "embed_dim": _ge(8), "num_heads": _ge(1), "depth": _ge(1),
        "mlp_ratio": _ge(1), "tau": _gt(1.0), "v_threshold": _gt(0.0), "attn_threshold": _gt(0.0),
        "attn_scale": _gt(0.0)}

    def __post_init__(self) -> None:
        _check_bounds(self)
        if self.family not in MODEL_FAMILIES:
            raise UserError(f"model.family: {self.family!r}; expected one of {', '.join(MODEL_FAMILIES)}")
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
    val_fraction: float = 0.1  # per class, the validation split held out of every stage (QAT chooses by it);
    # of the rest, the search's alpha steps
    max_train_samples: int = 0  # 0: all; else a seeded subset of the training split (quick checks)

    SECTION: ClassVar[str] = "data"
    BOUNDS: ClassVar[dict[str, _Bound]] = {"time_steps": _ge(1), "val_fraction": _in(0.0, 1.0),
                                           "max_train_samples": _ge(0)}

    def __post_init__(self) -> None:
        _check_bounds(self)


@dataclass(frozen=True)
class TrainConfig:
    """The Spikformer recipe: AdamW, linear warmup then cosine decay, label smoothing."""

    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 6e-2
    warmup_epochs: int = 10
    warmup_start_lr: float = 0.0  # the warmup ramps linearly from this to lr (the paper: 1e-4); 0: from 0
    label_smoothing: float = 0.1
    grad_clip: float = 0.0  # 0 disables clipping
    augment_shift: int = 0  # random translation of training frames by up to this many pixels
    seed: int = 0
    num_workers: int = 0

    SECTION: ClassVar[str] = "train"
    BOUNDS: ClassVar[dict[str, _Bound]] = {
        "epochs": _ge(1), "batch_size": _ge(1), "lr": _gt(0.0), "min_lr": _ge(0.0), "weight_decay": _ge(0.0),
        "warmup_epochs": _ge(0), "warmup_start_lr": _ge(0.0), "label_smoothing": _in(0.0, 1.0), "grad_clip": _ge(0.0),
        "augment_shift": _ge(0), "seed": _ge(0), "num_workers": _ge(0)}

    def __post_init__(self) -> None:
        _check_bounds(self)
        if self.min_lr > self.lr:
            raise UserError(f"train.min_lr: {self.min_lr} exceeds train.lr {self.lr} (the schedule decays to it)")
        if self.warmup_start_lr > self.lr:
            raise UserError(f"train.warmup_start_lr: {self.warmup_start_lr} exceeds train.lr {self.lr} "
                            "(the warmup rises from it to lr)")


@dataclass(frozen=True)
class SearchConfig:
    """Gumbel-softmax search.

    Each step first updates the selection logits alpha on a held-out batch with the hard
    (one-hot, straight-through) sample (`alpha_sample` "soft": the relaxed Gumbel-softmax sample)
    and the loss CE + hw_lambda * E / E_fp32, then the weights on a training batch with the soft
    sample and CE. The temperature falls exponentially from tau_start to tau_end over the search.

    The weights' learning rate is constant (`weight_schedule` "constant", the default) or, with
    "cosine", the trainer's schedule over the search's steps: a linear warmup over
    `weight_warmup_epochs` from `weight_warmup_start_lr` to `weight_lr`, then a cosine decay to
    `weight_min_lr` (the paper's recipe: 1e-4 -> 1e-3 -> 1e-5).
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
    cost: str = "energy"  # the hardware term: "energy" (45 nm table) or "fpga" (hqflow.fpga LUT-equivalents)
    fpga_table: str | None = None  # YAML FPGA resource table; None: tables/fpga_xc7.yaml
    fpga_lanes: int = 8  # lanes per weighted core assumed by the fpga cost (hqflow.fpga.DEFAULT_LANES)
    alpha_sample: str = "hard"  # the alpha step's Gumbel sample: "hard" (one-hot, straight-through) or "soft"
    weight_schedule: str = "constant"  # the weight step's lr: "constant" (weight_lr) or "cosine" (warmup + cosine)
    weight_warmup_epochs: int = 0  # cosine only: linear warmup epochs
    weight_warmup_start_lr: float = 0.0  # cosine only: the warmup starts here (0: from 0, as train.warmup_start_lr)
    weight_min_lr: float = 0.0  # cosine only: the decay ends here

    SECTION: ClassVar[str] = "search"
    BOUNDS: ClassVar[dict[str, _Bound]] = {
        "hw_lambda": _ge(0.0), "epochs": _ge(1), "tau_start": _gt(0.0), "tau_end": _gt(0.0), "alpha_lr": _gt(0.0),
        "weight_lr": _gt(0.0), "weight_decay": _ge(0.0), "fpga_lanes": _ge(1), "weight_warmup_epochs": _ge(0),
        "weight_warmup_start_lr": _ge(0.0), "weight_min_lr": _ge(0.0)}
    COSTS: ClassVar[tuple[str, ...]] = ("energy", "fpga")
    ALPHA_SAMPLES: ClassVar[tuple[str, ...]] = ("hard", "soft")
    WEIGHT_SCHEDULES: ClassVar[tuple[str, ...]] = ("constant", "cosine")

    def __post_init__(self) -> None:
        _check_bounds(self)
        if self.cost not in self.COSTS:
            raise UserError(f"search.cost: {self.cost!r}; expected one of {', '.join(self.COSTS)}")
        if self.alpha_sample not in self.ALPHA_SAMPLES:
            raise UserError(f"search.alpha_sample: {self.alpha_sample!r}; expected one of {', '.join(self.ALPHA_SAMPLES)}")
        if self.weight_schedule not in self.WEIGHT_SCHEDULES:
            raise UserError(f"search.weight_schedule: {self.weight_schedule!r}; expected one of "
                            f"{', '.join(self.WEIGHT_SCHEDULES)}")
        if self.weight_schedule == "constant":
            for key, default in (("weight_warmup_epochs", 0), ("weight_warmup_start_lr", 0.0), ("weight_min_lr", 0.0)):
                if getattr(self, key) != default:
                    raise UserError(f"search.{key}: {getattr(self, key)} has no effect with search.weight_schedule "
                                    "'constant'; set weight_schedule: cosine (or leave the key out)")
        for key in ("weight_warmup_start_lr", "weight_min_lr"):
            if getattr(self, key) > self.weight_lr:
                raise UserError(f"search.{key}: {getattr(self, key)} exceeds search.weight_lr {self.weight_lr}")
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
    warmup_start_lr: float = 0.0  # as train.warmup_start_lr

    SECTION: ClassVar[str] = "finetune"
    BOUNDS: ClassVar[dict[str, _Bound]] = {"epochs": _ge(1), "lr": _gt(0.0), "min_lr": _ge(0.0),
                                           "weight_decay": _ge(0.0), "warmup_epochs": _ge(0),
                                           "warmup_start_lr": _ge(0.0)}

    def __post_init__(self) -> None:
        _check_bounds(self)
        if self.min_lr > self.lr:
            raise UserError(f"finetune.min_lr: {self.min_lr} exceeds finetune.lr {self.lr} (the schedule decays to it)")
        if self.warmup_start_lr > self.lr:
            raise UserError(f"finetune.warmup_start_lr: {self.warmup_start_lr} exceeds finetune.lr {self.lr} "
                            "(the warmup rises from it to lr)")


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
    try:
        return cls(**values)
    except UserError as err:  # a bound of the section: say which file
        if where == "<override>":
            raise
        raise UserError(f"{where}: {err}") from None


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
    raw = read_yaml(path, "a config (YAML with sections model, data, train, search, finetune)")
    return config_from_dict(raw, str(path))


def apply_overrides(cfg: Config, items: list[str] | tuple[str, ...], option: str = "--set") -> Config:
    """`cfg` with `section.key=value` items applied in order; a value is read as YAML (`3`, `1e-4`,
    `soft`, `[true, false, false, false]`). A malformed item, an unknown key or a bad value is one
    error naming the option and the item."""
    for item in items:
        name, sep, text = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not key:
            raise UserError(f"{option} {item!r}: expected section.key=value (e.g. train.epochs=3)")
        if section not in _SECTIONS:
            raise UserError(f"{option} {item!r}: unknown section '{section}'; known: {', '.join(_SECTIONS)}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise UserError(f"{option} {item!r}: the value is not valid YAML") from None
        if value is None:
            raise UserError(f"{option} {item!r}: no value after '='")
        raw = {**dataclasses.asdict(getattr(cfg, section)), key: value}
        try:
            part = _section(section, raw, option)
        except UserError as err:
            raise UserError(f"{option} {item!r}: {str(err).removeprefix(option + ': ')}") from None
        cfg = dataclasses.replace(cfg, **{section: part})
    return cfg
