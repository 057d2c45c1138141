"""The streaming top as an export (rtl/): render the schedule, write the test vectors, co-simulate.

    hqflow_top.v                 the rendered pipeline (stream.py's Schedule, stream_top.v.j2)
    cores/*.v                    the cores (copied from the package hqflow.rtl_templates)
    mem/<node>_*.mem             weight ROMs, LIF tables, the head's bias ($readmemh)
    tb/hqflow_stream_tb.cpp      the Verilator testbench
    data/tb.txt frames.txt logits.txt trace.txt   the input elements of every test sample (T values
                                 each), its golden logits, and the golden elements of every node's
                                 stream for the traced samples
    top.json                     the manifest (arch "stream"); Makefile, README.md, architecture.png, vivado.tcl
`hqflow rtlsim` writes rtl/cycles.json and cycles.png.
"""

from __future__ import annotations

import math
import re

import numpy as np

from hqflow.devices import FIT_RESOURCES, family_of, find_device
from hqflow.errors import UserError
from hqflow.export.rtl import pnr, stream, stream_estimate, top
from hqflow.io import atomic_text
from hqflow.resources import ultra_moves
from hqflow.ir import DeployGraph
from hqflow.sim.run import run as sim_run

__all__ = ["CORES", "TESTBENCH", "cycle_lines", "cycle_report", "plan", "render_top", "write"]

TESTBENCH = "tb/hqflow_stream_tb.cpp"
# the library the op cores build on (RAMs, ROMs, lanes, LIF, windows), the FIFO, fork and register slice
SHARED_CORES = ("hqflow_ram.v", "hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v", "hqflow_lif_unit.v",
                "hqflow_window.v", "hqflow_fifo.v", "hqflow_stream_fork.v", "hqflow_stream_reg.v")
CORES = SHARED_CORES + tuple(dict.fromkeys(file for op in stream.STREAM_OPS.values() if op.has_core
                                           for file in (*op.helpers, f"{op.module}.v")))
ISOLATED = 1  # the co-simulation feeds the first ISOLATED + 1 samples alone (their latency), the rest back to back


def _ints(values: np.ndarray) -> str:
    return " ".join(map(str, np.asarray(values, np.int64).ravel().tolist())) + "\n"


def elements(graph: DeployGraph, node, values: np.ndarray) -> np.ndarray:
    """A node's values [T, B, *shape] as its stream carries them: [B, elements, T] (channels last)."""
    flat = top.layout(graph, node, values)  # [T, B, size]
    return np.moveaxis(flat, 0, -1)


def stream_offsets(schedule) -> dict[str, int]:
    """Each stream's first bit in the top's debug bus (every stream's words side by side, in order)."""
    offsets, at = {}, 0
    for st in schedule.streams:
        offsets[st.ident], at = at, at + st.width
    return offsets


def render_top(schedule, env) -> str:
    """hqflow_top.v: the schedule rendered by stream_top.v.j2."""
    width = sum(st.width for st in schedule.streams)
    return env.get_template("stream_top.v.j2").render(s=schedule, ops=stream.STREAM_OPS, dbg_width=width,
                                                      frame_elements=math.prod(schedule.frame))


FIT_SHARE = 0.8  # the folding keeps every resource's estimate within this share of --part's capacity


