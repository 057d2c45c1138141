"""`hqflow figures`: the paper's Fig. 3 and Fig. 5 drawn from a search folder or a sweep folder.

    fig3_search.png          Fig. 3: the selection probabilities of one layer's formats over the
                             search (default: the second block's query layer, blocks.1.attn.q; a
                             model with one block: its last block's q, said in the title) and the
                             search's total loss CE + lambda E with its two terms (`--layer`: any layer)
    fig5_formats.png         Fig. 5: each layer's chosen format, layers x plans (a sweep: one column
                             per lambda; a search: its one plan)
    fig5_format_shares.png   Fig. 5: the share of formats among q / k / v / o (proj), one pie each,
                             counted over the lambdas of a sweep and the blocks of the model
    fig5_weights.png         Fig. 5: weight histograms of the first conv, the figure block's q / k /
                             v / proj and the head, before (fp32 master weights) and after quantization
    fig5_firing_rates.png    Fig. 5: the firing rate of the LIF after q / k / v / proj (spikes per
                             neuron and time step), measured on RATE_BATCHES test batches
    figures.json             the numbers drawn: formats, the pies' counts, the firing rates

A sweep draws Fig. 3 and the weight histograms once per lambda (`fig3_search_lambda_<l>.png`,
`fig5_weights_lambda_<l>.png`) and the firing rates as one bar per lambda; a search draws the firing
rates as one bar per block. The quantized model of a plan is its QAT run (`<search>/qat`) when that
is complete, else the search's checkpoint with each layer at its most probable format (the figure
says which). Outputs go to `out` (default `RUN/report/figures`, `SWEEP/figures`), built aside and
moved into place whole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from hqflow.config import load_config
from hqflow.data import data_root_for
from hqflow.errors import UserError
from hqflow.io import atomic_text, built_aside, read_incomplete, require_complete
from hqflow.plan import load_plan
from hqflow.search import supernet
from hqflow.search.checkpoint import load_checkpoint
from hqflow.search.distributed import resolve_device
from hqflow.search.loaders import load_split, make_loader
from hqflow.search.report import count_nonzero
from hqflow.search.sweep import read_points
from hqflow.search.plots import (
    plot_firing_rates,
    plot_format_map,
    plot_format_pies,
    plot_layer_search,
    plot_weight_histograms,
    read_search_log,
)

SCHEMA_VERSION = 1
PARTS = ("q", "k", "v", "proj")
RATE_BATCHES = 4  # test batches the firing rates are measured on
_PART = re.compile(r"^blocks?\.(\d+)\.attn\.(q|k|v|proj)(?:_conv)?$")  # the Spikformer's and the SDT's names


def default_layer(names: list[str]) -> tuple[str, str]:
    """Fig. 3's layer among the log's `names` and a note for the title: blocks.1.attn.q (the
    paper's), else the last block's q; else (no attention at all) the first layer."""
    if "blocks.1.attn.q" in names:
        return "blocks.1.attn.q", "the second block's query layer"
    qs = [n for n in names if _PART.match(n) and _PART.match(n)[2] == "q"]
    if qs:
        return qs[-1], f"the model has no second block: its last block's query layer, {qs[-1]}"
    return names[0], f"the model has no attention: its first layer, {names[0]}"


def attention_parts(names) -> dict[int, dict[str, str]]:
    """Block index -> part ("q", "k", "v", "proj") -> layer name, for the layer `names` given."""
    blocks: dict[int, dict[str, str]] = {}
    for name in names:
        m = _PART.match(name)
        if m:
            blocks.setdefault(int(m.group(1)), {})[m.group(2)] = name
    return dict(sorted(blocks.items()))


@torch.no_grad()
def measure_firing_rates(model, loader, max_batches: int = RATE_BATCHES) -> dict[str, tuple[int, int]]:
    """Spikes and neuron-steps of the LIF after every blocks.<i>.attn.{q,k,v,proj} layer over
    `max_batches` batches of `loader` (frames [B, T, 2, H, W], labels): layer name -> (spikes,
    outputs), counted with forward hooks on the LIF modules (outputs are 0 / 1)."""
    lifs = {step.name: step.modules[2] for step in model.topology.steps
            if _PART.match(step.name) and len(step.modules) == 3}
    if not lifs:
        raise ValueError("measure_firing_rates: the model has no attention projection with a LIF")
    modules = {name: model.get_submodule(m) for name, m in lifs.items()}
    return count_nonzero(model, modules, loader, max_batches, False, "measure_firing_rates")


def _pooled(counts: dict[str, tuple[int, int]], names: list[str]) -> float:
    spikes, total = (sum(counts[n][i] for n in names) for i in (0, 1))
    return spikes / total


def quantized_model(search_dir: Path, device) -> tuple[Any, str]:
    """The plan's quantized model: the QAT run's (`search_dir/qat`, when complete) or the search's
    with each layer at its most probable format; and which one it is."""
    qat = search_dir / "qat"
    if (qat / "checkpoint.pt").is_file() and read_incomplete(qat) is None:
        _, model, _ = load_checkpoint(qat, device)
        return model, "QAT checkpoint"
    _, model, _ = load_checkpoint(search_dir, device)
    supernet.set_argmax(model, True)
    return model, "search checkpoint, most probable formats (no finished QAT run)"


def _check_search(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise UserError(f"{folder}: {what} not found")
    for name in ("plan.json", "config.yaml", "search_log.jsonl", "checkpoint.pt"):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: not a search folder (no {name}); expected a `hqflow search` or "
                            "`hqflow sweep` folder")
    require_complete(folder, what)


def _hw_lambda(folder: Path) -> float:
    """The search's lambda: plan.json's hw_lambda, else (a plan that does not record it) config.yaml's."""
    lam = load_plan(folder / "plan.json").hw_lambda
    return float(load_config(folder / "config.yaml").search.hw_lambda if lam is None else lam)


def _sweep_folders(sweep_dir: Path) -> list[tuple[float, Path]]:
    """(lambda, search folder) of every point of `sweep_dir/sweep.json`, in its order."""
    path, _, points = read_points(sweep_dir)
    out = []
    for i, p in enumerate(points):
        lam = p.get("lambda") if isinstance(p, dict) else None
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise UserError(f"{path}: points[{i}].lambda: expected a number, got {lam!r}")
        out.append((float(lam), sweep_dir / f"lambda_{lam:g}"))
    return out


def make_figures(target: str | Path, out_dir: str | Path | None = None, layer: str | None = None,
                 data_root: str | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Draw Fig. 3 and Fig. 5 for a search folder or a sweep folder (sweep.json) into `out_dir`;
    return figures.json's content (with "files": the PNGs written, "out": the folder)."""
    target = Path(target)
    device = resolve_device(device)
    if not target.is_dir():
        raise UserError(f"{target}: no such search or sweep folder")
    sweep = (target / "sweep.json").is_file()
    if sweep:
        runs = [(f"λ={lam:g}", f"lambda_{lam:g}", folder) for lam, folder in _sweep_folders(target)]
        for _, _, folder in runs:
            _check_search(folder, f"{target / 'sweep.json'}: its lambda folder")
    else:
        _check_search(target, "the search folder")
        lam = _hw_lambda(target)
        runs = [(f"λ={lam:g}", "", target)]
    out_dir = Path(out_dir) if out_dir is not None else (target / "figures" if sweep else target / "report" / "figures")
    if out_dir.exists() and not (out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / "figures.json").is_file())):
        raise UserError(f"{out_dir}: exists and is not a figures folder (no figures.json); choose another --out")

    formats: dict[str, dict[str, str]] = {}
    candidates: list[str] = []
    rates: dict[str, dict[str, float]] = {}
    pies = {p: {} for p in PARTS}
    draws = []  # (kind, args) drawn once the folder is built aside
    sources = {}
    for label, suffix, folder in runs:
        plan = load_plan(folder / "plan.json")
        cfg = load_config(folder / "config.yaml")
        cfg = cfg.replace("data", data_root=data_root_for(data_root, cfg.data.data_root,
                                                          str(folder / "config.yaml"))[0])
        formats[label] = {name: fmt.name for name, fmt in plan.formats().items()}
        candidates += [c.name for c in plan.candidates if c.name not in candidates]
        names = list(read_search_log(folder / "search_log.jsonl")[0]["probabilities"])
        if layer is not None:
            if layer not in names:
                raise UserError(f"--layer: no layer {layer} in {folder / 'search_log.jsonl'} (its layers: "
                                f"{', '.join(names)})")
            fig3_layer, note = layer, ""
        else:
            fig3_layer, note = default_layer(names)
        blocks = attention_parts(formats[label])
        for parts in blocks.values():
            for p, name in parts.items():
                fmt = formats[label][name]
                pies[p][fmt] = pies[p].get(fmt, 0) + 1
        model, source = quantized_model(folder, device)
        sources[label] = source
        loader = make_loader(load_split(cfg, "test"), cfg.train.batch_size, cfg.train.seed, False)
        counts = measure_firing_rates(model, loader)
        spiking = {i: {p: name for p, name in b.items() if name in counts} for i, b in blocks.items()}  # the SDT's
        if sweep:  # proj has no LIF of its own (its BN output joins the membrane shortcut)
            rates[label] = {p: _pooled(counts, [b[p] for b in spiking.values() if p in b]) for p in PARTS
                            if any(p in b for b in spiking.values())}
        else:
            rates = {f"block {i}": {p: _pooled(counts, [b[p]]) for p in PARTS if p in b} for i, b in spiking.items()}
        block = int(_PART.match(fig3_layer).group(1)) if _PART.match(fig3_layer) else max(blocks, default=0)
        shown = [n for n in ["sps.conv0", *(blocks.get(block, {}).get(p) for p in PARTS), "head"]
                 if n is not None and n in formats[label]]
        layers = supernet.weight_layers(model)
        with torch.no_grad():
            pairs = {n: (layers[n].weight.detach().cpu().numpy(), layers[n].quant_weight().detach().cpu().numpy())
                     for n in shown}
        tail = f"_{suffix}" if suffix else ""
        draws.append(("fig3", f"fig3_search{tail}.png", folder, fig3_layer, _hw_lambda(folder), note))
        draws.append(("weights", f"fig5_weights{tail}.png", pairs, {n: formats[label][n] for n in shown},
                      f"Fig. 5: weights before (fp32 master copy) and after quantization, "
                      f"{folder.name if not suffix else suffix} ({source})"))
        del model

    over = "one column per lambda" if sweep else "its plan"
    n_blocks = len(attention_parts(next(iter(formats.values()))))
    over_pies = (f"{len(runs)} lambdas x {n_blocks} block(s)" if sweep else f"the {n_blocks} block(s) of the model")
    result = {"schema_version": SCHEMA_VERSION, "target": str(target), "kind": "sweep" if sweep else "search",
              "candidates": candidates, "formats": formats, "format_counts": pies, "firing_rates": rates,
              "firing_rate_batches": RATE_BATCHES, "models": sources,
              "fig3_layer": draws[0][3], "fig3_note": draws[0][5]}
    files = []
    with built_aside(out_dir) as tmp:
        for kind, name, *args in draws:
            if kind == "fig3":
                folder, fig3_layer, lam, note = args
                plot_layer_search(folder / "search_log.jsonl", tmp / name, fig3_layer, lam, note)
            else:
                pairs, fmts, title = args
                plot_weight_histograms(pairs, tmp / name, fmts, title=title)
            files.append(name)
        plot_format_map(formats, candidates, tmp / "fig5_formats.png",
                        f"Fig. 5: chosen format per layer\n{target.name} ({over})")
        plot_format_pies(pies, candidates, tmp / "fig5_format_shares.png",
                         f"Fig. 5: formats chosen for q / k / v / o, {target.name}: counted over {over_pies}")
        shown_parts = [p for p in PARTS if any(p in r for r in rates.values())]  # the SDT's proj has no LIF
        parts_title = " / ".join("o" if p == "proj" else p for p in shown_parts)
        plot_firing_rates(rates, tmp / "fig5_firing_rates.png",
                          f"Fig. 5: firing rates after {parts_title}, {target.name}\n"
                          f"({RATE_BATCHES} test batches, quantized model)")
        files += ["fig5_formats.png", "fig5_format_shares.png", "fig5_firing_rates.png"]
        result["files"] = files
        atomic_text(tmp / "figures.json", json.dumps(result, indent=2) + "\n")
    return result | {"out": str(out_dir)}
