"""Resources and latency of the RTL top at the paper's configuration, estimated (no synthesis, no simulation).

A full Yosys synthesis or Verilator run of the paper's Spikformer (128x128 input, D 256, 2 blocks,
T 16) is out of reach on 2 cores, so this estimates it (export/rtl/estimate.py):

    resources  the per-core model calibrated from synthesized cores (hqflow/tables/fpga_xc7.yaml) plus
               every buffer's memory; checked against a full synthesis of the tiny model
    cycles     each core's documented cycle formula (exact against the co-simulation) with the
               fraction of nonzero inputs of each layer measured on the demo's tiny model over its
               test samples (blocks.1 takes blocks.0's rates; the tokenizer's extra stages the rate of
               the last tiny one): an assumption, since no paper-scale model was trained here

The weights are random (resources and cycles do not depend on their values, only on formats, sizes
and spike rates); the formats are the demo plan's, layer by layer (blocks.1 as blocks.0).

    python benchmarks/rtl_estimate.py --demo out/demo/l0.5-rtl        # after `make demo`
    python benchmarks/rtl_estimate.py --demo out/demo/l0.5-rtl --lanes 32 --clock-mhz 200

Prints the tiny demo's estimate beside its co-simulated cycles (when rtl/cycles.json exists), then
the paper configuration's per-layer table and totals; the last line is `paper_latency_ms: X`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from hqflow.config import load_config
from hqflow.data import load_dataset
from hqflow.devices import fit_markdown
from hqflow.errors import UserError
from hqflow.export.rtl import estimate
from hqflow.ir import load_graph
from hqflow.numerics import Candidate
from hqflow.sim.run import run as sim_run

ROOT = Path(__file__).resolve().parent.parent


def _tiny_name(name: str, known: set[str]) -> str:
    """The demo's node whose rate (or format) a paper node takes."""
    name = re.sub(r"^blocks\.\d+\.", "blocks.0.", name)
    if name in known:
        return name
    convs = sorted(n for n in known if n.startswith("sps.conv"))
    return convs[-1] if name.startswith("sps.conv") else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "out" / "demo" / "l0.5-rtl", help="the demo's RTL export")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "paper.yaml")
    parser.add_argument("--samples", type=int, default=16, help="demo test samples the rates are measured on")
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--clock-mhz", type=float, default=100.0)
    args = parser.parse_args()
    if not (args.demo / "graph.json").is_file():
        raise SystemExit(f"{args.demo}: no export there; run `make demo` first (or pass --demo)")
    import torch

    from hqflow.export.lower import lower
    from hqflow.search.supernet import random_quantized_model, weight_layers

    demo = load_graph(args.demo)
    frames = load_dataset(demo.meta["dataset"], "test", demo.time_steps, demo.meta["model"]["img_size"], None)
    x = np.stack([frames[i][0] for i in range(min(args.samples, len(frames)))])
    _, trace = sim_run(demo, x, trace=True)
    rates = estimate.input_rates(demo, trace)
    tiny = estimate.estimate_top(demo, args.lanes, rates, clock_mhz=args.clock_mhz)
    if tiny["table_placeholder"]:
        raise UserError("hqflow/tables/fpga_xc7.yaml holds placeholder coefficients: calibrate it first")
    cycles_file = args.demo / "rtl" / "cycles.json"
    measured = json.loads(cycles_file.read_text())["latency_cycles"]["mean"] if cycles_file.is_file() else None
    print(f"demo (tiny) estimate: {tiny['cycles_per_inference']:.0f} cycles per inference"
          + (f" (co-simulated: {measured:.0f})" if measured else "")
          + f"; LUT {tiny['total']['lut']:.0f}, FF {tiny['total']['ff']:.0f}, DSP {tiny['total']['dsp']:.0f}, "
            f"BRAM36 {tiny['total']['bram']:.1f}")

    cfg = load_config(args.config).replace("model", num_classes=10)
    known = {n.name for n in demo.nodes}
    formats = {n.name: n.attrs["format"] for n in demo.nodes if "format" in n.attrs}
    with torch.no_grad():
        names = weight_layers(random_quantized_model(cfg.model))
        plan = tuple(Candidate.parse(formats[_tiny_name(n, known)]) for n in names)
        graph = lower(random_quantized_model(cfg.model, plan, seed=0), cfg)
    paper_rates = {n.name: rates.get(_tiny_name(n.name, known), 0.0) for n in graph.nodes if n.inputs}
    paper = estimate.estimate_top(graph, args.lanes, paper_rates, clock_mhz=args.clock_mhz)
    print(f"\npaper configuration ({args.config.name}: {cfg.model.img_size}x{cfg.model.img_size}, D "
          f"{cfg.model.embed_dim}, depth {cfg.model.depth}, T {cfg.data.time_steps}), P {args.lanes}, "
          f"{args.clock_mhz:g} MHz, estimated:")
    print(f"{'node':24} {'op':10} {'format':10} {'P':>3} {'rate':>6} {'cycles/inf':>12} {'LUT':>8} {'FF':>8} "
          f"{'DSP':>5} {'BRAM36':>7}")
    for name, item in paper["nodes"].items():
        res = item["resources"]
        fmt = graph.node(name).attrs.get("format", "")
        print(f"{name:24} {item['op']:10} {fmt:10} {item['lanes'] or '':>3} {paper_rates.get(name, 0):6.3f} "
              f"{item['cycles_per_inference']:12.0f} {res['lut']:8.0f} {res['ff']:8.0f} {res['dsp']:5.0f} "
              f"{res['bram']:7.1f}")
    buffers = paper["buffers"]
    print(f"buffers: BRAM36 {sum(b['bram'] for b in buffers.values()):.1f}, LUT {sum(b['lut'] for b in buffers.values()):.0f}")
    total = paper["total"]
    print(f"total: LUT {total['lut']:.0f}, FF {total['ff']:.0f}, DSP {total['dsp']:.0f}, BRAM36 {total['bram']:.1f}; "
          f"{paper['cycles_per_inference']:.0f} cycles per inference = {paper['latency_us'] / 1e3:.1f} ms at "
          f"{args.clock_mhz:g} MHz")
    print(fit_markdown(total))
    print("how cycles and resources follow the lanes P (estimated; tiny: the demo, paper: as above):")
    print(f"{'P':>3} {'tiny cycles':>12} {'tiny ms':>8} {'tiny LUT':>9} {'tiny DSP':>8} {'paper cycles':>13} {'paper ms':>9} "
          f"{'paper LUT':>10} {'paper DSP':>9} {'paper BRAM36':>12}")
    for lanes in (4, 8, 16, 32, 64):
        t = estimate.estimate_top(demo, lanes, rates, clock_mhz=args.clock_mhz)
        q = estimate.estimate_top(graph, lanes, paper_rates, clock_mhz=args.clock_mhz)
        print(f"{lanes:3d} {t['cycles_per_inference']:12.0f} {t['latency_us'] / 1e3:8.2f} {t['total']['lut']:9.0f} "
              f"{t['total']['dsp']:8.0f} {q['cycles_per_inference']:13.0f} {q['latency_us'] / 1e3:9.1f} "
              f"{q['total']['lut']:10.0f} {q['total']['dsp']:9.0f} {q['total']['bram']:12.1f}")
    print(f"paper_latency_ms: {paper['latency_us'] / 1e3:.2f}")


if __name__ == "__main__":
    main()
