"""`hqflow export --target rtl`, `hqflow rtlsim`, `hqflow synth`: the layer cores of an export.

This export holds one Verilog core per weighted node (conv_lif, linear_lif) of the DeployGraph,
each with its memory files and parameters, and a Verilator testbench that drives each core with
that node's real input from the NumPy simulator's trace of the first test samples and compares
every spike of every time step with the traced output. It is not the whole model: the top that
wires every op together is still to come. OUT/rtl/ holds

    cores/*.v                       the cores (copied from the package hqflow.rtl_templates)
    tb/hqflow_layers_tb.cpp         the Verilator testbench (one core at a time, selected by `sel`)
    hqflow_layers_top.v             the rendered top: one core per weighted node, parameters and file names
    cases.txt                       one line per node: case samples T n_in spatial O G P
    <case>/weights.mem bias.mem thr.mem sign.mem    the node's ROM words and LIF tables ($readmemh)
    <case>/x.txt s.txt              its traced inputs [samples, T, n_in] and golden spikes [samples, T, spatial, O]
    synth/<case>.ys                 the Yosys script of the node's core (run from rtl/ by `make synth`)
    layers.json                     the node -> case map, lanes and parameters (read by rtlsim and synth)
    Makefile                        `make sim` (Verilator) and `make synth` (Yosys synth_xilinx -family xc7)
    README.md                       every file named, per node
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.rtl import layer, verilator, yosys
from hqflow.io import atomic_text, read_json
from hqflow.ir import DeployGraph
from hqflow.sim.run import run as sim_run

__all__ = ["MANIFEST", "RtlOptions", "allowed_lanes", "choose_lanes", "load_manifest", "rtl_dir", "rtlsim",
           "synth_layers", "write_rtl"]

WEIGHTED = ("conv_lif", "linear_lif")
MANIFEST = "layers.json"
TOP = "hqflow_layers_top"
TESTBENCH = "tb/hqflow_layers_tb.cpp"
MAX_LANES = 64  # the testbench reads at most 64 spikes a cycle (s_data of the top)
FILES_PER_CASE = ("weights.mem", "bias.mem", "thr.mem", "sign.mem", "x.txt", "s.txt")


@dataclass(frozen=True)
class RtlOptions:
    """samples: traced test samples in the testbench; lanes: P, output channels per cycle (per node
    moved to the nearest value its ROM word allows, `choose_lanes`)."""
    samples: int = 2
    lanes: int = 8


def allowed_lanes(bits: int) -> list[int]:
    """Values of P a ROM word of `bits`-bit codes allows, up to MAX_LANES: the divisors of the
    64 // bits codes of a word, and its multiples."""
    per_word = numerics.ROM_WORD_BITS // bits
    divisors = [d for d in range(1, per_word + 1) if per_word % d == 0]
    multiples = list(range(2 * per_word, MAX_LANES + 1, per_word))
    return [p for p in divisors + multiples if p <= MAX_LANES]


def choose_lanes(bits: int, requested: int) -> int:
    """The allowed P nearest `requested` (the smaller one on a tie)."""
    return min(allowed_lanes(bits), key=lambda p: (abs(p - requested), p))


def _case_name(node: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", node)
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(layer.TEMPLATES / "project")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def write_rtl(graph: DeployGraph, out: Path, frames: np.ndarray, options: RtlOptions) -> dict:
    """Write the layer-core project into `out` (a new folder, e.g. the export's rtl/) for the weighted
    nodes of `graph`, vectors from the NumPy simulator on `frames` [samples, T, C, H, W] int16.
    Returns {"samples", "layers": [{node, op, format, case, module, bits, lanes, lanes_requested, params}]}."""
    if options.lanes > MAX_LANES:
        raise UserError(f"--lanes {options.lanes}: at most {MAX_LANES} (the testbench reads up to {MAX_LANES} "
                        "spikes a cycle)")
    out = Path(out)
    weighted = [node for node in graph.nodes if node.op in WEIGHTED]
    if not weighted:
        raise UserError("the graph has no conv_lif or linear_lif node: nothing for the rtl target")
    (out / "cores").mkdir(parents=True)
    (out / "tb").mkdir()
    (out / "synth").mkdir()
    for name in layer.CORE_FILES:
        shutil.copyfile(layer.CORES / name, out / "cores" / name)
    shutil.copyfile(layer.TEMPLATES / TESTBENCH, out / TESTBENCH)
    cases, layers, taken = [], [], set()
    env = _env()
    _, trace = sim_run(graph, frames, trace=True)  # once, for every node's input and golden vectors
    for node in weighted:
        fmt = numerics.Candidate.parse(node.attrs["format"])
        bits = numerics.rom_code_bits(fmt)
        lanes = choose_lanes(bits, options.lanes)
        name = _case_name(node.name, taken)
        taken.add(name)
        case = layer.layer_case(graph, node.name, frames, lanes, out, name, trace)
        cases.append(case)
        info = {"node": node.name, "op": node.op, "format": fmt.name, "case": name, "module": case.module,
                "bits": bits, "lanes": lanes, "lanes_requested": options.lanes, "params": case.params}
        layers.append(info)
        atomic_text(out / "synth" / f"{name}.ys", env.get_template("synth.ys.j2").render(
            layer=info, cores=[f"cores/{f}" for f in layer.CORE_FILES]))
    layer.write_layers(cases, out)
    manifest = {"schema": 1, "samples": int(frames.shape[0]), "time_steps": graph.time_steps,
                "top": TOP, "cores": [f"cores/{f}" for f in layer.CORE_FILES], "testbench": TESTBENCH,
                "layers": layers}
    context = {**manifest, "files": FILES_PER_CASE}
    atomic_text(out / "Makefile", env.get_template("Makefile.j2").render(**context))
    atomic_text(out / "README.md", env.get_template("README.md.j2").render(**context))
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
        if (export / "graph.json").is_file():
            raise UserError(f"{export}: an export without an rtl/ project (exported with another --target): "
                            f"{how} --force")
        raise UserError(f"{export}: no rtl/{MANIFEST} there ({how})")
    manifest = load_manifest(folder)
    needed = [*manifest["cores"], manifest["testbench"], f"{TOP}.v", "cases.txt"]
    needed += [f"{item['case']}/{f}" for item in manifest["layers"] for f in FILES_PER_CASE]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{folder / missing[0]}: missing from the rtl project ({len(missing)} file(s) missing); "
                        f"{how} --force")
    return folder


