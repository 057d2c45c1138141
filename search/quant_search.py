"""`hqflow search` and `hqflow finetune`: the heterogeneous quantization search, then QAT.

Search: the Spikformer becomes a supernet
(`supernet.py`) and each step alternates

    1. alpha step, on a held-out batch (data.val_fraction of the training split less the validation
       split, which no stage trains on: search/selection.py), hard sample
       (search.alpha_sample "soft": the relaxed Gumbel-softmax sample):
           loss = CE + hw_lambda * E(alpha) / E_fp32,  E(alpha) = sum_l sum_k softmax(alpha_l)_k E_lk
       E_lk is the 45 nm energy (search.cost "energy", the default) or the FPGA resources of layer l in
       format k as LUT-equivalents (search.cost "fpga", hqflow.fpga.fpga_cost_matrix), both normalized
       by the fp32 model's figure
    2. weight step, on a training batch, soft sample:   loss = CE (label smoothing); its lr constant
       (search.weight_schedule "constant") or warmup + cosine ("cosine": `weight_lr_factor`)

with the Gumbel temperature tau falling exponentially from tau_start to tau_end. After every
epoch the derived plan (each layer's most probable format) is evaluated on the test split.

A search folder holds:
    plan.json         the derived plan (QuantPlan) with probabilities and costs
    checkpoint.pt     weights + alphas + optimiser state (resumable), written atomically
    search_log.jsonl  per step: tau, CE of both steps, expected energy (% of fp32), probabilities
    metrics.jsonl     per epoch: test accuracy of the derived plan, its energy and bits
    probabilities.png selection probabilities of every layer over the search, with the loss
    INCOMPLETE        present while the search has not finished (see `hqflow.io`, "Run folders")

Finetune trains the model with the plan fixed (every layer in its chosen format), starting
from the searched weights, with the trainer's loop (`trainer.train`).

Devices and processes (`hqflow.search.distributed`): `device` holds the supernet, its fake
quantizers, the cost tables, the batches and the losses; `amp` runs the forwards under bf16
autocast (the quantizers, the Gumbel sample and the cost stay fp32). Under `torchrun` both steps
are data-parallel: each rank draws its batches from its shard of the weight split and of the
held-out alpha split (train.batch_size samples per rank and step), the alpha gradients and the
weight gradients are averaged over the ranks before each optimizer step, so alphas and weights
are identical on every rank after every step. The Gumbel noise is the same on every rank: it is
drawn from torch's CPU generator (`supernet.gumbel_softmax`), seeded alike on every rank and
drawn the same number of times. BatchNorm statistics are averaged over the ranks before every
evaluation and checkpoint. Only rank 0 writes (plan.json, checkpoint, logs) and prints; the log's
CE figures are the means over the ranks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from hqflow import fpga
from hqflow.config import Config
from hqflow.cost import cost_matrix, layer_cost, layer_shapes, load_energy_table, summarize
from hqflow.errors import UserError
from hqflow.io import RunFolder, atomic_text, require_complete
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan, load_plan
from hqflow.search import supernet
from hqflow.search.model import Spikformer
from hqflow.search.checkpoint import CHECKPOINT, load_checkpoint, restore_state, save_checkpoint
from hqflow.search.distributed import (all_reduce_grads, autocast, average_buffers, in_run_folder,
                                       mean_over_ranks, record_step, resolve_device, start_distributed)
from hqflow.search.loaders import epoch_seed, load_splits, make_loader, random_shift
from hqflow.search.selection import VALIDATION, split_record, stage_split
from hqflow.search.trainer import EpochMetrics, evaluate, kill_step, lr_factor, train
from hqflow.models import topology_of

SEARCH_LOG = "search_log.jsonl"


@dataclass(frozen=True)
class SearchEpoch:
    epoch: int
    tau: float
    weight_ce: float
    alpha_ce: float
    energy_pct: float  # expected energy under softmax(alpha), % of fp32
    test_acc: float  # derived plan
    plan_energy_pct: float
    plan_avg_bits: float
    seconds: float


def temperature(step: int, total: int, start: float, end: float) -> float:
    """Exponential decay from `start` (step 0) to `end` (last step)."""
    return start * (end / start) ** (step / max(1, total - 1))


ALPHA_SPLIT_SEED_OFFSET = 17  # the weights / alphas split draws its own generator, apart from the shuffles'


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of the training split's indices into (weight step indices, alpha step indices)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + ALPHA_SPLIT_SEED_OFFSET)).tolist()
    alpha_count = max(1, round(val_fraction * n))
    return sorted(order[alpha_count:]), sorted(order[:alpha_count])


def plan_of(model: nn.Module, cfg: Config, shapes, table, hw_lambda: float) -> QuantPlan:
    """The derived plan: every layer's most probable format, with probabilities and costs."""
    layers, costs, fp32 = [], [], []
    for shape, (name, m) in zip(shapes, supernet.searchable(model).items()):
        probs = m.probabilities().tolist()
        best = m.candidates[max(range(len(probs)), key=probs.__getitem__)]
        cost = layer_cost(shape, best, table)
        costs.append(cost)
        fp32.append(layer_cost(shape, Candidate("fp32", 32), table))
        layers.append(LayerPlan(name, best, {c.name: round(p, 6) for c, p in zip(m.candidates, probs)},
                                cost.macs, cost.storage_bits, cost.energy_pj))
    summary = summarize(costs, fp32)
    summary.pop("layers")
    summary["energy_table"] = table.name  # the cost table's name (45nm, paper) or path
    summary.update(_fpga_summary(cfg, shapes, {lp.name: lp.candidate for lp in layers}))
    candidates = next(iter(supernet.searchable(model).values())).candidates
    return QuantPlan(tuple(layers), candidates, hw_lambda, summary)


