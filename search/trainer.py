"""fp32 training and evaluation of the Spikformer (`hqflow train`, `hqflow evaluate`).

The recipe is the Spikformer one: AdamW, a linear warmup then a cosine decay to `min_lr`
(stepped every batch), cross-entropy with label smoothing, evaluation after every epoch.

A run trains on the training split less its validation split (data.val_fraction per class, seeded;
search/selection.py), which is held out of every stage.

A run folder holds:
    config.yaml      the full configuration the run used
    validation.json  the validation split held out of training (indices into the training split)
    checkpoint.pt    the latest state (model, optimizer, schedule, epoch), written atomically
    metrics.jsonl    one JSON object per epoch (losses, accuracies, learning rate, seconds)
    curves.png       loss and accuracy per epoch
    INCOMPLETE       present while the run has not finished (see `hqflow.io`, "Run folders")

The loop is ready for `torchrun` with DistributedDataParallel: when a process group is
initialised, each rank trains on its shard of every epoch's permutation (train.batch_size samples
per rank and step) and only rank 0 writes files or prints. BatchNorm statistics: each rank keeps
its own (DDP without buffer broadcast) and they are averaged over the ranks before every
evaluation and checkpoint (`distributed.average_buffers`). The shuffle order of epoch e depends
only on (seed, e), so `--resume` continues exactly where an interrupted run stopped.

Devices: `device` (a torch device or "auto" / "cpu" / "cuda" / "cuda:N") holds the model, the
batches and the loss; `amp` runs the forward under bf16 autocast (the fake quantizers stay fp32).
Checkpoints are written with CPU tensors and load onto any device.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hqflow.config import Config, TrainConfig
from hqflow.data import FrameDataset, data_root_for
from hqflow.errors import UserError
from hqflow.io import RunFolder, atomic_text, atomic_write
from hqflow.search.checkpoint import CHECKPOINT, EXTRA_KEYS, load_checkpoint, restore_state, save_checkpoint
from hqflow.search.selection import SELECTION, VALIDATION, Kept, Selection, split_record, stage_split
from hqflow.search.distributed import (autocast, average_buffers, in_run_folder, rank_and_world,
                                       record_step, resolve_device, start_distributed)
from hqflow.search.loaders import epoch_seed, load_split, load_splits, make_loader, random_shift
from hqflow.search.model import Spikformer

METRICS = "metrics.jsonl"


# ----------------------------------------------------------------------------- schedule


def lr_factor(step: int, total: int, warmup: int, min_ratio: float, start_ratio: float = 0.0) -> float:
    """The learning rate of optimizer step `step` (0-based) as a fraction of the peak lr.

    Linear warmup over `warmup` steps from `start_ratio` (the lr before the first step, 0 by default)
    to 1 (reached at step warmup - 1): `start_ratio + (1 - start_ratio) * (step + 1) / warmup`; then
    cosine from 1 down to `min_ratio` at `total`. With start_ratio 0 the warmup is `(step + 1) / warmup`
    bit for bit (0.0 + 1.0 * x == x).
    """
    if step < warmup:
        return start_ratio + (1.0 - start_ratio) * ((step + 1) / warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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
    val_loss: float | None = None  # a run that selects (QAT): on its validation split
    val_acc: float | None = None


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, progress: bool = False, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of `model` over a loader (summed over ranks), on the
    device of the model's parameters (the batches are moved there; `amp`: bf16 autocast)."""
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    for x, y in tqdm(loader, desc="eval", leave=False, disable=None if progress else True):
        x, y = x.to(device), y.to(device)
        with autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        totals += torch.tensor([nn.functional.cross_entropy(logits, y, reduction="sum").item(),
                                (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    if rank_and_world()[1] > 1:
        totals = totals.to(device)  # nccl reduces device tensors only
        dist.all_reduce(totals)
        totals = totals.cpu()
    return (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()


def train(cfg: Config, out: str | Path, resume: bool = False, force: bool = False,
          progress: bool = True, model: nn.Module | None = None, recipe: TrainConfig | None = None,
          extra_state: dict[str, Any] | None = None, resume_command: str | None = None,
          device: torch.device | str = "cpu", amp: bool = False, select: bool = False) -> list[EpochMetrics]:
    """Train a Spikformer of `cfg`, writing the run folder `out`; returns the epoch log.

    By default a fresh fp32 model with the `cfg.train` recipe. Quantization-aware training
    passes its `model` (layers fixed to a plan), its `recipe`, and `extra_state` (the plan)
    to store in every checkpoint, so that `load_checkpoint` can rebuild the same model, and the
    `resume_command` its INCOMPLETE marker names. The folder's life cycle: `hqflow.io.RunFolder`.
    `device`: where to train (module docstring); `amp`: bf16 autocast of the forward. Every run trains on
    the training split less the validation split (search/selection.py); `select` (QAT): keep the model's
    starting weights or its best epoch by validation accuracy; the checkpoint ends with the kept weights.
    """
    out = Path(out)
    device = resolve_device(device)
    rank, world = start_distributed(device)
    is_main = rank == 0
    cfg, train_set, test_set = load_splits(cfg)  # fail before writing; resolves model.num_classes
    folder = RunFolder(out, force, resume, resume_command or f"hqflow train --resume -o {out}") if is_main else None
    return in_run_folder(folder, lambda: _train(cfg, out, folder, resume, progress, model, recipe or cfg.train,
                                                extra_state, train_set, test_set, device, amp, select))


def _train(cfg: Config, out: Path, folder: RunFolder | None, resume: bool, progress: bool,
           model: nn.Module | None, tc: TrainConfig, extra_state: dict[str, Any] | None,
           train_set: FrameDataset, test_set: FrameDataset, device: torch.device = torch.device("cpu"),
           amp: bool = False, select: bool = False) -> list[EpochMetrics]:
    """The loop of `train`; rank 0 writes into `folder.path` (None on the other ranks)."""
    rank, world = rank_and_world()
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
    model.to(device)  # before the optimizer: its state (and a resumed one) lives on the parameters' device
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    train_idx, val_idx = stage_split(out, resume, train_set.labels, cfg.data, tc.seed)  # held out of every stage
    select = select and bool(val_idx) and (not resume or "selection" in state)  # a run begun without it goes on so
    train_loader = make_loader(train_set, tc.batch_size, tc.seed, True, tc.num_workers, indices=train_idx)
    test_loader = make_loader(test_set, tc.batch_size, tc.seed, False, tc.num_workers)
    val_loader = make_loader(train_set, tc.batch_size, tc.seed, False, tc.num_workers, indices=val_idx) if select \
        else None
    steps = tc.epochs * len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, tc.warmup_epochs * len(train_loader), tc.min_lr / tc.lr,
                                tc.warmup_start_lr / tc.lr))
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
        if val_idx:
            record = split_record(train_set.labels, cfg.data.val_fraction, tc.seed, val_idx)
            atomic_text(folder.path / VALIDATION, json.dumps(record) + "\n")
    selection = None
    if select:  # the starting weights are the first candidate (epoch 0)
        selection = (Selection.restore(state["selection"]) if resume else
                     Selection(Kept(0, *_val_test(model, val_loader, test_loader, amp)), model))
    if is_main and start < tc.epochs:
        folder.mark(start, tc.epochs)
        if progress:
            held = f", the validation split's {len(val_idx):,} held out ({VALIDATION})" if val_idx else ""
            tqdm.write(f"training on {len(train_idx):,} samples{held}")
    kill_at = kill_step()
    # each rank keeps its own BN statistics (no buffer broadcast); averaged before evaluation and checkpoint
    net: nn.Module = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                   else {"broadcast_buffers": False})  # the newer name of the same switch
        net = ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)
    criterion = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)

    for epoch in range(start, tc.epochs):
        t0 = time.perf_counter()
        net.train()
        train_loader.sampler.set_epoch(epoch)
        loss_sum, correct, count = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
                   disable=None if progress and is_main else True)  # None: a bar on terminals only
        shift = torch.Generator().manual_seed(epoch_seed(tc.seed, epoch + 1))
        for x, y in bar:
            x = random_shift(x, tc.augment_shift, shift).to(device)  # the shift's generator is on the CPU
            y = y.to(device)
            with autocast(device, amp):
                logits = net(x)
                loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            schedule.step()
            record_step("step", schedule.last_epoch - 1, model, x)
            if kill_at is not None and schedule.last_epoch - 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}")
        if world > 1:  # the training figures over all ranks' shards
            totals = torch.tensor([loss_sum, correct, count], dtype=torch.float64, device=device)
            dist.all_reduce(totals)
            loss_sum, correct, count = totals.tolist()
        average_buffers(model)  # the same BN statistics on every rank for evaluation and checkpoint
        record_step("epoch", epoch + 1, model)
        test_loss, test_acc = evaluate(model, test_loader, amp=amp)
        val_loss, val_acc = evaluate(model, val_loader, amp=amp) if select else (None, None)
        metrics = EpochMetrics(epoch + 1, loss_sum / count, correct / count, test_loss, test_acc,
                               optimizer.param_groups[0]["lr"], time.perf_counter() - t0, val_loss, val_acc)
        history.append(metrics)
        if selection is not None:
            selection.offer(Kept(epoch + 1, val_acc, val_loss, test_acc), model)
        if is_main:
            _save_epoch(folder.path, cfg, model, optimizer, schedule, history,
                        (extra_state or {}) | ({"selection": selection.state()} if selection else {}))
            folder.mark(metrics.epoch, tc.epochs)
            folder.commit_epoch()
            if progress:
                tqdm.write(f"epoch {metrics.epoch:3d}  train loss {metrics.train_loss:.3f} acc {metrics.train_acc:6.2%}"
                           f"  test loss {metrics.test_loss:.3f} acc {metrics.test_acc:6.2%}  {metrics.seconds:5.1f}s")
    if selection is not None and history:
        model.load_state_dict(selection.weights)  # the run's checkpoint holds what it kept
        if is_main:
            _save_epoch(folder.path, cfg, model, optimizer, schedule, history,
                        (extra_state or {}) | {"selection": selection.state()})
            best = max(history, key=lambda m: m.val_acc)  # the first of the best epochs
            atomic_text(folder.path / SELECTION, json.dumps(selection.record(
                Kept(best.epoch, best.val_acc, best.val_loss, best.test_acc)), indent=2) + "\n")
    if is_main and history:
        plot_curves(history, folder.path / "curves.png")
    return history


