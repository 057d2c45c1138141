"""The paper's Spikformer (128x128, D 256, 16 heads, 2 blocks, T 16) built for real in the streaming RTL.

For each case (random weights: the demo plan's formats layer by layer, blocks.1 as blocks.0, when a
demo run exists, else the default mixed formats; and every layer uniform-4), this
  1. lowers the model to a DeployGraph and exports the streaming top (`--target rtl`, folded with
     `--lanes` at the test inputs' rates) for `--part` at `--clock-mhz` (a target clock, stated as such);
  2. runs three inputs through the NumPy simulator and through the Verilator model of the top, each
     inference alone (its latency: first input beat to last logit): two digits-dvs recordings emulated
     at 128x128 and T 16 (the demo's event camera, at the paper's size), and a dense worst case (every
     input value nonzero); every element of every node's stream compared for the first input, the
     logits for all three: `mismatches: N`;
  3. with --synth, synthesizes the top with Yosys synth_xilinx for the part's family (slow: see below).

    python benchmarks/paper_hw.py [--cases demo,uniform-4] [--lanes 64] [--synth] [--resume]

Prints per case the folding, each core's cycles, the latency of each input, and last
`paper_fit: ...` (with --synth) and `paper_latency_ms: X` (the worst measured input of the first case
at the clock). Outputs under out/paper-hw/<case>/ (the export, its rtl/ project, cycles, resources).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO_PLAN = ROOT / "runs" / "demo" / "l0.5" / "plan.json"


def paper_graph(formats: str, config: Path):
    """The paper configuration's DeployGraph with random weights in `formats` ("demo" or one format)."""
    import torch

    from hqflow.config import load_config
    from hqflow.export.lower import lower
    from hqflow.numerics import Candidate
    from hqflow.numerics.formats import DEFAULT_CANDIDATES
    from hqflow.search.supernet import random_quantized_model, weight_layers

    fallback = [c.name for c in DEFAULT_CANDIDATES if c.scheme != "fp32"]
    cfg = load_config(config).replace("model", num_classes=10)
    with torch.no_grad():
        names = weight_layers(random_quantized_model(cfg.model))
        if formats == "demo":
            if DEMO_PLAN.is_file():
                known = {name: layer["format"] for name, layer in json.loads(DEMO_PLAN.read_text())["layers"].items()}
                source = "the demo plan"
            else:
                known, source = {}, "the default candidates in turn (no demo run: `make demo` first)"
            plan = []
            for i, name in enumerate(names):
                key = re.sub(r"^blocks\.\d+\.", "blocks.0.", name)
                plan.append(Candidate.parse(known.get(key) or fallback[i % len(fallback)]))
        else:
            plan, source = [Candidate.parse(formats) for _ in names], formats
        graph = lower(random_quantized_model(cfg.model, tuple(plan), seed=0), cfg)
    return graph, source


