"""`hqflow report`: what a searched (and finetuned) plan costs and how accurate it is.

For a search folder (and its QAT run, default `SEARCH_DIR/qat`, and the fp32 run it started
from, found through `SEARCH_DIR/source.json`) the report gives

    accuracy        fp32 and quantized test accuracy (QAT run; without one the search's derived
                    plan, flagged "before finetune"), and the drop in percentage points
    bits            average weight bits (parameter-weighted) and compression 32 / bits
    energy          % of the fp32 model and reduction x, twice (hqflow/cost.py):
                      paper            every MAC counted (the paper's figure)
                      sparsity-aware   MACs scaled by each layer's measured input rate, for
                                       plan and fp32 alike (same rates on both sides, so the
                                       ratio isolates the weight formats)
    storage         % of the fp32 weights and reduction x
    split           the above over tokenizer / attention / mlp / head, and the q / k / v / proj
                    shares of the attention's energy and storage
    layers          per layer: format, MACs, storage bits, energy % of the fp32 model, input rate

The input rates are measured on a few test batches of the quantized model. Outputs, in
`out_dir` (default `SEARCH_DIR/report`): report.md (tables for a person), report.json (the same
numbers), cost_split.png, weights.png; report.md refers to the search's probabilities.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from hqflow.config import ModelConfig, load_config
from hqflow.data import data_root_for
from hqflow.cost import GROUPS, EnergyTable, layer_cost, layer_shapes, load_energy_table, summarize
from hqflow.errors import UserError
from hqflow.io import atomic_text, built_aside, read_json, require_complete
from hqflow.numerics import Candidate
from hqflow.plan import load_plan, plan_from_dict
from hqflow.search import supernet
from hqflow.search.plots import pick_layers, plot_cost_split, plot_weight_histograms
from hqflow.search.checkpoint import load_checkpoint
from hqflow.search.distributed import resolve_device
from hqflow.search.loaders import load_split, make_loader
from hqflow.search.selection import SELECTION
from hqflow.search.trainer import METRICS

SCHEMA_VERSION = 1
ATTENTION_PARTS = ("q", "k", "v", "proj")
_PART = re.compile(r"\.attn\.(q|k|v|proj)(?:_conv)?$")  # Spikformer: blocks.0.attn.q; SDT: block.0.attn.q_conv
RATE_BATCHES = 4  # test batches the input rates are measured on
KEPT_FILES = ("hwreport.md", "hwreport.json", "hwreport.png")  # written by `hqflow hwreport` into the same folder


@torch.no_grad()
def count_nonzero(model: nn.Module, modules: dict[str, nn.Module], loader, max_batches: int, inputs: bool,
                  what: str, progress: bool = False) -> dict[str, tuple[int, int]]:
    """{name: (nonzero elements, elements)} of each module's first input (`inputs`: forward pre-hooks)
    or of its output (forward hooks) over `max_batches` batches of `loader` (frames [B, T, 2, H, W],
    labels) run through `model`; ValueError naming `what` when the loader gives no batch."""
    counts = {name: [0, 0] for name in modules}
    device = next(model.parameters()).device  # the batches go where the model is

    def hook(name):
        def count(_module, args, out=None):
            value = args[0] if inputs else out
            counts[name][0] += int(torch.count_nonzero(value))
            counts[name][1] += value.numel()
        return count

    handles = [m.register_forward_pre_hook(hook(name)) if inputs else m.register_forward_hook(hook(name))
               for name, m in modules.items()]
    model.eval()
    try:
        for i, (x, _) in enumerate(tqdm(loader, desc=what, total=max_batches, leave=False,
                                        disable=None if progress else True)):
            if i == max_batches:
                break
            model(x.to(device))
    finally:
        for h in handles:
            h.remove()
    if not any(total for _, total in counts.values()):
        raise ValueError(f"{what}: the loader gave no batch")
    return {name: (nonzero, total) for name, (nonzero, total) in counts.items()}


def measure_input_rates(model: nn.Module, loader, max_batches: int = RATE_BATCHES,
                        progress: bool = False) -> dict[str, float]:
    """Fraction of non-zero inputs (in [0, 1]) of every conv / linear layer over `max_batches` batches.

    `loader` yields (frames [B, T, 2, H, W], labels). Counted with forward pre-hooks on the
    layers of `supernet.weight_layers(model)`: nonzero elements / elements of each layer's input.
    Zero padding of the convolutions is not part of the input and is not counted.
    """
    counts = count_nonzero(model, supernet.weight_layers(model), loader, max_batches, True, "input rates", progress)
    return {name: nonzero / total for name, (nonzero, total) in counts.items()}


def read_last_metrics(run: Path) -> dict[str, Any]:
    """The last epoch's record of a run folder's metrics.jsonl (needs 'test_acc')."""
    path = Path(run) / METRICS
    if not path.is_file():
        raise UserError(f"{path}: metrics not found (is {run} a finished run folder?)")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        last = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: last line is not valid JSON ({err})") from None
    if not isinstance(last, dict) or not isinstance(last.get("test_acc"), (int, float)):
        raise UserError(f"{path}: last record lacks a numeric 'test_acc'")
    return last


def plan_summaries(model_cfg: ModelConfig, time_steps: int, formats: dict[str, Candidate],
                   table: EnergyTable, rates: dict[str, float] | None = None) -> dict[str, dict]:
    """`cost.summarize` of the fp32 model and of the plan, each against fp32: every MAC counted
    ("fp32", "plan") and, with `rates`, MACs scaled by the input rates ("fp32_sparse", "plan_sparse")."""
    shapes = layer_shapes(model_cfg, time_steps)
    fp32 = Candidate.parse("fp32")
    out = {}
    for suffix, r in [("", None)] + ([("_sparse", rates)] if rates is not None else []):
        ref = [layer_cost(s, fp32, table, 1.0 if r is None else r[s.name]) for s in shapes]
        plan = [layer_cost(s, formats[s.name], table, 1.0 if r is None else r[s.name]) for s in shapes]
        out["fp32" + suffix] = summarize(ref, ref)
        out["plan" + suffix] = summarize(plan, ref)
    return out


def _shares(layers: list[dict], key: str) -> dict[str, float]:
    """Each attention part's share (%) of the attention total of `key` (summed over blocks)."""
    attn = [c for c in layers if c["group"] == "attention"]
    total = sum(c[key] for c in attn)
    return {p: 100 * sum(c[key] for c in attn if _PART.search(c["name"]) and _PART.search(c["name"])[1] == p) / total
            for p in ATTENTION_PARTS}