def write(graph: DeployGraph, out, frames: np.ndarray, trace_samples: int, options, env) -> dict:
    """Render the schedule of `graph` into `out` (the rtl/ folder, its subfolders made) and write the test
    vectors of `frames` [samples, T, C, H, W]; returns the manifest's arch-specific part."""
    samples, traced = len(frames), min(trace_samples, len(frames))
    logits, trace = sim_run(graph, frames, trace=True)
    schedule, fitted, work, estimate = plan(graph, trace, options)
    for core in schedule.cores:
        refusal = stream.STREAM_OPS[core.op].rtl_refusal(core.params)
        if refusal:
            raise UserError(f"node {core.node!r} (op {core.op}): {refusal}; export it with --target hls")
    for core in schedule.cores:
        for name, text in core.files.items():
            atomic_text(out / "mem" / name, text)
    offsets = stream_offsets(schedule)
    frame_elements = math.prod(schedule.frame)
    atomic_text(out / "hqflow_top.v", render_top(schedule, env))

    compared = [node for node in graph.nodes if not stream.STREAM_OPS[node.op].logits]
    index = {st.ident: k for k, st in enumerate(schedule.streams)}
    lines = [f"{samples} {traced} {graph.time_steps} {frame_elements} {schedule.in_bits} {schedule.classes} "
             f"{schedule.logit_bits} {len(compared)} {len(schedule.cores)}"]
    golden = []
    for node in compared:
        st = schedule.stream(schedule.node_stream[node.name])
        bits = -st.bits if st.signed else st.bits  # negative: two's complement values
        lines.append(f"{node.name} {index[st.ident]} {st.size} {bits} {offsets[st.ident]}")
        golden.append(elements(graph, node, trace[node.name][:, :traced]).reshape(traced, -1))
    atomic_text(out / "data/tb.txt", "\n".join(lines) + "\n")
    x = elements(graph, graph.nodes[0], np.asarray(frames).swapaxes(0, 1))  # [samples, elements, T]
    atomic_text(out / "data/frames.txt", _ints(x))
    atomic_text(out / "data/logits.txt", _ints(logits))
    atomic_text(out / "data/trace.txt", _ints(np.concatenate(golden, axis=1) if golden else np.zeros(0)))
    steps = graph.time_steps
    cores = [{"index": c.index, "node": c.node, "op": c.op, "module": c.module, "lanes": c.lanes,
              "format": graph.node(c.node).attrs.get("format", ""), "params": c.params, "cycles": c.cycles,
              "cycles_dense": math.ceil(stream.STREAM_OPS[c.op].cycles(c.params, steps)),
              "formula_cycles": [int(stream.STREAM_OPS[c.op].cycles(c.params, steps, work[c.node][b] if c.node in work
                                                                     else None)) for b in range(samples)],
              "inputs": list(c.inputs)} for c in schedule.cores]
    streams = [{"node": st.node, "ident": st.ident, "size": st.size, "bits": st.bits, "width": st.width}
               for st in schedule.streams]
    fifos = [{"source": q.source, "width": q.width, "depth": q.depth} for q in schedule.fifos]
    return {"arch": "stream", "cores": cores, "streams": streams, "fifos": fifos,
            "forks": [{"source": f.source, "outputs": len(f.outputs)} for f in schedule.forks],
            "interval_formula": schedule.interval, "target_interval": schedule.target_interval,
            "estimate": {"fits": fitted, "share_limit": FIT_SHARE, **estimate(schedule)},
            "frame_elements": frame_elements, "schedule": schedule,
            # the top's ports (the board bridge's parameters): in_tdata, its T values of x_bits; out_tdata
            "io": {"in_width": schedule.streams[0].width, "x_bits": schedule.in_bits, "elements": frame_elements,
                   "classes": schedule.classes, "logit_bits": schedule.logit_bits},
            "sources": [f"cores/{f}" for f in CORES] + ["hqflow_top.v"], "testbench": TESTBENCH}


def plan(graph: DeployGraph, trace: dict, options) -> tuple:
    """The schedule of `graph` for `options` (lanes, target_fps, clock_mhz, part, memory_style: RtlOptions or
    HlsOptions), folded for the input rates of the simulator's `trace` of the test frames and fitted to the
    part: the one schedule the RTL and the HLS renderers read. Returns (schedule, whether it fits, the
    event-driven cores' work per sample {node: [B, ...]}, the estimate function of part_fit)."""
    stream.check_ops(graph)
    work = {}  # the event-driven cores' work per sample (nonzero input elements over their windows)
    for node in graph.nodes:
        counted = stream.STREAM_OPS[node.op].nnz(graph, node, trace[node.inputs[0]]) if node.inputs else None
        if counted is not None:
            work[node.name] = counted
    place, estimate = part_fit(options)
    schedule, fitted = stream.plan_to_fit(graph, options.lanes or stream.DEFAULT_LANES, _target(options),
                                          {name: np.mean(n, axis=0) for name, n in work.items()}, place,
                                          lut_memories=options.memory_style == "lut")
    return schedule, fitted, work, estimate


def part_fit(options):
    """(place, estimate): `estimate(schedule)` the resource estimate of a schedule for --part's family
    (stream_estimate.py); `place(schedule)` = (the nodes whose large RAMs go to UltraRAM, whether every
    resource then stays within FIT_SHARE of the part's).

    The placement (parts with UltraRAM, when block RAM is over its share): the cores that can (their op's
    `ultra_ram`) move, the most BRAM36 freed per URAM288 taken first, while BRAM36 is over its share and
    each move keeps URAM within its own (where nothing fits, the same moves: the least block RAM). A
    move that frees fewer BRAM36 than the URAM288s it takes is none (eight BRAM36's worth each)."""
    device = find_device(options.part)
    family = family_of(options.part)
    table = stream_estimate.load_stream_table()
    limit = {key: FIT_SHARE * getattr(device, field) for key, field, _ in FIT_RESOURCES}

    def estimate(schedule) -> dict:
        return stream_estimate.estimate_schedule(schedule, table, family)

    def place(schedule) -> tuple[frozenset[str], bool]:
        total = dict(estimate(schedule)["total"])
        moves = []
        for core in schedule.cores if device.uram and total["bram"] > limit["bram"] else ():
            if stream.STREAM_OPS[core.op].ultra_ram:
                now = stream_estimate.core_resources(core.module, core.params, table, family)
                ultra = stream_estimate.core_resources(core.module, {**core.params, "ULTRA": 1}, table, family)
                if now.bram - ultra.bram >= ultra.uram - now.uram > 0:
                    moves.append((now.bram - ultra.bram, ultra.uram - now.uram, core.node))
        placed, total["bram"], total["uram"] = ultra_moves(moves, total["bram"], total["uram"], limit["bram"],
                                                           limit["uram"])
        return frozenset(placed), all(total[key] <= limit[key] for key in limit)

    return place, estimate