def paper_inputs(graph, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three inputs [3, T, 2, S, S]: two digits-dvs test recordings at S x S and T steps, and every
    value nonzero (counts 1..3)."""
    from hqflow.data.digits import digits_dvs_events, digits_split
    from hqflow.data.frames import events_to_frames

    channels, size, _ = graph.nodes[0].shape
    steps = graph.time_steps
    test = digits_split("test")
    frames = [events_to_frames(digits_dvs_events(int(test[k]), size), (size, size), steps) for k in (0, 1)]
    dense = np.random.default_rng(seed).integers(1, 4, size=(steps, channels, size, size)).astype(np.int16)
    return np.stack(frames + [dense]), ["digits-dvs #0", "digits-dvs #1", "dense (every value nonzero)"]


def resumed(name: str, args) -> dict | None:
    """--resume: the case's recorded result (paper_hw.json of an earlier run, its synthesis from
    rtl/resources.json if that run stopped before recording it), or None to run the case."""
    out = ROOT / "out" / "paper-hw" / name
    if not (args.resume and (out / "paper_hw.json").is_file()):
        return None
    result = json.loads((out / "paper_hw.json").read_text())
    measured = out / "rtl" / "resources.json"
    if args.synth and "resources" not in result:
        if not measured.is_file():
            return None
        result["resources"] = json.loads(measured.read_text())["total"]
    print(f"\n== case {name}: resumed from {out / 'paper_hw.json'} (an earlier run's export, co-simulation"
          f"{' and synthesis' if args.synth else ''})")
    for label, cycles in zip(result["inputs"], result["latency_cycles"]):
        print(f"  {label:28} latency {cycles:>10} cycles = {cycles / args.clock_mhz / 1e3:7.2f} ms at "
              f"{args.clock_mhz:g} MHz (target clock)")
    print(f"mismatches: {result['mismatches']}")
    if args.synth:
        from hqflow.export.rtl import stream_estimate

        lines, result["estimate_error_pct"] = stream_estimate.compare(out, stream_estimate.load_stream_table())
        print("\n".join(lines))
    return result


def run_case(name: str, args) -> dict:
    from hqflow.export.rtl import project, stream_project, verilator

    out = ROOT / "out" / "paper-hw" / name
    t0 = time.time()
    graph, source = paper_graph(name, args.config)
    frames, labels = paper_inputs(graph)
    print(f"\n== case {name}: weights in {source}; {len(labels)} inputs ({', '.join(labels)}); "
          f"nonzero input values: {', '.join(f'{(f != 0).mean():.3f}' for f in frames)}")
    rtl = out / "rtl"
    if rtl.exists():
        import shutil

        shutil.rmtree(rtl)
    graph.save(out) if not (out / "graph.json").exists() else None
    options = project.RtlOptions(lanes=args.lanes, part=args.part, clock_mhz=args.clock_mhz)
    manifest = project.write_rtl(graph, rtl, frames, 1, options)
    print(f"exported in {time.time() - t0:.0f} s: {len(manifest['cores'])} cores, folding target "
          f"{manifest['target_interval']} cycles (lanes <= {args.lanes})")
    est = manifest["estimate"]
    print(f"estimate (no synthesis) for {args.part}: " + ", ".join(
        f"{k.upper()} {est['total'][k]:,.0f}" for k in ("lut", "ff", "dsp", "bram", "uram")) +
        f"; {'fits' if est['fits'] else 'does not fit'} within {est['share_limit']:.0%} of every resource")
    t1 = time.time()
    exe = project.build(rtl)
    print(f"verilator build {time.time() - t1:.0f} s")
    t2 = time.time()
    proc = verilator.run(exe, stream_project.run_args(None, 0, isolate=len(frames)), rtl)
    text = proc.stdout
    found = re.findall(r"^mismatches: (\d+)$", text, re.M)
    if not found:
        sys.exit(f"the testbench stopped: {(text + proc.stderr)[-500:]}")
    latency = [int(n) for n in re.findall(r"^latency \d+ (\d+)$", text, re.M)]
    report = stream_project.cycle_report(json.loads((rtl / "top.json").read_text()), text, isolate=len(frames))
    (rtl / "cycles.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"co-simulation {time.time() - t2:.0f} s")
    for line in stream_project.cycle_lines(report)[:-1]:
        print(line)
    for label, cycles in zip(labels, latency):
        print(f"  {label:28} latency {cycles:>10} cycles = {cycles / args.clock_mhz / 1e3:7.2f} ms at "
              f"{args.clock_mhz:g} MHz (target clock)")
    print(f"mismatches: {found[-1]} (the first input: every element of every node's stream; all: the logits)")
    result = {"case": name, "inputs": labels, "latency_cycles": latency, "mismatches": int(found[-1]),
              "lanes": {c["node"]: c["lanes"] for c in manifest["cores"]},
              "interval_formula": manifest["interval_formula"]}
    if args.synth:
        t3 = time.time()
        text_md, synth = project.synth_top(out, args.part)
        print(text_md)
        print(f"synthesis {time.time() - t3:.0f} s")
        result["resources"] = synth["total"]
        from hqflow.export.rtl import stream_estimate

        lines, errors = stream_estimate.compare(out, stream_estimate.load_stream_table())
        print("\n".join(lines))
        result["estimate_error_pct"] = errors
    (out / "paper_hw.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="demo,uniform-4", help="comma-separated: demo (the demo plan's formats) "
                        "or a format for every layer")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "paper.yaml")
    parser.add_argument("--lanes", type=int, default=64)
    parser.add_argument("--part", default="xczu7ev-ffvc1156-2-e")
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--synth", action="store_true", help="also synthesize each case's whole top (slow)")
    parser.add_argument("--resume", action="store_true", help="report a case an earlier run finished (its "
                        "paper_hw.json, and rtl/resources.json) instead of running it again")
    args = parser.parse_args()
    results = [resumed(name, args) or run_case(name, args) for name in args.cases.split(",")]
    first = results[0]
    if args.synth and "resources" in first:
        from hqflow import fpga
        from hqflow.devices import load_devices

        device = next(d for d in load_devices() if args.part.startswith(d.part))
        res = fpga.resources_from_cells(first["resources"]["cells"]).to_dict()  # LUT RAM among the LUTs
        share = {key: 100.0 * res.get(key, 0) / cap if cap else 0.0
                 for key, cap in (("lut", device.lut), ("ff", device.ff), ("dsp", device.dsp),
                                  ("bram", device.bram36), ("uram", device.uram))}
        print(f"paper_fit: {args.part.split('-')[0]} LUT {share['lut']:.0f}% FF {share['ff']:.0f}% DSP "
              f"{share['dsp']:.0f}% BRAM {share['bram']:.0f}% URAM {share['uram']:.0f}%")
    worst = max(first["latency_cycles"])
    print(f"paper_latency_ms: {worst / args.clock_mhz / 1e3:.2f}")


if __name__ == "__main__":
    main()
