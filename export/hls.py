"""DeployGraph -> a stand-alone HLS C++ project, and its testbench vectors from the NumPy simulator.

    <out>/firmware/<name>_top.{h,cpp}   the top function: the time-step loop and the call order
    <out>/firmware/parameters.h         per-node ap_int types and config structs
    <out>/firmware/weights/<node>.h     weight ROMs (packed codes) and LIF tables
    <out>/firmware/kernels/             the kernel library (hls_templates/kernels, copied)
    <out>/tb/                           testbench, golden vectors (tb/data) from sim traces
    <out>/Makefile, build_prj.tcl, README.md

Python computes only what the templates fill in: sizes and ap_int widths (from the graph's
proven bounds), the weight scheme of each node, the tables, the call order, and the golden
vectors. All arithmetic lives in the kernel headers; the templates are rendered with
StrictUndefined, so a missing value is an error, never an empty string.

Weight ROMs: every scheme stores a BITS-bit code per weight (uniform-b: w_int; po2(z)-b:
[negative : 1][shift : b - 1], the all-ones shift being zero for po2z; fp32: the 32-bit two's
complement fixed point), packed 64 // BITS to a 64-bit word. Row r holds input r's codes for
all outputs: conv rows are (c, i, j) taps, linear and head rows input channels.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.ir import DeployGraph, Node
from hqflow.sim.run import run

# The kernel library, the testbench header and the Jinja templates, found through the package
# hqflow.hls_templates (package data of a regular install; the hls_templates folder when editable).
TEMPLATES = Path(str(resources.files("hqflow.hls_templates")))
KERNELS = TEMPLATES / "kernels"
ROM_WORD_BITS = 64


@dataclass(frozen=True)
class HlsOptions:
    """name: the project (top function `<name>_top`, C++ namespace `<name>`); reuse_factor: the
    initiation interval of a conv / linear layer's accumulation, in cycles per ROM word (a word
    updates 64 // bits outputs at once); part and clock_ns: for build_prj.tcl."""

    name: str = "spikformer"
    reuse_factor: int = 1
    part: str = "xcvu9p-flga2104-2-e"
    clock_ns: float = 5.0

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise UserError(f"HLS project name {self.name!r}: must be a C identifier")
        if self.reuse_factor < 1:
            raise UserError(f"reuse factor {self.reuse_factor}: must be >= 1")


# ---- tables ---------------------------------------------------------------------------------------


def rom_codes(graph: DeployGraph, node: Node) -> tuple[np.ndarray, int]:
    """(codes uint64 [rows, outputs], code bits) of a weighted node, rows as the kernels read them."""
    fmt = numerics.Candidate.parse(node.attrs["format"])
    if fmt.scheme == "uniform":
        codes, bits = graph.tensor(node.name, "w_int").astype(np.uint64), fmt.bits
    elif fmt.scheme == "po2":
        sign = graph.tensor(node.name, "w_sign").astype(np.int64)
        shift = graph.tensor(node.name, "w_shift").astype(np.int64)
        bits, field = fmt.bits, (1 << (fmt.bits - 1)) - 1  # the all-ones shift field
        largest = field - 1 if fmt.zero_level else field
        if shift.max(initial=0) > largest:
            raise ValueError(f"node {node.name}: w_shift {shift.max()} exceeds {largest}, the largest {fmt.name} shift")
        if not fmt.zero_level and (sign == 0).any():
            raise ValueError(f"node {node.name}: {fmt.name} has no zero level, but w_sign holds a 0")
        codes = (((sign < 0).astype(np.int64) << (bits - 1)) | np.where(sign == 0, field, shift)).astype(np.uint64)
    else:
        codes, bits = (graph.tensor(node.name, "w_fx").astype(np.int64) & 0xFFFFFFFF).astype(np.uint64), 32
    outputs = codes.shape[0]
    return codes.reshape(outputs, -1).T.copy(), bits  # [O, C(, 3, 3)] -> rows [C(*9), O]