def _fpga_summary(cfg: Config, shapes, formats: dict[str, Candidate]) -> dict:
    """The plan's record of the search's hardware term and its FPGA resources (hqflow.fpga estimate):
    {"cost": "energy" | "fpga", "fpga": {lut, ff, dsp, bram (totals), lanes, table}}; without "fpga" when the
    model has ops the sequential cores' resource model lacks and the cost is the energy."""
    sc = cfg.search
    table = fpga.load_fpga_table(sc.fpga_table)
    try:
        x_bits = fpga.layer_input_bits(topology_of(cfg.model), cfg.data.time_steps)
    except UserError:
        if sc.cost == "fpga":
            raise
        return {"cost": sc.cost}  # a model with ops the sequential resource model lacks (the Spike-driven Transformer)
    res = fpga.total(fpga.plan_resources(shapes, formats, table, sc.fpga_lanes, x_bits))
    return {"cost": sc.cost, "fpga": {**{k: round(v, 1) for k, v in res.to_dict().items()}, "lanes": sc.fpga_lanes,
                                      "table": Path(table.path).name, "estimate": True}}


def _hw_cost(cfg: Config, shapes, candidates, energy: torch.Tensor, energy_fp32: float) -> tuple[torch.Tensor, float]:
    """The search's hardware cost table [L, K] and its fp32 normalizer: the 45 nm energy (search.cost
    "energy"), or the FPGA LUT-equivalents of hqflow.fpga.fpga_cost_matrix ("fpga"), each layer's input
    width from the topology (event counts into the first conv, residual sums into q/k/v and fc1)."""
    sc = cfg.search
    if sc.cost == "energy":
        return energy, energy_fp32
    table = fpga.load_fpga_table(sc.fpga_table)
    x_bits = fpga.layer_input_bits(topology_of(cfg.model), cfg.data.time_steps)
    matrix = fpga.fpga_cost_matrix(shapes, candidates, table, sc.fpga_lanes, x_bits)
    ref = fpga.fpga_cost_matrix(shapes, (Candidate("fp32", 32),), table, sc.fpga_lanes, x_bits)
    return torch.tensor(matrix, dtype=torch.float64), sum(row[0] for row in ref)


