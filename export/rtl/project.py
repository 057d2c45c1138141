"""`hqflow export --target rtl`, `hqflow rtlsim`, `hqflow synth`: the whole model as one Verilog top.

OUT/rtl/ holds (top.py says how the top is built; README.md, rendered, says it to the user):

    hqflow_top.v                    the rendered top: cores, buffers, sequencer (export/rtl/top.py)
    cores/*.v                       the cores (copied from the package hqflow.rtl_templates)
    mem/<node>_*.mem                each weighted node's weight ROM and LIF tables, the head's bias ($readmemh)
    tb/hqflow_top_tb.cpp            the Verilator testbench
    data/tb.txt frames.txt logits.txt trace.txt   test samples (frames channels last), golden logits of
                                    each and golden outputs of every node at every step of the traced ones
    data/labels.txt                 the test samples' labels
    top.json                        the manifest: options, cores, buffers, nodes (read by rtlsim and synth)
    Makefile, README.md, architecture.png, vivado.tcl (for users with Vivado: out-of-context implementation)
`hqflow rtlsim` writes rtl/cycles.json, `hqflow synth` rtl/resources.json and rtl/resources.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from hqflow import fpga
from hqflow.devices import DEFAULT_CLOCK_MHZ, DEFAULT_PART, family_of
from hqflow.errors import UserError
from hqflow.export.rtl import diagram, pnr, stream, stream_estimate, stream_project, top, verilator, yosys
from hqflow.export.rtl.memfiles import MAX_LANES
from hqflow.export.rtl.paths import CORES, TEMPLATES
from hqflow.io import atomic_text, read_json
from hqflow.ir import DeployGraph
from hqflow.sim.run import run as sim_run

__all__ = ["MANIFEST", "RtlOptions", "load_manifest", "rtl_dir", "rtlsim",
           "synth_top", "write_rtl"]

MANIFEST = "top.json"
TOP = "hqflow_top"
TESTBENCH = "tb/hqflow_top_tb.cpp"
TOP_CORES = ("hqflow_ram.v", "hqflow_buffer.v", "hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v",
             "hqflow_linear_lif.v", "hqflow_conv_lif.v", "hqflow_maxpool.v", "hqflow_add.v", "hqflow_ssa.v",
             "hqflow_head.v")
DATA = ("data/tb.txt", "data/frames.txt", "data/logits.txt", "data/trace.txt")
LABELS = "data/labels.txt"  # the test samples' labels (not needed by the testbench: exports before it lack it)


ARCHS = ("stream", "sequential")
MEMORY_STYLES = ("lut", "block")  # where the small memories go (RtlOptions.memory_style)


@dataclass(frozen=True)
class RtlOptions:
    """arch: "stream" (time-batched streaming pipeline, the default) or "sequential" (one core at a
    time, time-major: the first architecture). lanes: P, output channels per cycle of each weighted
    core: for "sequential" per node the largest power of two <= lanes that its ROM word allows and
    its channel count divides (None: 8); for "stream" the upper bound of the folding (None: 64).
    target_fps: the stream folding's target frame rate at clock_mhz (None: the fastest the lanes
    allow). part and clock_mhz: the target of the synthesis (its Yosys family) and of the latency
    figures. memory_style (stream): "lut" (LUT6 parts), each weight ROM's last lines in LUTs where that
    costs less than the block RAM they would mostly leave empty (hqflow.resources.rom_tail), and the line
    buffers' lists of nonzero elements in LUT RAM; "block", both in block RAM, and the weighted cores'
    line buffer rows as well (LUT4 parts such as the ECP5: its LUT RAM is 16 words deep, a 576-entry list
    a tree of them after the read address, and fc1's ROM tail of 128 lines takes 448 LUT4 against 192
    LUT6 on an xc7)."""
    lanes: int | None = None
    part: str = DEFAULT_PART
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    arch: str = "stream"
    target_fps: float | None = None
    memory_style: str = "lut"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise UserError(f"--arch {self.arch!r}: expected one of {', '.join(ARCHS)}")
        most = stream.MAX_STREAM_LANES if self.arch == "stream" else MAX_LANES
        if self.lanes is not None and not 1 <= self.lanes <= most:
            raise UserError(f"--lanes {self.lanes}: expected 1 to {most} (--arch {self.arch})")
        family_of(self.part)  # an unknown part is an error here, not at synthesis
        if self.memory_style not in MEMORY_STYLES:
            raise UserError(f"--memory-style {self.memory_style!r}: expected one of {', '.join(MEMORY_STYLES)}")
        if not (math.isfinite(self.clock_mhz) and self.clock_mhz > 0):
            raise UserError(f"--clock-mhz {self.clock_mhz}: expected a finite number > 0")
        if self.target_fps is not None:
            if self.arch != "stream":
                raise UserError("--target-fps folds the streaming architecture; it needs --arch stream")
            if not (math.isfinite(self.target_fps) and self.target_fps > 0):
                raise UserError(f"--target-fps {self.target_fps}: expected a finite number > 0")

    @property
    def lanes_bound(self) -> int:
        return self.lanes if self.lanes is not None else (stream.DEFAULT_LANES if self.arch == "stream" else 8)


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "project")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _ints(values: np.ndarray) -> str:
    return " ".join(map(str, np.asarray(values, np.int64).ravel().tolist())) + "\n"


def write_rtl(graph: DeployGraph, out: Path, frames: np.ndarray, trace_samples: int, options: RtlOptions,
              labels: np.ndarray | None = None) -> dict:
    """Write the whole-model project into `out` (a new folder, the export's rtl/); test vectors from
    the NumPy simulator on `frames` [samples, T, C, H, W] (every node traced for the first
    `trace_samples`), the samples' `labels` [samples] (data/labels.txt: the board run's accuracy).
    Returns the manifest (top.json)."""
    out = Path(out)
    for folder in ("cores", "tb", "mem", "data"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    if labels is not None:
        atomic_text(out / LABELS, _ints(labels))
    if options.arch == "stream":
        return _write_stream(graph, out, frames, trace_samples, options)
    plan = top.plan_top(graph, options.lanes_bound)
    for name in TOP_CORES:
        shutil.copyfile(CORES / name, out / "cores" / name)
    shutil.copyfile(TEMPLATES / TESTBENCH, out / TESTBENCH)
    for core in plan.cores:
        for name, text in core.files.items():
            atomic_text(out / "mem" / name, text)
    env = _env()
    frame_size = math.prod(plan.frame)
    context = {"plan": plan, "frame_size": frame_size, "k_bits": max(1, (plan.classes - 1).bit_length()),
               "no_node": top.NO_NODE, "input": plan.buffers[0]}
    atomic_text(out / f"{TOP}.v", env.get_template("hqflow_top.v.j2").render(**context))

    # test vectors: logits of every sample, every node's buffer at every step of the traced ones
    samples, traced = len(frames), min(trace_samples, len(frames))
    logits, trace = sim_run(graph, frames, trace=True)
    compared = [node for node in graph.nodes if not top.RTL_OPS[node.op].logits]
    buffer_index = {b.ident: i for i, b in enumerate(plan.buffers)}
    lines = [f"{samples} {traced} {graph.time_steps} {frame_size} {plan.classes} {plan.logit_bits} {len(compared)}"]
    golden = []
    for node in compared:
        buf = plan.buffer_of(node.name)
        lines.append(f"{node.name} {buffer_index[buf.ident]} {math.prod(node.shape)}")
        golden.append(top.layout(graph, node, trace[node.name][:, :traced]))  # [T, traced, size]
    atomic_text(out / "data/tb.txt", "\n".join(lines) + "\n")
    source = graph.nodes[0]
    x = top.layout(graph, source, np.asarray(frames).swapaxes(0, 1))  # [T, samples, frame] -> per sample
    atomic_text(out / "data/frames.txt", _ints(x.swapaxes(0, 1)))
    atomic_text(out / "data/logits.txt", _ints(logits))
    atomic_text(out / "data/trace.txt", _ints(np.concatenate(golden, axis=2).swapaxes(0, 1) if golden
                                              else np.zeros(0)))

    cores = [{"index": c.index, "node": c.node, "op": c.op, "module": c.module, "lanes": c.lanes,
              "format": graph.node(c.node).attrs.get("format", ""), "params": c.params} for c in plan.cores]
    buffers = [{"node": b.node, "ident": b.ident, "size": b.size, "pack": b.pack, "bits": b.bits, "words": b.words}
               for b in plan.buffers]
    formula = top.expected_cycles(plan, graph, trace, traced)
    manifest = {"schema": 2, "arch": "sequential", "top": TOP, "samples": samples, "traced": traced, "time_steps": graph.time_steps,
                "frame": list(plan.frame), "classes": plan.classes, "lanes_requested": options.lanes_bound,
                "part": options.part, "family": family_of(options.part), "clock_mhz": options.clock_mhz,
                "cores": cores, "buffers": buffers, "aliases": plan.aliases, "formula_cycles": formula,
                "sources": [f"cores/{f}" for f in TOP_CORES] + [f"{TOP}.v"], "testbench": TESTBENCH}
    diagram.draw(plan, out / "architecture.png")
    context = {**manifest, "plan": plan, "frame_size": frame_size, "data": DATA}
    atomic_text(out / "Makefile", env.get_template("Makefile.j2").render(**context))
    atomic_text(out / "README.md", env.get_template("README.md.j2").render(**context))
    atomic_text(out / "vivado.tcl", env.get_template("vivado.tcl.j2").render(**context))
    atomic_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _write_stream(graph: DeployGraph, out: Path, frames: np.ndarray, trace_samples: int, options: RtlOptions) -> dict:
    """write_rtl for the streaming architecture (stream_project renders the schedule and the vectors)."""
    env = _env()
    for name in stream_project.CORES:
        shutil.copyfile(CORES / name, out / "cores" / name)
    shutil.copyfile(TEMPLATES / stream_project.TESTBENCH, out / stream_project.TESTBENCH)
    extra = stream_project.write(graph, out, frames, trace_samples, options, env)
    schedule = extra.pop("schedule")
    manifest = {"schema": 2, "top": TOP, "samples": len(frames), "traced": min(trace_samples, len(frames)),
                "time_steps": graph.time_steps, "frame": list(schedule.frame), "classes": schedule.classes,
                "lanes_requested": options.lanes_bound, "target_fps": options.target_fps, "part": options.part,
                "family": family_of(options.part), "clock_mhz": options.clock_mhz, **extra}
    diagram.draw_stream(schedule, out / "architecture.png")
    context = {**manifest, "s": schedule, "data": DATA}
    atomic_text(out / "Makefile", env.get_template("Makefile.j2").render(**context))
    atomic_text(out / "README.md", env.get_template("stream_README.md.j2").render(**context))
    atomic_text(out / "vivado.tcl", env.get_template("vivado.tcl.j2").render(**context))
    atomic_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def rtl_dir(export: str | Path) -> Path:
    """The rtl/ folder of an export (or the folder itself if it is one), checked to hold every file the
    manifest implies; UserError naming what is missing."""
    export = Path(export)
    how = f"export it with `hqflow export RUN --target rtl -o {export}`"
    if not export.is_dir():
        raise UserError(f"{export}: no such folder (expected an export with an rtl/ project; {how})")
    for folder in (export / "rtl", export):
        if (folder / MANIFEST).is_file():
            break
    else:
        if (export / "graph.json").is_file() or (export / "rtl").is_dir():
            raise UserError(f"{export}: no rtl/{MANIFEST} (an export with another --target, or from an older "
                            f"hqflow): {how} --force")
        raise UserError(f"{export}: no rtl/{MANIFEST} there ({how})")
    manifest = load_manifest(folder)
    needed = [*manifest["sources"], manifest["testbench"], *DATA]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{folder / missing[0]}: missing from the rtl project ({len(missing)} file(s) missing); "
                        f"{how} --force")
    return folder


def load_manifest(folder: Path) -> dict:
    """top.json of an rtl/ folder, its keys checked (UserError naming the file otherwise)."""
    path = Path(folder) / MANIFEST
    doc = read_json(path, "the rtl project's manifest")
    keys = {"cores", "sources", "testbench", "clock_mhz", "part", "family", "time_steps"}
    keys |= {"streams", "interval_formula"} if isinstance(doc, dict) and doc.get("arch") == "stream" else {"buffers"}
    if not isinstance(doc, dict) or doc.get("schema") != 2 or not keys <= set(doc) or not isinstance(
            doc["cores"], list) or not all(isinstance(c, dict) and {"index", "node", "op"} <= set(c)
                                           for c in doc["cores"]):
        raise UserError(f"{path}: not an hqflow rtl manifest (schema 2 with {', '.join(sorted(keys))}); export again")
    return doc


def build(folder: Path) -> Path:
    """The Verilator model of the project in `folder` (rtl/obj), with the trace port; its C++ compiled on
    every core (27 s -> 17 s for the demo's model on 2 cores)."""
    manifest = load_manifest(folder)
    return verilator.build(TOP, [folder / s for s in manifest["sources"]], folder / manifest["testbench"], folder,
                           defines={"HQFLOW_TRACE": None}, jobs=os.cpu_count() or 1)


def rtlsim(export: str | Path, samples: int | None = None, stall: int = 0) -> tuple[list[str], int]:
    """Build the export's Verilator model and run the testbench over the first `samples` test samples
    (all of them: None). Writes rtl/cycles.json; returns (lines to print: per core its cycles per
    step and per inference, the latency at the manifest's clock, the mismatch counts, last
    `mismatches: N`) and N."""
    folder = rtl_dir(export)
    manifest = load_manifest(folder)
    exe = build(folder)
    streaming = manifest.get("arch") == "stream"
    args = stream_project.run_args(samples, stall) if streaming else [str(samples or 0), str(stall)]
    proc = verilator.run(exe, args, folder)
    text = proc.stdout
    found = re.findall(r"^mismatches: (\d+)$", text, re.M)
    if proc.returncode not in (0, 1) or not found:
        tail = [line for line in (text + proc.stderr).splitlines() if line.strip()][-3:]
        raise UserError(f"{folder}: the testbench stopped ({proc.returncode}): {' | '.join(tail)}")
    total = int(found[-1])
    routed = pnr.routed_clock(folder)
    if streaming:
        report = {**stream_project.cycle_report(manifest, text), "routed": routed}
        atomic_text(folder / "cycles.json", json.dumps(report, indent=1) + "\n")
        diagram.plot_timeline(report, folder / "cycles.png")
        lines = [line for line in text.splitlines() if line.startswith("mismatch ")]
        lines += stream_project.cycle_lines(report)
    else:
        report = {**cycle_report(manifest, text), "routed": routed}
        atomic_text(folder / "cycles.json", json.dumps(report, indent=1) + "\n")
        diagram.plot_cycles(report, manifest, folder / "cycles.png")
        lines = [line for line in text.splitlines() if line.startswith("mismatch ")]
        lines += cycle_lines(report)
    lines += [line for line in text.splitlines() if re.match(r"^(node \S+|logits) mismatches: ", line)]
    ran = re.search(r"^samples: (\d+) traced: (\d+)$", text, re.M)
    lines.append(f"samples: {ran.group(1)} (logits compared), {ran.group(2)} traced (every node, every step)")
    if streaming:
        interval = (f"{report['interval_cycles']:.0f}" if report["interval_samples"] else
                    f"n/a (no two samples back to back: the first {stream_project.ISOLATED + 1} run alone; "
                    f"--tb-samples {stream_project.ISOLATED + 3} or more measure it)")
        lines += [f"interval_cycles: {interval}", f"latency_cycles: {report['latency_cycles']['mean']:.0f}"]
    lines.append(f"mismatches: {total}")
    return lines, total


def cycle_report(manifest: dict, text: str) -> dict:
    """cycles.json from the testbench's output: per core the cycles of each step (mean over the
    samples run), per inference; the frame loads; the latency (first input to last logit)."""
    steps = int(manifest["time_steps"])
    runs: dict[int, dict[int, list[int]]] = {}
    for b, t, k, n in re.findall(r"^cycles (\d+) (\d+) (\d+) (\d+)$", text, re.M):
        runs.setdefault(int(k), {}).setdefault(int(b), [0] * steps)[int(t)] += int(n)
    loads = [int(n) for n in re.findall(r"^load \d+ \d+ (\d+)$", text, re.M)]
    latency = [int(n) for n in re.findall(r"^latency \d+ (\d+)$", text, re.M)]
    samples = max(1, len(latency))
    clock = float(manifest["clock_mhz"])
    nodes = {}
    formula = manifest.get("formula_cycles", {})
    for core in manifest["cores"]:
        per_sample = runs.get(int(core["index"]), {})
        per_step = [float(np.mean([v[t] for v in per_sample.values()])) if per_sample else 0.0 for t in range(steps)]
        expected = formula.get(core["node"], [])
        compared = [(per_sample[b][t], want[t]) for b, want in enumerate(expected) if b in per_sample
                    for t in range(steps)]
        nodes[core["node"]] = {"op": core["op"], "lanes": core.get("lanes", 0), "cycles_per_step": per_step,
                               "cycles_per_inference": float(sum(per_step)),
                               "formula_equal": sum(int(a == b) for a, b in compared), "formula_compared": len(compared)}
    mean_latency = float(np.mean(latency)) if latency else 0.0
    return {"clock_mhz": clock, "part": manifest["part"], "samples": len(latency), "nodes": nodes,
            "load_cycles_per_inference": float(sum(loads)) / samples,
            "total_cycles": mean_latency, "latency_cycles": {"mean": mean_latency, "min": min(latency, default=0),
                                                              "max": max(latency, default=0)},
            "latency_us": mean_latency / clock, "inferences_per_s": clock * 1e6 / mean_latency if latency else 0.0}


def cycle_lines(report: dict) -> list[str]:
    """A table of the cycle report, one line per core, then the totals."""
    lines = [f"{'node':24} {'op':10} {'P':>3} {'cycles/step (mean over samples)':>34} {'per inference':>14} "
             f"{'= formula':>10}"]
    for name, item in report["nodes"].items():
        steps = " ".join(f"{v:.0f}" for v in item["cycles_per_step"])
        same = f"{item['formula_equal']}/{item['formula_compared']}"
        lines.append(f"{name:24} {item['op']:10} {item['lanes'] or '':>3} {steps:>34} "
                     f"{item['cycles_per_inference']:>14.0f} {same:>10}")
    lines.append(f"frame input: {report['load_cycles_per_inference']:.0f} cycles per inference")
    lat = report["latency_cycles"]
    at = pnr.latency_phrase(lat['mean'], report['clock_mhz'], report.get('routed'))
    lines.append(f"latency: {lat['mean']:.0f} cycles per inference (min {lat['min']}, max {lat['max']} over "
                 f"{report['samples']} samples) = {at}")
    return lines


def _depth_markdown(per_node: dict, top_depth: dict, clock_mhz: float) -> str:
    """The logic depth per core (depth.py) under the clock the latencies use: a target, not a routed clock."""
    lines = ["", "## Logic depth", "",
             f"No open place and route exists for this family: {clock_mhz:g} MHz ({1e3 / clock_mhz:.2f} ns) is a "
             "target. The most LUT levels (LUT, MUXF7/8, LUT-RAM read) on a path between registers, and the longest "
             "carry chain (CARRY4/8 cells), per core after synth_xilinx (export/rtl/depth.py):", "",
             "| node | LUT levels | carry chain |", "|---|---:|---:|"]
    lines += [f"| {node} | {d['lut_levels']} | {d['carry_chain']} |" for node, d in per_node.items()]
    lines.append(f"| glue between the cores (forks, slices) | {top_depth['lut_levels']} | {top_depth['carry_chain']} |")
    return "\n".join(lines) + "\n"


def synth_top(export: str | Path, part: str | None = None, timeout: float | None = None) -> tuple[str, dict]:
    """Synthesize the export's top with Yosys synth_xilinx for the family of `part` (the manifest's
    part if None), each core and buffer a module of its own (keep_hierarchy: its figures), out of
    context. Writes rtl/resources.json and rtl/resources.md; returns (markdown, result)."""
    from hqflow.devices import fit_markdown

    folder = rtl_dir(export).resolve()  # yosys runs in the folder: the sources must not be relative to ours
    yosys.find_yosys()
    manifest = load_manifest(folder)
    part = part or manifest["part"]
    family = family_of(part)
    total, per_module, instances, depths = yosys.synth_hierarchy(
        TOP, [folder / s for s in manifest["sources"]], family, workdir=folder / "synth", cwd=folder, timeout=timeout)
    per_node, depth = {}, {}
    for core in manifest["cores"]:
        name = f"core_{core['index']}"
        if name in instances:
            per_node[core["node"]] = instances[name].to_dict()
        if name in depths:
            depth[core["node"]] = depths[name]
    buffers = {b["node"]: instances[f"buf_{b['ident']}"].to_dict() for b in manifest.get("buffers", [])
               if f"buf_{b['ident']}" in instances}
    buffers.update({f"fifo {q['source']}": instances[f"fifo_{q['source']}"].to_dict()
                    for q in manifest.get("fifos", []) if f"fifo_{q['source']}" in instances})
    result = {"part": part, "family": family, "total": total.to_dict(), "nodes": per_node,
              "buffers": buffers, "depth": {"nodes": depth, "top": depths[TOP]}}
    rows = [(f"{c['node']} ({c['op']}{', ' + c['format'] if c.get('format') else ''}"
             f"{', P ' + str(c['lanes']) if c.get('lanes') else ''})", instances[f"core_{c['index']}"])
            for c in manifest["cores"] if f"core_{c['index']}" in instances]
    rows += [(f"buffer {b['node']} ({b['words']} x {b['pack'] * b['bits']} bit)", instances[f"buf_{b['ident']}"])
             for b in manifest.get("buffers", []) if f"buf_{b['ident']}" in instances]
    rows += [(f"FIFO {q['source']} ({q['depth']} x {q['width']} bit)", instances[f"fifo_{q['source']}"])
             for q in manifest.get("fifos", []) if f"fifo_{q['source']}" in instances]
    rows.append(("total (the top)", total))
    table = yosys.markdown_table(rows, name="instance")
    fits = fit_markdown(fpga.resources_from_cells(dict(total.cells)))  # LUT RAM counted among the LUTs
    text = (f"# Resources of {TOP}: Yosys synth_xilinx -family {family} (part {part}), "
            f"each core and buffer kept as a module of its own, out of context\n\n{table}\n## Devices\n\n{fits}"
            + _depth_markdown(depth, depths[TOP], manifest["clock_mhz"]))
    atomic_text(folder / "resources.json", json.dumps(result, indent=1) + "\n")
    if manifest.get("arch") == "stream":  # the estimate the folding used, beside what synthesis measured
        lines, _ = stream_estimate.compare(folder, stream_estimate.load_stream_table())
        text += ("\n## Estimate / synthesis\n\nThe resource estimate without synthesis (export/rtl/stream_estimate.py; "
                 "LUT counts LUT RAM) beside this synthesis:\n\n```\n" + "\n".join(lines[1:]) + "\n```\n")
    atomic_text(folder / "resources.md", text)
    return text, result