def cost_figures(summaries: dict[str, dict], rates: dict[str, float] | None = None) -> dict[str, Any]:
    """The report's cost numbers from `plan_summaries` (percentages of the fp32 model, x = reduction)."""
    plan, fp32 = summaries["plan"], summaries["fp32"]

    def block(s: dict, what: str, unit: str) -> dict:
        by_group = s[f"{what}_pct_by_group"]
        return {"pct": s[f"{what}_pct"], "x": 100 / s[f"{what}_pct"], unit: s[f"{what}_{unit}"],
                f"fp32_{unit}": s[f"{what}_fp32_{unit}"], "pct_by_group": by_group,
                "share_by_group": {g: 100 * by_group[g] / s[f"{what}_pct"] for g in GROUPS}}

    bits = plan["avg_weight_bits"]
    result = {"avg_weight_bits": bits, "compression_x": 32 / bits,
              "energy": block(plan, "energy", "uj"), "storage": block(plan, "storage", "kib"),
              "attention_shares": {"energy": _shares(plan["layers"], "energy_pj"),
                                   "storage": _shares(plan["layers"], "storage_bits")}}
    rows = []
    for c in plan["layers"]:
        rows.append({"name": c["name"], "group": c["group"], "format": c["candidate"], "macs": c["macs"],
                     "storage_bits": c["storage_bits"], "energy_pct": 100 * c["energy_pj"] / (fp32["energy_uj"] * 1e6)})
    if rates is not None:
        sparse = summaries["plan_sparse"]
        result["energy_sparse"] = block(sparse, "energy", "uj")
        result["energy_sparse"]["pct_of_dense_fp32"] = 100 * sparse["energy_uj"] / fp32["energy_uj"]
        result["attention_shares"]["energy_sparse"] = _shares(sparse["layers"], "energy_pj")
        for row, c in zip(rows, sparse["layers"]):
            row["energy_sparse_pct"] = 100 * c["energy_pj"] / (sparse["energy_fp32_uj"] * 1e6)
            row["input_rate"] = rates[row["name"]]
    result["layers"] = rows
    return result


