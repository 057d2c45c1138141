"""Single weighted layers (conv_lif, linear_lif) as one Verilator project, checked against the NumPy simulator.

    <out>/cases.txt                    one line per case: name samples T n_in spatial O G P
    <out>/<case>/weights.mem, bias.mem, thr.mem, sign.mem   memory files (memfiles.py)
    <out>/<case>/x.txt, s.txt          inputs [samples, T, n_in] and golden spikes [samples, T, spatial, O]
                                       from hqflow.sim.run (every output of every step)
    <out>/hqflow_layers_top.v          the rendered top: one core per case (parameters, file names)
The cores are rtl_templates/cores; the testbench rtl_templates/tb/hqflow_layers_tb.cpp. Many
cases share one Verilator build (one model), selected at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from hqflow.export.rtl import memfiles, top, verilator
from hqflow.export.rtl.paths import CORES, TEMPLATES
from hqflow.export.rtl.seq_ops import SEQ_MODULES, seq_op
from hqflow.io import atomic_text
from hqflow.ir import DeployGraph, Node
from hqflow.sim.run import run as sim_run

__all__ = ["CORES", "LayerCase", "TEMPLATES", "build_layers", "expected_cycles", "layer_case", "run_layers",
           "write_layers"]

CORE_FILES = ("hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v", "hqflow_linear_lif.v", "hqflow_conv_lif.v")




@dataclass(frozen=True)
class LayerCase:
    """One layer as the top instantiates it: the core module, its parameters, the testbench line."""
    name: str
    module: str
    params: dict
    P: int
    line: str
    nonzero: tuple[int, ...] = ()  # nonzero inputs of each (sample, step), in the testbench's order


def layer_parameters(graph: DeployGraph, node: Node, parallel: int, folder: str) -> dict:
    """Verilog parameters of a single-layer core (conv_lif / linear_lif: seq_ops.SeqOp.layer_params) with
    P lanes, memory files in `folder`; UserError for another op."""
    return seq_op(node).layer_params(graph, node, parallel, f"{folder}/")


def layer_case(graph: DeployGraph, node_name: str, frames: np.ndarray, parallel: int, out: Path,
               name: str, trace: dict[str, np.ndarray] | None = None) -> LayerCase:
    """Write case `name` (memory files, input and golden vectors of every sample and step) under out/name.
    `trace`: the simulator's trace of `frames` ({node: [T, B, ...]}), when the caller has it already."""
    node = graph.node(node_name)
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    params = layer_parameters(graph, node, parallel, name)
    rom_text, _, _ = memfiles.rom_lines(graph, node, parallel)
    atomic_text(folder / "weights.mem", rom_text)
    for key, text in memfiles.lif_tables(graph, node, parallel).items():
        atomic_text(folder / f"{key}.mem", text)
    if trace is None:
        _, trace = sim_run(graph, frames, trace=True)
    op = seq_op(node)
    # the RTL layout (channels last, as the core reads and writes): [T, B, n_in], [T, B, spatial, O]
    x = top.layout(graph, graph.node(node.inputs[0]), trace[node.inputs[0]])
    s = top.layout(graph, node, trace[node.name])
    s = s.reshape(*s.shape[:2], -1, op.outputs(node))
    x = x.swapaxes(0, 1)  # [B, T, n_in]
    s = s.swapaxes(0, 1)  # [B, T, spatial, O]
    atomic_text(folder / "x.txt", " ".join(map(str, x.ravel().tolist())) + "\n")
    atomic_text(folder / "s.txt", " ".join(map(str, s.ravel().tolist())) + "\n")
    samples, steps, spatial, outputs = s.shape
    groups = -(-outputs // parallel)
    line = f"{name} {samples} {steps} {x.shape[2]} {spatial} {outputs} {groups} {parallel}"
    nonzero = tuple(int(v) for v in (x != 0).sum(axis=2).ravel())
    return LayerCase(name, op.module, params, parallel, line, nonzero)


def write_layers(cases: list[LayerCase], out: Path) -> Path:
    """The rendered top and cases.txt for `cases` (written by layer_case under the same out); returns the top."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "project")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    top = Path(out) / "hqflow_layers_top.v"
    atomic_text(top, env.get_template("layers_top.v.j2").render(cases=cases))
    atomic_text(Path(out) / "cases.txt", "".join(case.line + "\n" for case in cases))
    return top


def build_layers(out: Path, defines: dict | None = None, workdir: Path | None = None) -> Path:
    """Verilate the top of `out` with the cores and the testbench; returns the executable."""
    sources = [CORES / f for f in CORE_FILES] + [Path(out) / "hqflow_layers_top.v"]
    return verilator.build("hqflow_layers_top", sources, TEMPLATES / "tb" / "hqflow_layers_tb.cpp",
                           Path(workdir or out), defines=defines)


def run_layers(executable: Path, out: Path) -> tuple[dict[str, int], dict[str, list[int]], str]:
    """Run the testbench in `out`: ({case: mismatches}, {case: cycles per (sample, step)}, stdout)."""
    result = verilator.run(executable, [], Path(out))
    mismatches = {m[0]: int(m[1]) for m in re.findall(r"^(\S+) mismatches: (\d+)$", result.stdout, re.M)}
    cycles: dict[str, list[int]] = {}
    for case, value in re.findall(r"^(\S+) sample \d+ step \d+ cycles (\d+)$", result.stdout, re.M):
        cycles.setdefault(case, []).append(int(value))
    if result.returncode not in (0, 1) or not mismatches:
        raise RuntimeError(f"layer testbench failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return mismatches, cycles, result.stdout


def expected_cycles(case: LayerCase, nonzero: int) -> int:
    """Cycles of one time step (start to done) as the core's header documents it, for `nonzero`
    nonzero inputs in the step (the module's SeqOp.cycles, seq_ops.py: linear N (C + G + 2) + nnz (G + 1)
    + 2, conv C H W + nnz (9 G + 1) + H W G + 4, G = ceil(O / P))."""
    return SEQ_MODULES[case.module].cycles(case.params, nonzero, False)