def run_search(cfg: Config, out: str | Path, init: str | Path | None = None, resume: bool = False,
           force: bool = False, progress: bool = True, device: torch.device | str = "cpu",
           amp: bool = False) -> list[SearchEpoch]:
    """Run the search of `cfg.search` from the fp32 run `init` (or from scratch); write `out`.

    `device`: where (module docstring; "auto", "cpu", "cuda", "cuda:N"); `amp`: bf16 autocast."""
    out, sc = Path(out), cfg.search
    device = resolve_device(device)
    rank, _ = start_distributed(device)
    cfg, train_set, test_set = load_splits(cfg)  # resolves model.num_classes (0: the data set's)
    table = load_energy_table(sc.energy_table)
    fpga.load_fpga_table(sc.fpga_table)  # a bad table fails here, before the run folder exists
    folder = RunFolder(out, force, resume, f"hqflow search --resume -o {out}", CHECKPOINT) if rank == 0 else None
    return in_run_folder(folder, lambda: _search(cfg, out, folder, init, resume, progress, train_set, test_set,
                                                 table, device, amp))


def _search(cfg: Config, out: Path, folder: RunFolder | None, init: str | Path | None, resume: bool, progress: bool,
            train_set, test_set, table, device: torch.device = torch.device("cpu"),
            amp: bool = False) -> list[SearchEpoch]:
    """The loop of `search`; rank 0 writes into `folder.path` (None on the other ranks)."""
    is_main = folder is not None
    sc, tc = cfg.search, cfg.train
    candidates = tuple(Candidate.parse(n) for n in sc.candidates)
    state: dict[str, Any] = {}
    if resume:
        cfg, model, state = load_checkpoint(out)
        sc, tc = cfg.search, cfg.train
    else:
        torch.manual_seed(tc.seed)
        if init is not None:
            require_complete(Path(init), "--from")
            init_cfg, model, _ = load_checkpoint(init)
            if init_cfg.model != cfg.model:
                raise UserError(f"{init}: its model config differs from the search's")
        else:
            model = Spikformer(cfg.model)
        supernet.to_supernet(model, candidates)
    model.to(device)  # before the optimizers: their state (and a resumed one) lives on the parameters' device

    shapes = layer_shapes(cfg.model, cfg.data.time_steps)
    energy = torch.tensor(cost_matrix(shapes, candidates, table), dtype=torch.float64, device=device)
    energy_fp32 = sum(layer_cost(s, Candidate("fp32", 32), table).energy_pj for s in shapes)
    hw, hw_fp32 = _hw_cost(cfg, shapes, candidates, energy, energy_fp32)
    hw = hw.to(device)
    pool, val_idx = stage_split(out, resume, train_set.labels, cfg.data, tc.seed)  # the validation split held out
    w_idx, a_idx = split_train_val(len(pool), cfg.data.val_fraction, tc.seed)
    w_idx, a_idx = [pool[i] for i in w_idx], [pool[i] for i in a_idx]
    w_loader = make_loader(train_set, tc.batch_size, tc.seed, True, indices=w_idx)
    a_loader = make_loader(train_set, tc.batch_size, tc.seed + 1, True, indices=a_idx)
    test_loader = make_loader(test_set, tc.batch_size, tc.seed, False)
    w_params, a_params = supernet.weight_parameters(model), supernet.alpha_parameters(model)
    w_opt = torch.optim.AdamW(w_params, lr=sc.weight_lr, weight_decay=sc.weight_decay)
    a_opt = torch.optim.Adam(a_params, lr=sc.alpha_lr)
    criterion = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)
    history: list[SearchEpoch] = []
    start = 0
    checkpoint_path = out / CHECKPOINT
    out = folder.path if is_main else out
    if resume:
        history = restore_state(state, checkpoint_path, {"w_opt": w_opt, "a_opt": a_opt}, SearchEpoch)
        start = state["epoch"]
        if is_main:
            # the checkpoint is the commit point: drop log lines of an epoch it does not hold, and
            # rewrite the files written after it, so that all agree on its epoch
            _truncate_log(out / SEARCH_LOG, start)
            plan_of(model, cfg, shapes, table, sc.hw_lambda).save(out / "plan.json")
            _write_metrics(out, history)
    elif is_main:
        atomic_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if val_idx:
            record = split_record(train_set.labels, cfg.data.val_fraction, tc.seed, val_idx)
            atomic_text(out / VALIDATION, json.dumps(record) + "\n")
        atomic_text(out / "source.json", json.dumps({"init": None if init is None else str(init)}) + "\n")
    if is_main and start < sc.epochs:
        folder.mark(start, sc.epochs)
        if progress:
            tqdm.write(f"weight steps on {len(w_idx):,} samples, alpha steps on {len(a_idx):,}"
                       + (f", the validation split's {len(val_idx):,} held out ({VALIDATION})" if val_idx else ""))
    kill_at = kill_step()

    total_steps = sc.epochs * len(w_loader)
    for epoch in range(start, sc.epochs):
        t0 = time.perf_counter()
        model.train()
        w_loader.sampler.set_epoch(epoch)
        a_loader.sampler.set_epoch(epoch)
        shift = torch.Generator().manual_seed(epoch_seed(tc.seed, epoch + 1))
        a_iter = iter(a_loader)
        sums = torch.zeros(4, dtype=torch.float64)  # weight CE, alpha CE, energy %, steps
        log_lines = []
        bar = tqdm(w_loader, desc=f"search {epoch + 1}/{sc.epochs}", leave=False,
                   disable=None if progress and is_main else True)
        for i, (x, y) in enumerate(bar):
            step = epoch * len(w_loader) + i
            tau = temperature(step, total_steps, sc.tau_start, sc.tau_end)
            try:
                xa, ya = next(a_iter)
            except StopIteration:
                a_iter = iter(a_loader)
                xa, ya = next(a_iter)
            xa, ya = xa.to(device), ya.to(device)
            # 1. alphas: hard sample (search.alpha_sample) on held-out data, CE + lambda * expected energy
            supernet.set_sampling(model, tau, hard=sc.alpha_sample == "hard")
            with autocast(device, amp):
                ce_a = criterion(model(xa), ya)
            e_pct = 100 * supernet.expected_energy(model, energy) / energy_fp32
            hw_pct = e_pct if sc.cost == "energy" else 100 * supernet.expected_energy(model, hw) / hw_fp32
            a_opt.zero_grad(set_to_none=True)
            (ce_a + sc.hw_lambda * hw_pct.float() / 100).backward()
            all_reduce_grads(a_params)  # every rank's held-out shard: the same alphas everywhere
            a_opt.step()
            # 2. weights: soft sample on training data, CE
            supernet.set_sampling(model, tau, hard=False, learn_alpha=False)
            x = random_shift(x, tc.augment_shift, shift).to(device)  # the shift's generator is on the CPU
            with autocast(device, amp):
                ce_w = criterion(model(x), y.to(device))
            w_opt.zero_grad(set_to_none=True)
            ce_w.backward()
            all_reduce_grads(w_params)
            if sc.weight_schedule == "cosine":  # a function of the step alone: nothing to checkpoint
                for group in w_opt.param_groups:
                    group["lr"] = sc.weight_lr * weight_lr_factor(sc, step, len(w_loader))
            w_opt.step()
            record_step("step", step, model, x)
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            ce_w_mean, ce_a_mean = mean_over_ranks([ce_w.item(), ce_a.item()], device)  # one process: as they are
            sums += torch.tensor([ce_w_mean, ce_a_mean, e_pct.item(), 1.0], dtype=torch.float64)
            probs = {n: [round(p, 5) for p in m.probabilities().tolist()] for n, m in supernet.searchable(model).items()}
            line = {"step": step, "epoch": epoch + 1, "tau": tau, "weight_ce": ce_w_mean,
                    "alpha_ce": ce_a_mean, "energy_pct": e_pct.item(), "probabilities": probs}
            if sc.cost != "energy":  # the term the loss used: expected FPGA cost, % of the fp32 model's
                line["fpga_pct"] = hw_pct.item()
            log_lines.append(json.dumps(line))
            bar.set_postfix(ce=f"{sums[0] / sums[3]:.3f}", energy=f"{e_pct.item():.1f}%", tau=f"{tau:.2f}")

        average_buffers(model)  # the same BN statistics on every rank for evaluation and checkpoint
        record_step("epoch", epoch + 1, model)
        supernet.set_argmax(model, True)
        _, test_acc = evaluate(model, test_loader, amp=amp)
        supernet.set_argmax(model, False)
        plan = plan_of(model, cfg, shapes, table, sc.hw_lambda)
        n = sums[3].item()
        record = SearchEpoch(epoch + 1, tau, sums[0].item() / n, sums[1].item() / n, sums[2].item() / n,
                             test_acc, plan.summary["energy_pct"], plan.summary["avg_weight_bits"],
                             time.perf_counter() - t0)
        history.append(record)
        if not is_main:
            continue
        # the epoch's files: the log lines first (resume drops them if the checkpoint does not
        # follow), checkpoint.pt (the commit point), then what resume rewrites from it
        _append(out / SEARCH_LOG, log_lines)
        state = {"config": cfg.to_dict(), "candidates": list(sc.candidates), "model": model.state_dict(),
                 "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(), "rng": torch.get_rng_state(),
                 "epoch": epoch + 1, "history": [dataclasses.asdict(h) for h in history]}
        save_checkpoint(out / CHECKPOINT, state)
        plan.save(out / "plan.json")
        _write_metrics(out, history)
        folder.mark(epoch + 1, sc.epochs)
        folder.commit_epoch()
        out = folder.path
        if progress:
            tqdm.write(f"search {record.epoch:3d}  tau {tau:5.2f}  CE {record.weight_ce:.3f}  expected energy "
                       f"{record.energy_pct:5.1f}%  derived plan: acc {test_acc:6.2%}, energy "
                       f"{record.plan_energy_pct:5.1f}%, {record.plan_avg_bits:.2f} bits  {record.seconds:5.1f}s")
    if is_main:
        from hqflow.search.plots import plot_search

        plot_search(out / SEARCH_LOG, out / "probabilities.png")
    return history


