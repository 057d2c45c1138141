"""The time `hqflow paper` will take, projected before it starts (search/paper.py prints it).

`plan_stages`: the optimizer steps and evaluation batches every remaining stage takes, counted from
the configuration and the data set's split sizes (per rank under torchrun); `measure_step_seconds`:
the seconds of one step of each kind measured on this machine (the --device) with random frames of
the configured shape (a fp32 training step, a search step, a QAT step, an evaluation batch);
`projection` / `projection_table`: their product per stage, as rows and as markdown.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hqflow.config import Config
from hqflow.errors import UserError
from hqflow.io import read_incomplete

# Split sizes (train, test) of the public data sets as hqflow loads them, for a dry run without the data:
# DVS128 Gesture's official split in tonic's preprocessed form; CIFAR10-DVS 10,000 recordings split
# 90/10; N-Caltech101 8,709 recordings split 90/10 per class (the test count rounds per class: about).
PUBLISHED_SIZES: dict[str, tuple[int, int]] = {"dvs128-gesture": (1077, 264), "cifar10-dvs": (9000, 1000),
                                                "n-caltech101": (7838, 871)}
STEP_KINDS = ("train", "search", "qat", "eval")


# ----------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline and the work left in it (per rank).

    kind: "train" | "search" | "qat" | "report" | "fixed" | "export"; steps: optimizer steps left (a
    search step is an alpha step plus a weight step); eval_batches: evaluation batches left;
    epochs_done / epochs: progress of a training-like stage (None for the others); done: nothing left.
    """

    name: str
    kind: str
    folder: str
    epochs: int | None
    epochs_done: int | None
    steps: int
    eval_batches: int
    done: bool


def _per_rank_batches(n: int, batch: int, world: int, shuffle: bool) -> int:
    """Batches one rank takes over `n` samples (`loaders.EpochShuffle`: training pads to ceil(n / world))."""
    if shuffle:
        return math.ceil(math.ceil(n / world) / batch)
    return math.ceil(len(range(0, n, world)) / batch)  # rank 0 has the most


def stage_progress(folder: Path, epochs: int) -> tuple[int, bool]:
    """(epochs done, complete) of a run folder: complete when its checkpoint is there without INCOMPLETE."""
    if (folder / "checkpoint.pt").is_file():
        info = read_incomplete(folder)
        if info is None:
            return epochs, True
        done = info.get("epochs_done")
        return (done if isinstance(done, int) and 0 <= done <= epochs else 0), False
    return 0, False


def lambda_dir(out: Path, lam: float) -> Path:
    """The sweep's folder of one lambda (as `sweep.sweep` names it)."""
    return out / "sweep" / f"lambda_{lam:g}"


def plan_stages(cfg: Config, out: Path, n_train: int, n_test: int, lambdas: Sequence[float], finetune_epochs: int,
                world: int = 1, n_validation: int | None = None) -> list[Stage]:
    """Every stage of the pipeline in order, with the work left in it (read from OUT's folders).

    `n_train` / `n_test`: the data set's split sizes (data.max_train_samples applies to the training
    split, as in training and search); `n_validation`: the validation split every stage holds out of
    it (search/selection.py; default its fraction of the samples, when the labels are not at hand);
    `world`: processes under torchrun (steps are per rank).
    """
    from hqflow.search.quant_search import split_train_val  # the search's own split rule

    tc, sc = cfg.train, cfg.search
    used = min(n_train, cfg.data.max_train_samples) if cfg.data.max_train_samples > 0 else n_train
    if n_validation is None:  # the stratified split's size without the labels: the fraction of the whole
        n_validation = round(cfg.data.val_fraction * used)
    used -= n_validation  # held out of every stage
    train_steps = _per_rank_batches(used, tc.batch_size, world, True)
    eval_batches = _per_rank_batches(n_test, tc.batch_size, world, False)
    w_idx, _ = split_train_val(used, cfg.data.val_fraction, tc.seed)
    search_steps = _per_rank_batches(len(w_idx), tc.batch_size, world, True)
    stages = []

    def training(name: str, kind: str, folder: Path, epochs: int, per_epoch: int) -> None:
        done, complete = stage_progress(folder, epochs)
        left = 0 if complete else epochs - done
        stages.append(Stage(name, kind, str(folder), epochs, done, left * per_epoch, left * eval_batches, complete))

    training("fp32 training", "train", out / "fp32", tc.epochs, train_steps)
    for lam in lambdas:
        folder = lambda_dir(out, lam)
        training(f"search lambda {lam:g}", "search", folder, sc.epochs, search_steps)
        if finetune_epochs:
            training(f"QAT lambda {lam:g}", "qat", folder / "qat", finetune_epochs, train_steps)
    from hqflow.search.report import RATE_BATCHES

    for lam in lambdas:
        folder = lambda_dir(out, lam) / "report"
        done = (folder / "report.json").is_file()
        stages.append(Stage(f"report lambda {lam:g}", "report", str(folder), None, None, 0,
                            0 if done else min(RATE_BATCHES, eval_batches), done))
    if not finetune_epochs:
        stages.append(Stage("fix the chosen plan (no QAT)", "fixed", "<chosen>/fixed", None, None, 0, 0,
                            _chosen_fixed_done(out)))
    stages.append(Stage("export of the chosen plan", "export", str(out / "export"), None, None, 0, 0,
                        (out / "export" / "graph.json").is_file()))
    return stages


