"""fp32 training and evaluation of the Spikformer (`hqflow train`, `hqflow evaluate`).

The recipe is the Spikformer one: AdamW, a linear warmup then a cosine decay to `min_lr`
(stepped every batch), cross-entropy with label smoothing, evaluation after every epoch.

A run folder holds:
    config.yaml      the full configuration the run used
    checkpoint.pt    the latest state (model, optimizer, schedule, epoch), written atomically
    metrics.jsonl    one JSON object per epoch (losses, accuracies, learning rate, seconds)
    curves.png       loss and accuracy per epoch
    INCOMPLETE       present while the run has not finished (see `hqflow.io`, "Run folders")

The loop is ready for `torchrun` with DistributedDataParallel: when a process group is
initialised, each rank trains on its shard of every epoch's permutation and only rank 0 writes
files or prints. The shuffle order of epoch e depends only on (seed, e), so `--resume`
continues exactly where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from hqflow.config import Config, TrainConfig, config_from_dict
from hqflow.data import FrameDataset, load_dataset
from hqflow.errors import UserError
from hqflow.io import RunFolder, atomic_text, atomic_write
from hqflow.search.model import Spikformer, quant_layers

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


# ----------------------------------------------------------------------------- data


class _TorchFrames(Dataset):
    """A FrameDataset (or the samples `indices` of it) as float tensors: frames [T, 2, H, W], label."""

    def __init__(self, frames: FrameDataset, indices: list[int] | None = None):
        self.frames = frames
        self.indices = list(range(len(frames))) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.frames[self.indices[i]]
        return torch.from_numpy(np.asarray(x, dtype=np.float32)), int(y)


class EpochShuffle(Sampler[int]):
    """Permutation of epoch e drawn from (seed, e) alone, sharded over `world` ranks.

    Training (shuffle=True): every rank sees `ceil(n / world)` indices (the permutation wraps
    around to fill the last shard), as DistributedSampler does, so that all ranks take the same
    number of steps. Evaluation (shuffle=False): rank r takes indices r, r + world, ... with no
    padding, so every sample is counted once. With world = 1 it is a plain seeded shuffle.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.n, self.world))
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.rank, self.n, self.world))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: len(self) * self.world - self.n]
        return iter(order[self.rank :: self.world])