def weight_lr_factor(sc, step: int, steps_per_epoch: int) -> float:
    """The weight step's lr at search step `step` as a fraction of search.weight_lr (weight_schedule
    "cosine"): warmup from weight_warmup_start_lr over weight_warmup_epochs, cosine to weight_min_lr."""
    return lr_factor(step, sc.epochs * steps_per_epoch, sc.weight_warmup_epochs * steps_per_epoch,
                     sc.weight_min_lr / sc.weight_lr, sc.weight_warmup_start_lr / sc.weight_lr)


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def _truncate_log(path: Path, epochs: int) -> None:
    """Keep the search log's lines of epochs 1..`epochs` (a kill can leave a later epoch's, or half a line)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int) and record["epoch"] <= epochs:
            kept.append(line + "\n")
    atomic_text(path, "".join(kept))


def _write_metrics(out: Path, history: list[SearchEpoch]) -> None:
    atomic_text(out / "metrics.jsonl", "".join(json.dumps(dataclasses.asdict(h)) + "\n" for h in history))


def run_finetune(plan_path: str | Path, out: str | Path, init: str | Path | None = None, resume: bool = False,
             force: bool = False, progress: bool = True, epochs: int | None = None,
             device: torch.device | str = "cpu", amp: bool = False) -> list[EpochMetrics]:
    """QAT with the plan fixed, from the searched weights (`init`: default the plan's own folder), on
    `device` (`amp`: bf16 autocast); under torchrun data-parallel as `trainer.train`. It keeps the searched
    weights or its best epoch, by accuracy on a validation split of the training data (search/selection.py:
    validation.json, selection.json in the run)."""
    plan_path = Path(plan_path)
    plan = load_plan(plan_path)
    command = f"hqflow finetune --plan {plan_path} --resume -o {out}"
    if resume:
        cfg, _, _ = load_checkpoint(out)
        return train(cfg, out, resume=True, progress=progress, recipe=_recipe(cfg, epochs), resume_command=command,
                     device=device, amp=amp, select=True)
    require_complete(plan_path.parent, "the plan's folder")
    init = Path(init) if init is not None else plan_path.parent
    require_complete(init, "--from")
    cfg, model, _ = load_checkpoint(init)
    plan.check_layers(list(supernet.weight_layers(model)), str(plan_path))
    supernet.apply_formats(model, plan.formats())
    return train(cfg, out, force=force, progress=progress, model=model, recipe=_recipe(cfg, epochs),
                 extra_state={"plan": plan.to_dict()}, resume_command=command, device=device, amp=amp, select=True)


def _recipe(cfg: Config, epochs: int | None):
    f = cfg.finetune
    return dataclasses.replace(cfg.train, epochs=epochs or f.epochs, lr=f.lr, min_lr=f.min_lr,
                               weight_decay=f.weight_decay, warmup_epochs=f.warmup_epochs,
                               warmup_start_lr=f.warmup_start_lr)