def _chosen_fixed_done(out: Path) -> bool:
    summary = out / "paper.json"
    if not summary.is_file():
        return False
    try:
        chosen = json.loads(summary.read_text())["chosen"]["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (Path(chosen) / "fixed" / "checkpoint.pt").is_file()


# ----------------------------------------------------------------------------- measuring


def measure_step_seconds(cfg: Config, steps: int = 2, warmup: int = 1, batch_size: int | None = None,
                         kinds: Sequence[str] = STEP_KINDS, timer: Callable[[], float] = time.perf_counter,
                         device: str | None = None) -> dict[str, float]:
    """Seconds of one step of each kind of `cfg`'s model at the configured batch, measured on this machine.

    Each kind runs `warmup` untimed steps then `steps` timed ones on random frames [B, T, 2, H, W]
    (B = `batch_size`, default train.batch_size; dense compute does not depend on the values). With a
    smaller `batch_size` the figure is scaled by train.batch_size / batch_size (linear in B: an
    approximation, for machines where the configured batch does not fit). Kinds: "train" (fp32 forward,
    backward, AdamW step), "search" (alpha step with the hard sample + weight step with the soft one),
    "qat" (the model with every layer in the search's last candidate), "eval" (forward, no gradient).
    `timer` is injectable for tests. `device`: as the training commands' --device (auto, cpu, cuda,
    cuda:N); on CUDA each timing waits for the GPU (torch.cuda.synchronize).
    """
    import torch
    from torch import nn

    from hqflow.numerics import Candidate
    from hqflow.search import supernet
    from hqflow.search.distributed import resolve_device
    from hqflow.search.model import Spikformer

    dev = resolve_device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    unknown = [k for k in kinds if k not in STEP_KINDS]
    if unknown:
        raise UserError(f"step kinds {unknown}: expected some of {', '.join(STEP_KINDS)}")
    batch = batch_size or cfg.train.batch_size
    m, t = cfg.model, cfg.data.time_steps
    classes = m.num_classes or 10
    model_cfg = dataclasses.replace(m, num_classes=classes)
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, t, m.in_channels, m.img_size, m.img_size, generator=generator) < 0.1).float().to(dev)
    y = torch.randint(0, classes, (batch,), generator=generator).to(dev)
    criterion = nn.CrossEntropyLoss()
    candidates = tuple(Candidate.parse(n) for n in cfg.search.candidates)
    result = {}
    for kind in kinds:
        torch.manual_seed(0)
        model = Spikformer(model_cfg)
        if kind == "search":
            supernet.to_supernet(model, candidates)
        elif kind == "qat":
            supernet.apply_formats(model, {n: candidates[-1] for n in supernet.weight_layers(model)})
        model.to(dev)
        if kind == "search":
            w_opt = torch.optim.AdamW(supernet.weight_parameters(model), lr=1e-4)
            a_opt = torch.optim.Adam(supernet.alpha_parameters(model), lr=1e-3)
        else:
            w_opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            if kind == "eval":
                model.eval()
                with torch.no_grad():
                    model(x)
                return
            model.train()
            if kind == "search":
                supernet.set_sampling(model, 1.0, hard=cfg.search.alpha_sample == "hard")
                a_opt.zero_grad(set_to_none=True)
                criterion(model(x), y).backward()
                a_opt.step()
                supernet.set_sampling(model, 1.0, hard=False, learn_alpha=False)
            w_opt.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            w_opt.step()

        for _ in range(warmup):
            step()
        sync()
        start = timer()
        for _ in range(steps):
            step()
        sync()
        result[kind] = (timer() - start) / steps * (cfg.train.batch_size / batch)
        del model, w_opt
    return result


def projection(stages: Sequence[Stage], seconds: dict[str, float]) -> list[dict[str, Any]]:
    """Per stage: steps and eval batches left, and the projected seconds = steps x seconds[kind] +
    eval_batches x seconds["eval"] (None for stages not projected: reports' few batches are, the
    fixing and the export are not)."""
    rows = []
    for s in stages:
        if s.kind in ("train", "search", "qat", "report"):
            step = seconds.get(s.kind, 0.0) if s.steps else 0.0
            projected = s.steps * step + s.eval_batches * seconds.get("eval", 0.0)
        else:
            projected = None
        rows.append({"stage": s.name, "kind": s.kind, "status": _status(s), "steps": s.steps,
                     "eval_batches": s.eval_batches, "seconds": projected})
    return rows


def _status(s: Stage) -> str:
    if s.done:
        return "done"
    if s.epochs_done:
        return f"resume at epoch {s.epochs_done + 1} of {s.epochs}"
    return "to do"


def format_duration(seconds: float) -> str:
    """`3 d 4 h`, `5 h 12 min`, `7 min 3 s`, `12 s`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    mins, s = divmod(rest, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {mins} min"
    if mins:
        return f"{mins} min {s} s"
    return f"{s} s"


def projection_table(rows: list[dict[str, Any]], seconds: dict[str, float] | None, hardware: str) -> str:
    """The projection as text: one line per stage, the measured step times, the total."""
    lines = [f"{'stage':<30} {'status':<28} {'steps':>9} {'eval batches':>13} {'projected':>14}"]
    total = 0.0
    for r in rows:
        shown = "-" if r["seconds"] is None else format_duration(r["seconds"])
        total += r["seconds"] or 0.0
        lines.append(f"{r['stage']:<30} {r['status']:<28} {r['steps']:>9,} {r['eval_batches']:>13,} {shown:>14}")
    if seconds:
        lines.append("measured seconds per step on " + hardware + ": "
                     + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items()))
    lines.append(f"projected total: {format_duration(total)} ({total:,.0f} s; reports' rates included, "
                 "fixing and export not)")
    return "\n".join(lines)


def hardware_name(device: str | None = None) -> str:
    """The hardware the step times are measured on, in words."""
    import os

    import torch

    from hqflow.search.distributed import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} ({dev})"
    return f"CPU, {torch.get_num_threads()} threads ({os.cpu_count()} cores)"