def _target(options) -> int | None:
    """The folding's target interval in cycles: the one --target-fps asks at the clock, else None."""
    if getattr(options, "target_fps", None):
        return max(1, int(options.clock_mhz * 1e6 / options.target_fps))
    return None


def run_args(samples: int | None, stall: int, isolate: int = ISOLATED) -> list[str]:
    """The testbench's arguments: the samples to run (None: all), the stall period, the samples run alone."""
    return [str(samples or 0), str(stall), str(isolate)]


def cycle_report(manifest: dict, text: str, isolate: int = ISOLATED) -> dict:
    """cycles.json of a streaming co-simulation: per core its active cycles per image (measured, and the
    formula), the latency of the samples run alone and the interval of those run back to back."""
    latency = {int(b): int(n) for b, n in re.findall(r"^latency (\d+) (\d+)$", text, re.M)}
    done = {int(b): int(n) for b, n in re.findall(r"^done (\d+) (\d+)$", text, re.M)}
    run = len(done)
    alone = [latency[b] for b in sorted(latency) if b <= isolate]
    spacing = [done[b] - done[b - 1] for b in sorted(done) if b > isolate + 1]
    clock = float(manifest["clock_mhz"])
    nodes = {}
    for core in manifest["cores"]:
        found = re.search(rf"^active {core['index']} (\d+)$", text, re.M)
        total = int(found.group(1)) if found else -1
        formula = sum(core["formula_cycles"][:run])  # the samples run: their cycles by the formula
        nodes[core["node"]] = {"op": core["op"], "lanes": core.get("lanes", 0),
                               "cycles_per_inference": total / run if run else 0.0,
                               "formula": formula / run if run else 0.0, "formula_equal": total == formula,
                               "dense": core["cycles_dense"]}
    spans = {name: [int(a), int(b)] for name, a, b in re.findall(r"^span (\S+) (-?\d+) (-?\d+)$", text, re.M)}
    mean_latency = float(np.mean(alone)) if alone else 0.0
    interval = float(np.mean(spacing)) if spacing else 0.0
    return {"arch": "stream", "clock_mhz": clock, "part": manifest["part"], "samples": run, "nodes": nodes,
            "latency_cycles": {"mean": mean_latency, "min": min(alone, default=0), "max": max(alone, default=0),
                               "samples": len(alone)},
            "interval_cycles": interval, "interval_formula": manifest["interval_formula"],
            "interval_samples": len(spacing), "spans": spans, "total_cycles": mean_latency,
            "latency_us": mean_latency / clock,
            "inferences_per_s": clock * 1e6 / interval if interval else 0.0}


def cycle_lines(report: dict) -> list[str]:
    """The cycle report as a table, one line per core, then the pipeline's figures."""
    lines = [f"{'node':24} {'op':10} {'P':>3} {'cycles per inference':>20} {'= formula':>10} "
             f"{'dense (worst)':>14}"]
    for name, item in report["nodes"].items():
        same = "yes" if item["formula_equal"] else f"no ({item['formula']:.0f})"
        lines.append(f"{name:24} {item['op']:10} {item['lanes'] or '':>3} {item['cycles_per_inference']:>20.0f} "
                     f"{same:>10} {item['dense']:>14}")
    lat = report["latency_cycles"]
    clock = report["clock_mhz"]
    lines.append(f"latency: {lat['mean']:.0f} cycles (first input beat to last logit, {lat['samples']} sample(s) "
                 f"run alone: min {lat['min']}, max {lat['max']}) = "
                 f"{pnr.latency_phrase(lat['mean'], clock, report.get('routed'))}")
    if report["interval_samples"]:
        lines.append(f"interval: {report['interval_cycles']:.0f} cycles between inferences streamed back to back "
                     f"({report['interval_samples']} intervals; the slowest core's formula: "
                     f"{report['interval_formula']}) = {report['inferences_per_s']:.0f} inferences/s at the "
                     f"{clock:g} MHz target clock")
    return lines