def _fp32_run(search_dir: Path, fp32_dir: str | Path | None) -> Path | None:
    """The fp32 run: the argument, else `source.json`'s "init" (None when the search started from scratch)."""
    if fp32_dir is not None:
        where, path = "fp32 run", Path(fp32_dir)
    else:
        source = search_dir / "source.json"
        if not source.is_file():
            return None
        try:
            init = json.loads(source.read_text()).get("init")
        except (json.JSONDecodeError, AttributeError):
            raise UserError(f"{source}: expected a JSON object {{\"init\": <fp32 run or null>}}") from None
        if init is None:
            return None
        where, path = f"{source}: init", Path(init)
    if not path.exists():
        raise UserError(f"{where}: {path} not found (pass the fp32 run folder explicitly, --fp32)")
    return path.parent if path.is_file() else path


def make_report(search_dir: str | Path, qat_dir: str | Path | None = None, fp32_dir: str | Path | None = None,
                out_dir: str | Path | None = None, data_root: str | None = None,
                progress: bool = True, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Write report.md, report.json, cost_split.png and weights.png for a search; return the numbers.

    `device` runs the quantized model's forward that measures the input rates ("auto", "cpu", "cuda", ...).

    The returned dict is report.json's content plus "markdown" (report.md's text). The folder is
    built aside and moved into place whole: a failure leaves the previous report (or none). An
    existing `out_dir` is replaced only if it is empty or a report folder (holds report.json).
    """
    search_dir = Path(search_dir)
    device = resolve_device(device)
    if not search_dir.is_dir():
        raise UserError(f"{search_dir}: search folder not found")
    require_complete(search_dir, "the search folder")
    out_dir = Path(out_dir) if out_dir is not None else search_dir / "report"
    if out_dir.exists() and not (out_dir.is_dir() and (not any(out_dir.iterdir()) or any(
            (out_dir / name).is_file() for name in ("report.json", "hwreport.json", "figures/figures.json")))):
        raise UserError(f"{out_dir}: exists and is not a report folder (no report.json); choose another --out")
    cfg = load_config(search_dir / "config.yaml")
    root, which = data_root_for(data_root, cfg.data.data_root, str(search_dir / "config.yaml"))
    cfg = cfg.replace("data", data_root=root)
    plan_path = search_dir / "plan.json"
    plan = load_plan(plan_path)
    notes, selection = [], None

    if qat_dir is None and (search_dir / "qat").is_dir():
        qat_dir = search_dir / "qat"
    if qat_dir is not None:
        qat_dir = Path(qat_dir)
        if not qat_dir.is_dir():
            raise UserError(f"{qat_dir}: QAT run folder not found")
        require_complete(qat_dir, "the QAT run")
        accuracy, source = read_last_metrics(qat_dir)["test_acc"], "qat"
        if (qat_dir / SELECTION).is_file():  # the QAT run kept the searched weights or its best epoch
            selection = read_json(qat_dir / SELECTION, "the QAT run's selection")
            accuracy, source = selection["test_acc"], f"qat, kept: {selection['kept']}"
        _, model, state = load_checkpoint(qat_dir, device)
        if "plan" not in state:
            raise UserError(f"{qat_dir}: its checkpoint holds no plan (not a `hqflow finetune` run)")
        qat_plan = plan_from_dict(state["plan"], f"{qat_dir}: plan")
        if qat_plan.formats() != plan.formats():
            notes.append(f"The QAT run's plan differs from {plan_path}; the costs are the QAT run's plan's.")
            plan = qat_plan
    else:
        accuracy, source = read_last_metrics(search_dir)["test_acc"], "search, before finetune"
        _, model, _ = load_checkpoint(search_dir, device)
        supernet.set_argmax(model, True)
    shapes = layer_shapes(cfg.model, cfg.data.time_steps)
    plan.check_layers([s.name for s in shapes], str(plan_path))
    fp32_run = _fp32_run(search_dir, fp32_dir)
    if fp32_run is not None:
        require_complete(fp32_run, "the fp32 run")
    fp32_acc = read_last_metrics(fp32_run)["test_acc"] if fp32_run is not None else None
    if fp32_run is None:
        notes.append("No fp32 run (the search started from scratch); pass one with --fp32 for the accuracy drop.")

    loader = make_loader(load_split(cfg, "test"), cfg.train.batch_size, cfg.train.seed, False)
    rates = measure_input_rates(model, loader, RATE_BATCHES, progress)
    formats, table = plan.formats(), load_energy_table(cfg.search.energy_table)
    summaries = plan_summaries(cfg.model, cfg.data.time_steps, formats, table, rates)
    report = {"schema_version": SCHEMA_VERSION, "search_dir": str(search_dir),
              "qat_dir": None if qat_dir is None else str(qat_dir),
              "fp32_dir": None if fp32_run is None else str(fp32_run), "hw_lambda": plan.hw_lambda,
              "energy_table": table.name, "data_root": which,
              "accuracy": {"fp32": fp32_acc, "quantized": accuracy, "quantized_source": source,
                           "drop_points": None if fp32_acc is None else 100 * (fp32_acc - accuracy)},
              "selection": selection, **cost_figures(summaries, rates), "notes": notes}

    layers = supernet.weight_layers(model)
    shown = pick_layers(list(layers), 5)
    with torch.no_grad():
        pairs = {n: (layers[n].weight.detach().cpu().numpy(), layers[n].quant_weight().detach().cpu().numpy())
                 for n in shown}
    probabilities = search_dir / "probabilities.png"
    report["plots"] = {"cost_split": "cost_split.png", "weights": "weights.png",
                       "probabilities": os.path.relpath(probabilities, out_dir) if probabilities.is_file() else None}
    markdown = to_markdown(report)
    with built_aside(out_dir) as tmp:
        plot_cost_split(summaries["fp32"], summaries["plan"], tmp / "cost_split.png",
                        title=f"{search_dir.name}: cost per layer group (every MAC)")
        plot_weight_histograms(pairs, tmp / "weights.png", {n: formats[n].name for n in shown})
        atomic_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
        atomic_text(tmp / "report.md", markdown)
        for name in KEPT_FILES:  # `hqflow hwreport`'s files stay beside the new report
            if (out_dir / name).is_file():
                shutil.copy2(out_dir / name, tmp / name)
        if (out_dir / "figures" / "figures.json").is_file():  # and `hqflow figures`' folder
            shutil.copytree(out_dir / "figures", tmp / "figures")
    return report | {"markdown": markdown}


def _selection_rows(selection: dict | None) -> list[str]:
    """The QAT run's candidates in the accuracy table: the searched weights and its best epoch (by
    validation accuracy), which one it kept."""
    if not selection:
        return []
    rows = [("searched weights (QAT epoch 0)", selection["searched"])]
    if selection["best_qat_epoch"] is not None:
        rows.append((f"best QAT epoch ({selection['best_qat_epoch']['epoch']})", selection["best_qat_epoch"]))
    return [f"| {label}: validation / test accuracy | | {_pct(c['val_acc'])} / {_pct(c['test_acc'])} | "
            f"{'kept' if c['epoch'] == selection['epoch'] else ''} |" for label, c in rows]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def to_markdown(r: dict[str, Any]) -> str:
    """report.md: the report's numbers as markdown tables."""
    acc, e, s = r["accuracy"], r["energy"], r["storage"]
    es = r.get("energy_sparse")
    drop = "n/a" if acc["drop_points"] is None else f"{acc['drop_points']:+.2f} points"
    lines = [f"# Quantization report: {r['search_dir']}", "",
             f"hw_lambda {r['hw_lambda']}; quantized accuracy from: {acc['quantized_source']}; "
             f"energy table {r.get('energy_table', '45nm')} (`hqflow cost --energy-table`).", "",
             "| | fp32 | plan | |", "|---|---:|---:|---:|",
             f"| test accuracy | {_pct(acc['fp32'])} | {_pct(acc['quantized'])} | drop {drop} |",
             f"| average weight bits | 32 | {r['avg_weight_bits']:.2f} | compression {r['compression_x']:.1f}x |",
             *_selection_rows(r.get("selection")),
             f"| energy, every MAC (uJ / inference) | {e['fp32_uj']:.3f} | {e['uj']:.3f} | "
             f"{e['pct']:.2f} % ({e['x']:.1f}x less) |"]
    if es is not None:
        lines.append(f"| energy, sparsity-aware (uJ / inference) | {es['fp32_uj']:.3f} | {es['uj']:.3f} | "
                     f"{es['pct']:.2f} % ({es['x']:.1f}x less); {es['pct_of_dense_fp32']:.2f} % of fp32 every MAC |")
    lines += [f"| weight storage (KiB) | {s['fp32_kib']:.1f} | {s['kib']:.1f} | "
              f"{s['pct']:.2f} % ({s['x']:.1f}x less) |",
              "", "## Split over the model", "",
              "Percent of the fp32 model's total (share of the plan's own total in brackets).", "",
              "| group | energy, every MAC | " + ("energy, sparsity-aware | " if es else "") + "storage |",
              "|---|---:|" + ("---:|" if es else "") + "---:|"]
    for g in GROUPS:
        cells = [e] + ([es] if es else []) + [s]
        lines.append(f"| {g} | " + " | ".join(f"{c['pct_by_group'][g]:.2f} % ({c['share_by_group'][g]:.0f} %)"
                                               for c in cells) + " |")
    shares = r["attention_shares"]
    lines += ["", "## Attention: share of each projection (% of the attention total)", "",
              "| | " + " | ".join(ATTENTION_PARTS) + " |", "|---|" + "---:|" * len(ATTENTION_PARTS)]
    labels = {"energy": "energy, every MAC", "energy_sparse": "energy, sparsity-aware", "storage": "storage"}
    for key, label in labels.items():
        if key in shares:
            lines.append(f"| {label} | " + " | ".join(f"{shares[key][p]:.1f} %" for p in ATTENTION_PARTS) + " |")
    lines += ["", "## Layers", "",
              "Energy in % of the fp32 model's total, counted the same way (every MAC, or MACs x input rate); "
              "input rate: fraction of non-zero inputs, measured on test batches.", "",
              "| layer | format | MACs | storage (bits) | energy, every MAC | energy, sparsity-aware | input rate |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for row in r["layers"]:
        sparse = f"{row['energy_sparse_pct']:.3f} %" if "energy_sparse_pct" in row else "n/a"
        rate = f"{row['input_rate']:.3f}" if "input_rate" in row else "n/a"
        lines.append(f"| {row['name']} | {row['format']} | {row['macs']:,} | {row['storage_bits']:,} | "
                     f"{row['energy_pct']:.3f} % | {sparse} | {rate} |")
    lines += ["", "## Figures", "", f"![cost split]({r['plots']['cost_split']})", "",
              f"![weights before and after quantization]({r['plots']['weights']})", ""]
    if r["plots"]["probabilities"]:
        lines += [f"![selection probabilities over the search]({r['plots']['probabilities']})", ""]
    if r["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)