def _val_test(model: nn.Module, val_loader, test_loader, amp: bool) -> tuple[float, float, float]:
    """(validation accuracy, validation loss, test accuracy) of the model as it is."""
    val_loss, val_acc = evaluate(model, val_loader, amp=amp)
    return val_acc, val_loss, evaluate(model, test_loader, amp=amp)[1]


def _save_epoch(out: Path, cfg: Config, model: nn.Module, optimizer, schedule,
                history: list[EpochMetrics], extra_state: dict[str, Any]) -> None:
    """The epoch's files: checkpoint.pt first (the commit point: `--resume` starts from it), then
    metrics.jsonl, which `--resume` rewrites from the checkpoint's history."""
    state = {"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "rng": torch.get_rng_state(), "epoch": history[-1].epoch,
             "history": [dataclasses.asdict(m) for m in history], **extra_state}
    save_checkpoint(out / CHECKPOINT, state)
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
    data_root: str = ""  # which data root was read (data_root_for's phrase)


def evaluate_run(run: str | Path, split: str = "test", data_root: str | None = None,
                 batch_size: int | None = None, progress: bool = True, device: torch.device | str = "cpu",
                 amp: bool = False) -> Evaluation:
    """Accuracy of a run's checkpoint on a split of its data set, on `device` (`amp`: bf16 autocast)."""
    cfg, model, _ = load_checkpoint(run, resolve_device(device))
    root, which = data_root_for(data_root, cfg.data.data_root, f"{run}: config")
    frames = load_split(cfg.replace("data", data_root=root), split)
    loader = make_loader(frames, batch_size or cfg.train.batch_size, cfg.train.seed, False)
    t0 = time.perf_counter()
    loss, acc = evaluate(model, loader, progress=progress, amp=amp)
    return Evaluation(cfg.data.dataset, split, len(frames), loss, acc, time.perf_counter() - t0, which)