def pack_rom(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes uint64 [rows, outputs] < 2^bits -> words uint64 [rows, ceil(outputs / lanes)], lanes = 64 // bits.

    Output o sits in word o // lanes, bits [(o % lanes) * bits, (o % lanes + 1) * bits).

    >>> pack_rom(np.array([[1, 2, 3]], np.uint64), 32)
    array([[8589934593,          3]], dtype=uint64)
    """
    codes = np.asarray(codes, np.uint64)
    if codes.size and int(codes.max()) >= 1 << bits:
        raise ValueError(f"pack_rom: a code exceeds {bits} bits")
    lanes = ROM_WORD_BITS // bits
    rows, outputs = codes.shape
    words = -(-outputs // lanes)
    padded = np.zeros((rows, words * lanes), np.uint64)
    padded[:, :outputs] = codes
    shifts = (np.arange(lanes, dtype=np.uint64) * np.uint64(bits))
    return np.bitwise_or.reduce(padded.reshape(rows, words, lanes) << shifts, axis=2)


def weight_scheme(node: Node) -> str:
    """The kernel library's weight scheme struct for a node's format."""
    fmt = numerics.Candidate.parse(node.attrs["format"])
    if fmt.scheme == "uniform":
        return f"hqflow::uniform_weight<{fmt.bits}, {int(node.attrs['zero_point'])}>"
    if fmt.scheme == "po2":
        return f"hqflow::po2_weight<{fmt.bits}, {'true' if fmt.zero_level else 'false'}>"
    return "hqflow::fixed_weight"


# ---- per-node view for the templates ----------------------------------------------------------------


def c_ident(name: str) -> str:
    """A node name as a C identifier: blocks.0.attn.q -> blocks_0_attn_q."""
    ident = re.sub(r"\W", "_", name)
    return f"n_{ident}" if ident[0].isdigit() else ident


def value_max(graph: DeployGraph) -> dict[str, int]:
    """The largest value each node outputs (all outputs but the head's are >= 0)."""
    top: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "input":
            top[node.name] = int(node.attrs["max_count"])
        elif node.op == "add":
            top[node.name] = sum(top[name] for name in node.inputs)
        elif node.op == "tokens":
            top[node.name] = top[node.inputs[0]]
        else:
            top[node.name] = 1
    return top


def _uint(max_value: int) -> str:
    """The unsigned ap type holding [0, max_value]."""
    return f"ap_uint<{max(1, int(max_value).bit_length())}>"


def _value_type(max_value: int) -> str:
    """A node output's type: spikes are hqflow::spike_t (ap_uint<1>)."""
    return "hqflow::spike_t" if max_value == 1 else _uint(max_value)


def _weights_config(graph: DeployGraph, node: Node, view: dict, options: HlsOptions) -> dict:
    """A weighted node's ROM table and the config entries of its weights and accumulator."""
    codes, bits = rom_codes(graph, node)
    words = pack_rom(codes, bits)
    view["tables"].append(("hqflow::rom_word_t", "w", words, f"weights: {node.attrs['format']}, {bits}-bit codes, "
                           f"{ROM_WORD_BITS // bits} per word; rows = inputs, lanes = outputs"))
    outputs = codes.shape[1]
    return {"in_t": view["inputs"][0]["qualified_type"], "acc_t": f"ap_int<{node.attrs['acc_bits']}>",
            "weight": weight_scheme(node), "row_words": words.shape[1], "reuse_factor": options.reuse_factor,
            "parallel": min(outputs, ROM_WORD_BITS // bits)}  # outputs updated per ROM word


def _lif_config(graph: DeployGraph, node: Node, view: dict) -> dict:
    """A spiking node's LIF tables and the config entries of its membrane."""
    for field, ctype in (("bias_int", "long long"), ("thr_int", "long long"), ("sign", "signed char")):
        view["tables"].append((ctype, field, graph.tensor(node.name, field), "LIF: " + field))
    return {"v_t": f"ap_int<{node.attrs['v_bits']}>", "frac_bits": node.attrs["frac_bits"],
            "time_steps": graph.time_steps}


def _conv_lif(graph, node, view, source, options):
    c, h, w = source.shape
    view["membrane_shape"] = [h, w, node.shape[0]]
    return {**_weights_config(graph, node, view, options), **_lif_config(graph, node, view),
            "in_channels": c, "out_channels": node.shape[0], "height": h, "width": w}


def _linear_lif(graph, node, view, source, options):
    n, c = source.shape
    view["membrane_shape"] = list(node.shape)
    return {**_weights_config(graph, node, view, options), **_lif_config(graph, node, view),
            "tokens": n, "in_channels": c, "out_channels": node.shape[-1]}


def _ssa(graph, node, view, source, options):
    n, d = node.shape
    heads = int(node.attrs["num_heads"])
    view["membrane_shape"] = list(node.shape)
    return {"acc_t": f"ap_int<{node.attrs['acc_bits']}>", "kv_t": _uint(n), **_lif_config(graph, node, view),
            "tokens": n, "dim": d, "num_heads": heads, "head_dim": d // heads, "parallel": d // heads}


def _maxpool(graph, node, view, source, options):
    c, h, w = source.shape
    return {"channels": c, "in_height": h, "in_width": w, "out_height": node.shape[1], "out_width": node.shape[2]}


def _add(graph, node, view, source, options):
    a, b = view["inputs"]
    return {"a_t": a["qualified_type"], "b_t": b["qualified_type"], "out_t": f"{view['ident']}_t",
            "size": math.prod(node.shape)}


def _tokens(graph, node, view, source, options):
    c, h, w = source.shape
    view["type"] = view["inputs"][0]["type"]
    return {"in_t": view["inputs"][0]["qualified_type"], "channels": c, "height": h, "width": w}


def _head(graph, node, view, source, options):
    """Logits: (acc_sum << bias_frac_bits) + bias_int, in the width of their range."""
    n, c = source.shape
    bound = numerics.acc_bound(int(node.attrs["x_max"]), graph.w_eff(node)) << int(node.attrs["bias_frac_bits"])
    bias = graph.tensor(node.name, "bias_int")
    view["type"] = f"ap_int<{numerics.bits_for(-bound + int(bias.min()), bound + int(bias.max()))}>"
    view["tables"].append(("long long", "bias_int", bias, "bias, in logit units"))
    return {**_weights_config(graph, node, view, options), "sum_t": _uint(int(node.attrs["x_max"])),
            "logit_t": f"{view['ident']}_t", "tokens": n, "in_channels": c, "classes": node.shape[0],
            "bias_frac_bits": node.attrs["bias_frac_bits"]}


_CONFIGS = {"conv_lif": _conv_lif, "linear_lif": _linear_lif, "ssa": _ssa, "maxpool": _maxpool, "add": _add,
            "tokens": _tokens, "head": _head}


def node_views(graph: DeployGraph, options: HlsOptions) -> list[dict]:
    """What the templates need of each node: identifiers, C shapes, types, config values, tables."""
    top = value_max(graph)
    views: dict[str, dict] = {}
    for index, node in enumerate(graph.nodes):
        ident = c_ident(node.name)
        if any(v["ident"] == ident for v in views.values()):
            raise UserError(f"node {node.name!r}: its C name {ident} collides with another node's")
        view = {"index": index, "name": node.name, "ident": ident, "op": node.op, "shape": list(node.shape),
                "inputs": [views[name] for name in node.inputs], "type": _value_type(top[node.name]),
                "tables": [], "qualified_type": f"{options.name}::{ident}_t"}
        source = graph.node(node.inputs[0]) if node.inputs else None
        view["config"] = _CONFIGS[node.op](graph, node, view, source, options) if node.op in _CONFIGS else {}
        views[node.name] = view
    return list(views.values())


# ---- rendering ----------------------------------------------------------------------------------


def _c_literal(array: np.ndarray):
    """The C literal of one element: hex for ROM words, LL for 64-bit integers."""
    if array.dtype == np.uint64:
        return lambda v: f"0x{int(v):016x}ULL"
    if array.dtype.itemsize == 8:
        return lambda v: f"{int(v)}LL"
    return lambda v: str(int(v))


def _c_rows(array: np.ndarray, per_line: int = 8) -> str:
    """An integer array as a C initializer body ({...} per leading index)."""
    array = np.asarray(array)
    literal = _c_literal(array)
    if array.ndim == 1:
        items = [literal(v) for v in array]
        return ",\n    ".join(", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))
    return ",\n    ".join("{" + _c_rows(row, per_line).replace("\n    ", " ") + "}" for row in array)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "project")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["c_rows"] = _c_rows
    env.filters["dims"] = lambda shape: "".join(f"[{int(s)}]" for s in shape)
    return env


def render_firmware(graph: DeployGraph, out: Path, options: HlsOptions) -> list[dict]:
    """Write firmware/ (and the kernel library) for graph into folder out; returns the node views."""
    env, views = environment(), node_views(graph, options)
    input_node, head = views[0], views[-1]
    context = {"name": options.name, "nodes": views, "input": input_node, "head": head, "T": graph.time_steps,
               "guard": options.name.upper()}
    firmware = out / "firmware"
    (firmware / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copytree(KERNELS, firmware / "kernels", dirs_exist_ok=True)
    for template, target in (("parameters.h.j2", "parameters.h"), ("top.h.j2", f"{options.name}_top.h"),
                             ("top.cpp.j2", f"{options.name}_top.cpp")):
        (firmware / target).write_text(env.get_template(template).render(context))
    weights = env.get_template("weights.h.j2")
    for view in views:
        if view["tables"]:
            (firmware / "weights" / f"{view['ident']}.h").write_text(weights.render(context, node=view))
    return views


def write_testbench(graph: DeployGraph, out: Path, frames: np.ndarray, labels: np.ndarray, trace_samples: int,
                    options: HlsOptions, views: list[dict], batch_size: int = 32) -> dict:
    """tb/: the testbench and its vectors; frames int [S, T, C, H, W] run through the NumPy simulator,
    every node's output of the first trace_samples samples at every step kept as golden trace."""
    env = environment()
    data = out / "tb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATES / "tb" / "hqflow_testbench.h", out / "tb" / "hqflow_testbench.h")
    frames, labels = np.asarray(frames), np.asarray(labels)
    traced = [v for v in views if v["op"] != "head"]
    correct = 0
    with open(data / "inputs.txt", "w") as f_in, open(data / "golden_logits.txt", "w") as f_logits, \
            open(data / "golden_trace.txt", "w") as f_trace:
        for start in range(0, len(frames), batch_size):
            batch = frames[start:start + batch_size]
            traced_here = range(min(len(batch), max(0, trace_samples - start)))  # batch indices to trace
            logits, trace = run(graph, batch, trace=len(traced_here) > 0)
            correct += int((numerics.argmax_first(logits) == labels[start:start + batch_size]).sum())
            np.savetxt(f_in, batch.reshape(len(batch), -1), fmt="%d")
            np.savetxt(f_logits, logits, fmt="%d")
            for b in traced_here:
                for t in range(graph.time_steps):
                    for view in traced:
                        values = trace[view["name"]][t, b].ravel()
                        f_trace.write(f"{start + b} {t} {view['index']} {values.size} ")
                        f_trace.write(" ".join(map(str, values.tolist())) + "\n")
    np.savetxt(data / "labels.txt", labels, fmt="%d")
    context = {"name": options.name, "nodes": traced, "input": views[0], "head": views[-1], "T": graph.time_steps,
               "samples": len(frames), "trace_samples": min(trace_samples, len(frames))}
    (out / "tb" / f"{options.name}_tb.cpp").write_text(env.get_template("tb.cpp.j2").render(context))
    data_bytes = sum(f.stat().st_size for f in data.iterdir())
    return {"samples": len(frames), "trace_samples": min(trace_samples, len(frames)), "correct": correct,
            "data_bytes": data_bytes}


def write_project(graph: DeployGraph, out: str | Path, frames: np.ndarray, labels: np.ndarray,
                  trace_samples: int = 2, options: HlsOptions | None = None) -> dict:
    """The complete project in folder out (built aside, then moved into place); returns a summary."""
    options = options or HlsOptions()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        views = render_firmware(graph, tmp, options)
        summary = write_testbench(graph, tmp, frames, labels, trace_samples, options, views)
        env = environment()
        context = {"name": options.name, "options": options, "nodes": views, "T": graph.time_steps, **summary,
                   "meta": graph.meta}
        for template, target in (("Makefile.j2", "Makefile"), ("build_prj.tcl.j2", "build_prj.tcl"),
                                 ("README.md.j2", "README.md")):
            (tmp / target).write_text(env.get_template(template).render(context))
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