def _world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a torch.distributed process group is running.

    Under `torchrun` (WORLD_SIZE > 1 in the environment) the group is started here, once, with
    the gloo backend (the loops run on the CPU).
    """
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shutdown_distributed() -> None:
    """End the process group `_world` started (without this, gloo can abort at interpreter exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the process that writes files and prints."""
    return _world()[0] == 0


def make_loader(frames: FrameDataset, batch_size: int, seed: int, train: bool, num_workers: int = 0,
                max_samples: int = 0, indices: list[int] | None = None) -> DataLoader:
    """Batches of (frames [B, T, 2, H, W] float, labels [B]) of the samples `indices` (default all);
    `max_samples` > 0 keeps a seeded subset of them."""
    if 0 < max_samples < len(frames if indices is None else indices):
        g = torch.Generator().manual_seed(seed)
        pool = list(range(len(frames))) if indices is None else indices
        indices = sorted(pool[i] for i in torch.randperm(len(pool), generator=g)[:max_samples].tolist())
    data = _TorchFrames(frames, indices)
    rank, world = _world()
    sampler = EpochShuffle(len(data), seed, rank, world, shuffle=train)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=False)


def load_split(cfg: Config, split: str) -> FrameDataset:
    """The configured data set's split as frames [T, 2, img_size, img_size].

    `model.num_classes` must be the data set's class count, or 0 (the data set's: see `load_splits`).
    """
    frames = load_dataset(cfg.data.dataset, split, time_steps=cfg.data.time_steps,
                          size=cfg.model.img_size, data_root=cfg.data.data_root, seed=cfg.train.seed)
    k, found = cfg.model.num_classes, len(frames.classes)
    if k < 0 or k not in (0, found):
        raise UserError(f"model.num_classes: {k}, but data set '{cfg.data.dataset}' has {found} classes "
                        f"(set it to {found}, or leave it out or 0 to take the data set's)")
    return frames


def load_splits(cfg: Config) -> tuple[Config, FrameDataset, FrameDataset]:
    """(cfg, train split, test split), with `model.num_classes` 0 replaced by the data set's class count.

    Call it before building a model or writing config.yaml, so that both hold the resolved number.
    """
    train_set, test_set = load_split(cfg, "train"), load_split(cfg, "test")
    if cfg.model.num_classes == 0:
        cfg = cfg.replace("model", num_classes=len(train_set.classes))
    return cfg, train_set, test_set


def random_shift(frames: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each sample of [B, T, C, H, W] by up to +-max_shift pixels (zero fill), same for all T."""
    if max_shift == 0:
        return frames
    b, _, _, h, w = frames.shape
    pad = nn.functional.pad(frames, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).tolist()
    return torch.stack([pad[i, ..., dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


# ----------------------------------------------------------------------------- schedule


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warmup over `warmup` steps, then cosine from 1 down to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- files


def load_checkpoint(run: str | Path) -> tuple[Config, Spikformer, dict[str, Any]]:
    """Read a run folder's (or a checkpoint file's) config and model; the rest of the state as a dict."""
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
    from hqflow.numerics import Candidate
    from hqflow.plan import plan_from_dict
    from hqflow.search.supernet import apply_formats, to_supernet

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


# ----------------------------------------------------------------------------- loops


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, progress: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of `model` over a loader (summed over ranks)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    for x, y in tqdm(loader, desc="eval", leave=False, disable=None if progress else True):
        logits = model(x)
        totals += torch.tensor([nn.functional.cross_entropy(logits, y, reduction="sum").item(),
                                (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    if _world()[1] > 1:
        dist.all_reduce(totals)
    return (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()


def train(cfg: Config, out: str | Path, resume: bool = False, force: bool = False,
          progress: bool = True, model: nn.Module | None = None, recipe: TrainConfig | None = None,
          extra_state: dict[str, Any] | None = None, resume_command: str | None = None) -> list[EpochMetrics]:
    """Train a Spikformer of `cfg`, writing the run folder `out`; returns the epoch log.

    By default a fresh fp32 model with the `cfg.train` recipe. Quantization-aware training
    passes its `model` (layers fixed to a plan), its `recipe`, and `extra_state` (the plan)
    to store in every checkpoint, so that `load_checkpoint` can rebuild the same model, and the
    `resume_command` its INCOMPLETE marker names. The folder's life cycle: `hqflow.io.RunFolder`.
    """
    out = Path(out)
    rank, world = _world()
    is_main = rank == 0
    cfg, train_set, test_set = load_splits(cfg)  # fail before writing; resolves model.num_classes
    folder = RunFolder(out, force, resume, resume_command or f"hqflow train --resume -o {out}") if is_main else None
    try:
        history = _train(cfg, out, folder, resume, progress, model, recipe or cfg.train, extra_state,
                         train_set, test_set)
    except BaseException:
        if folder is not None:
            folder.abandon()
        raise
    if folder is not None:
        folder.finish()
    return history


def _train(cfg: Config, out: Path, folder: RunFolder | None, resume: bool, progress: bool,
           model: nn.Module | None, tc: TrainConfig, extra_state: dict[str, Any] | None,
           train_set: FrameDataset, test_set: FrameDataset) -> list[EpochMetrics]:
    """The loop of `train`; rank 0 writes into `folder.path` (None on the other ranks)."""
    rank, world = _world()
    is_main = rank == 0
    torch.manual_seed(tc.seed)
    state: dict[str, Any] = {}
    if resume:
        saved_cfg, model, state = load_checkpoint(out)
        if saved_cfg.model != cfg.model:
            raise UserError(f"{out}: --resume with a different model config than the run's config.yaml")
        extra_state = {k: state[k] for k in EXTRA_KEYS if k in state}
    elif model is None:
        model = Spikformer(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    train_loader = make_loader(train_set, tc.batch_size, tc.seed, True, tc.num_workers, cfg.data.max_train_samples)
    test_loader = make_loader(test_set, tc.batch_size, tc.seed, False, tc.num_workers)
    steps = tc.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, tc.warmup_epochs * len(train_loader), tc.min_lr / tc.lr))
    history: list[EpochMetrics] = []
    start = 0
    if resume:
        # (nothing in the loop draws from torch's RNG today; restored anyway)
        history = restore_state(state, out / CHECKPOINT, {"optimizer": optimizer, "schedule": schedule},
                                EpochMetrics)
        start = state["epoch"]
        if is_main:  # a kill between the checkpoint and metrics.jsonl: rewrite it from the checkpoint
            _write_metrics(folder.path, history)
    elif is_main:
        atomic_text(folder.path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if is_main and start < tc.epochs:
        folder.mark(start, tc.epochs)
    kill_at = kill_step()
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    criterion = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)

    for epoch in range(start, tc.epochs):
        t0 = time.perf_counter()
        net.train()
        train_loader.sampler.set_epoch(epoch)
        loss_sum, correct, count = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
                   disable=None if progress and is_main else True)  # None: a bar on terminals only
        shift = torch.Generator().manual_seed(tc.seed * 100_003 + epoch + 1)
        for x, y in bar:
            logits = net(random_shift(x, tc.augment_shift, shift))
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            schedule.step()
            if kill_at is not None and schedule.last_epoch - 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}")
        if world > 1:  # the training figures over all ranks' shards
            totals = torch.tensor([loss_sum, correct, count], dtype=torch.float64)
            dist.all_reduce(totals)
            loss_sum, correct, count = totals.tolist()
        test_loss, test_acc = evaluate(model, test_loader)
        metrics = EpochMetrics(epoch + 1, loss_sum / count, correct / count, test_loss, test_acc,
                               optimizer.param_groups[0]["lr"], time.perf_counter() - t0)
        history.append(metrics)
        if is_main:
            _save_epoch(folder.path, cfg, model, optimizer, schedule, history, extra_state or {})
            folder.mark(metrics.epoch, tc.epochs)
            folder.commit_epoch()
            if progress:
                tqdm.write(f"epoch {metrics.epoch:3d}  train loss {metrics.train_loss:.3f} acc {metrics.train_acc:6.2%}"
                           f"  test loss {metrics.test_loss:.3f} acc {metrics.test_acc:6.2%}  {metrics.seconds:5.1f}s")
    if is_main and history:
        plot_curves(history, folder.path / "curves.png")
    return history


def _save_epoch(out: Path, cfg: Config, model: nn.Module, optimizer, schedule,
                history: list[EpochMetrics], extra_state: dict[str, Any]) -> None:
    """The epoch's files: checkpoint.pt first (the commit point: `--resume` starts from it), then
    metrics.jsonl, which `--resume` rewrites from the checkpoint's history."""
    state = {"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "rng": torch.get_rng_state(), "epoch": history[-1].epoch,
             "history": [dataclasses.asdict(m) for m in history], **extra_state}
    atomic_write(out / CHECKPOINT, lambda p: torch.save(state, p))
    _write_metrics(out, history)


def _write_metrics(out: Path, history: list) -> None:
    """metrics.jsonl: one JSON object per epoch of `history` (dataclass records)."""
    atomic_text(out / METRICS, "".join(json.dumps(dataclasses.asdict(m)) + "\n" for m in history))


KILL_ENV = "HQFLOW_TEST_KILL_AT_STEP"


def kill_step() -> int | None:
    """Test hook: with HQFLOW_TEST_KILL_AT_STEP=N in the environment, a train, finetune or search
    process SIGKILLs itself right after its optimizer step N (0-based, counted over the whole run,
    epochs before a resume included), so a test can kill it at a known instant. Unset: None."""
    value = os.environ.get(KILL_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{KILL_ENV}={value!r}: expected an integer step") from None


def plot_curves(history: list[EpochMetrics], path: Path) -> None:
    """Loss and accuracy per epoch, train and test, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m.epoch for m in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [m.train_loss for m in history], label="train")
    ax_loss.plot(epochs, [m.test_loss for m in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * m.train_acc for m in history], label="train")
    ax_acc.plot(epochs, [100 * m.test_acc for m in history], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


@dataclass(frozen=True)
class Evaluation:
    dataset: str
    split: str
    samples: int
    loss: float
    accuracy: float
    seconds: float


def evaluate_run(run: str | Path, split: str = "test", data_root: str | None = None,
                 batch_size: int | None = None, progress: bool = True) -> Evaluation:
    """Accuracy of a run's checkpoint on a split of its data set."""
    cfg, model, _ = load_checkpoint(run)
    if data_root is not None:
        cfg = cfg.replace("data", data_root=data_root)
    frames = load_split(cfg, split)
    loader = make_loader(frames, batch_size or cfg.train.batch_size, cfg.train.seed, False)
    t0 = time.perf_counter()
    loss, acc = evaluate(model, loader, progress=progress)
    return Evaluation(cfg.data.dataset, split, len(frames), loss, acc, time.perf_counter() - t0)