def load_manifest(folder: Path) -> dict:
    """layers.json of an rtl/ folder, its keys checked (UserError naming the file otherwise)."""
    path = Path(folder) / MANIFEST
    doc = read_json(path, "the rtl project's manifest")
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers or doc.get("schema") != 1 or not all(
            isinstance(item, dict) and {"node", "case", "module", "lanes", "params", "format"} <= set(item)
            for item in layers):
        raise UserError(f"{path}: not an hqflow rtl manifest (schema 1 with a list of layers); export again")
    return doc


def _case(item: dict) -> layer.LayerCase:
    return layer.LayerCase(item["case"], item["module"], item["params"], int(item["lanes"]), "")


def rtlsim(export: str | Path) -> tuple[list[str], int]:
    """Build the export's Verilator model (in rtl/obj) and run its testbench. Returns (lines to print:
    per node its mismatches and cycles per time step, measured and by the core's formula; then
    `mismatches: N`) and N."""
    folder = rtl_dir(export)
    manifest = load_manifest(folder)
    sources = [folder / f for f in manifest["cores"]] + [folder / f"{TOP}.v"]
    exe = verilator.build(TOP, sources, folder / manifest["testbench"], folder)  # builds in rtl/obj
    try:
        mismatches, cycles, _ = layer.run_layers(exe, folder)
    except RuntimeError as err:
        last = [line for line in str(err).splitlines() if line.strip()]
        raise UserError(f"{folder}: the testbench stopped: {last[0] if last else err}") from None
    lines, total = [], 0
    for item in manifest["layers"]:
        case = _case(item)
        name = item["case"]
        if name not in mismatches:
            raise UserError(f"{folder / 'cases.txt'}: node {item['node']} (case {name}) was not run; export again")
        x = np.loadtxt(folder / name / "x.txt", dtype=np.int64, ndmin=1)
        steps = len(cycles.get(name, []))
        nonzero = (x.reshape(max(steps, 1), -1) != 0).sum(axis=1) if steps and x.size % steps == 0 else []
        formula = [layer.expected_cycles(case, int(n)) for n in nonzero]
        measured = cycles.get(name, [])
        same = sum(int(a == b) for a, b in zip(measured, formula))
        span = (lambda v: f"{min(v)}..{max(v)}" if v and min(v) != max(v) else (str(v[0]) if v else "-"))
        lines.append(f"{item['node']} ({item['op']} {item['format']}, P {item['lanes']}): mismatches "
                     f"{mismatches[name]}, cycles per step {span(measured)} (formula {span(formula)}, "
                     f"{same}/{len(measured)} steps equal)")
        total += mismatches[name]
    lines.append(f"mismatches: {total}")
    return lines, total


def synth_layers(export: str | Path, nodes: list[str] | None = None, family: str = "xc7") -> tuple[str, dict]:
    """Synthesize each layer core of the export (or the `nodes` named) with Yosys synth_xilinx; writes
    rtl/resources.json and rtl/resources.md and returns (the markdown table, {node: resources dict})."""
    folder = rtl_dir(export)
    yosys.find_yosys()  # a missing Yosys is one error before any core is read
    manifest = load_manifest(folder)
    by_node = {item["node"]: item for item in manifest["layers"]}
    for name in nodes or []:
        if name not in by_node:
            raise UserError(f"--nodes: no weighted node {name!r} in {folder}; choices: {', '.join(by_node)}")
    chosen = [by_node[name] for name in nodes] if nodes else manifest["layers"]
    rows, lanes, result = [], [], {}
    for item in chosen:
        params = {key: (str((folder / value.strip('"')).resolve()) if isinstance(value, str) else int(value))
                  for key, value in item["params"].items()}
        res = yosys.synth(item["module"], [folder / f for f in manifest["cores"]], params, family,
                          workdir=folder / "synth" / item["case"])
        rows.append((f"{item['node']} ({item['format']}, P {item['lanes']})", res))
        lanes.append(int(item["lanes"]))
        result[item["node"]] = {"module": item["module"], "format": item["format"], "lanes": item["lanes"],
                                "family": family, **res.to_dict()}
    table = yosys.markdown_table(rows, name="node", lanes=lanes)
    atomic_text(folder / "resources.json", json.dumps(result, indent=1) + "\n")
    atomic_text(folder / "resources.md", table)
    return table, result
