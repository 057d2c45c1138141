"""Rendering: the schedule, the node views, firmware/ from the templates, the testbench and its vectors, the project."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.hls import cpp_types, memory
from hqflow.export.hls.dataflow import Dataflow, plan_dataflow
from hqflow.export.hls.ops import HLS_OPS, check_ops
from hqflow.export.hls.views import HlsOptions, NodeView, OpContext, c_ident
from hqflow.ir import DeployGraph
from hqflow.ops import implementation, signed_nodes
from hqflow.sim.run import run

# The kernel library, the testbench header and the Jinja templates, found through the package
# hqflow.hls_templates (package data of a regular install; the hls_templates folder when editable).
TEMPLATES = Path(str(resources.files("hqflow.hls_templates")))
KERNELS = TEMPLATES / "kernels"


def named(options: HlsOptions, graph: DeployGraph) -> HlsOptions:
    """`options` with its project name: the given one, else the model family's (spikformer, sdt) as the
    graph records it."""
    if options.name:
        return options
    return dataclasses.replace(options, name=graph.meta.get("model", {}).get("family", "spikformer"))


def schedule_of(graph: DeployGraph, options: HlsOptions, trace: dict | None = None):
    """The schedule the project renders: export/rtl/stream_project.plan (the RTL export's), folded for the
    input rates of the simulator's `trace` of the test frames (None: every input nonzero, the worst case)
    within `options`' lanes, frame rate and part."""
    from hqflow.export.rtl import stream, stream_project

    if trace is None:
        return stream.plan_stream(graph, options.lanes or stream.DEFAULT_LANES, files=False)
    return stream_project.plan(graph, trace, options)[0]


def node_views(graph: DeployGraph, options: HlsOptions, schedule=None) -> list[NodeView]:
    """What the templates need of each node: identifiers, C shapes, types, stream words, typed configs
    (from the node's core in `schedule`, schedule_of's worst case when None), tables, arrays."""
    options = named(options, graph)
    missing = [node.name for node in graph.nodes if node.value_max is None]
    if missing:
        raise ValueError(f"node {missing[0]!r}: no value_max (the output range that sizes its C++ type); build "
                         "graphs with hqflow.ir.make_node or hqflow.ir.complete")
    schedule = schedule or schedule_of(graph, options)
    cores = {core.node: core for core in schedule.cores}
    signed = signed_nodes(graph.nodes)
    views: dict[str, NodeView] = {}
    idents: set[str] = set()
    for index, node in enumerate(graph.nodes):
        ident = c_ident(node.name)
        if ident in idents:
            raise UserError(f"node {node.name!r}: its C name {ident} collides with another node's")
        idents.add(ident)
        entry = implementation(HLS_OPS, node, "the HLS backend")
        inputs = tuple(views[name] for name in node.inputs)
        stream_id = schedule.node_stream.get(node.name)
        bits = schedule.stream(stream_id).bits if stream_id else 0
        emitted = entry.build(OpContext(graph, node, inputs, ident, options, cores.get(node.name)))
        views[node.name] = NodeView(
            index=index, name=node.name, ident=ident, op=node.op, shape=tuple(int(s) for s in node.shape),
            inputs=inputs, type=emitted.value_type or (cpp_types.ap_int(bits) if node.name in signed and bits else
                                                       cpp_types.value_type(node.value_max)),
            qualified_type=cpp_types.node_type(options.name, ident), bits=bits, signed=node.name in signed,
            word_type=cpp_types.ap_uint(graph.time_steps * bits) if bits else None, kernel=entry.kernel,
            header=entry.header, config=emitted.config, tables=emitted.tables, arrays=emitted.arrays)
    return list(views.values())


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


def placed(graph: DeployGraph, options: HlsOptions, schedule) -> tuple[list[NodeView], Dataflow]:
    """The node views and the dataflow of `schedule`, with the memory account's UltraRAM placement for
    options.part (memory.place: where block RAM is over its share, the bound arrays and deep streams that
    free the most of it) applied: those nodes' cores read as ULTRA, those streams' FIFOs in UltraRAM."""
    views = node_views(graph, options, schedule)
    flow = plan_dataflow(graph, schedule, {view.name: view for view in views})
    nodes, streams = memory.place(views, flow, options.part)
    if not nodes and not streams:
        return views, flow
    cores = tuple(dataclasses.replace(core, params={**core.params, "ULTRA": 1}) if core.node in nodes else core
                  for core in schedule.cores)
    views = node_views(graph, options, dataclasses.replace(schedule, cores=cores))
    return views, plan_dataflow(graph, schedule, {view.name: view for view in views}, streams)


def render_firmware(graph: DeployGraph, out: Path, options: HlsOptions, schedule=None) -> tuple[list[NodeView], Dataflow]:
    """Write firmware/ (and the kernel library) for graph into folder out; returns the node views and the
    dataflow (schedule: as node_views)."""
    options = named(options, graph)
    schedule, env = schedule or schedule_of(graph, options), environment()
    views, flow = placed(graph, options, schedule)
    input_node, head = views[0], views[-1]
    context = {"name": options.name, "nodes": views, "input": input_node, "head": head, "T": graph.time_steps,
               "guard": options.name.upper(), "flow": flow}
    firmware = out / "firmware"
    (firmware / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copytree(KERNELS, firmware / "kernels", dirs_exist_ok=True)
    for template, target in (("parameters.h.j2", "parameters.h"), ("top.h.j2", f"{options.name}_top.h"),
                             ("top.cpp.j2", f"{options.name}_top.cpp")):
        (firmware / target).write_text(env.get_template(template).render(context))
    weights = env.get_template("weights.h.j2")
    for view in views:
        if view.tables:
            (firmware / "weights" / f"{view.ident}.h").write_text(weights.render(context, node=view))
    return views, flow


def write_testbench(graph: DeployGraph, out: Path, frames: np.ndarray, labels: np.ndarray, trace_samples: int,
                    options: HlsOptions, views: list[NodeView], batch_size: int = 32, simulated=None) -> dict:
    """tb/: the testbench and its vectors; frames int [S, T, C, H, W] run through the NumPy simulator,
    every node's output but the head's of the first trace_samples samples at every step kept as golden
    trace (in the node's own layout: the C simulation's trace reads each stream back into it).
    simulated: (logits, trace) of every frame, when the caller has run them already (else batch by batch)."""
    options = named(options, graph)
    env = environment()
    data = out / "tb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATES / "tb" / "hqflow_testbench.h", out / "tb" / "hqflow_testbench.h")
    frames, labels = np.asarray(frames), np.asarray(labels)
    traced = [view for view in views if view.word_type is not None]
    correct = 0
    with open(data / "inputs.txt", "w") as f_in, open(data / "golden_logits.txt", "w") as f_logits, \
            open(data / "golden_trace.txt", "w") as f_trace:
        for start in range(0, len(frames), batch_size):
            batch = frames[start:start + batch_size]
            traced_here = range(min(len(batch), max(0, trace_samples - start)))  # batch indices to trace
            if simulated is None:
                logits, trace = run(graph, batch, trace=len(traced_here) > 0)
            else:
                logits = simulated[0][start:start + batch_size]
                trace = {name: values[:, start:start + batch_size] for name, values in simulated[1].items()}
            correct += int((numerics.argmax_first(logits) == labels[start:start + batch_size]).sum())
            np.savetxt(f_in, batch.reshape(len(batch), -1), fmt="%d")
            np.savetxt(f_logits, logits, fmt="%d")
            for b in traced_here:
                for t in range(graph.time_steps):
                    for view in traced:
                        values = trace[view.name][t, b].ravel()
                        f_trace.write(f"{start + b} {t} {view.index} {values.size} ")
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
    options = named(options or HlsOptions(), graph)
    check_ops()  # every op of the IR has an entry in the HLS table, before anything is written
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        simulated = run(graph, frames, trace=True)  # the schedule's input rates and the golden vectors
        schedule = schedule_of(graph, options, simulated[1])
        views, flow = render_firmware(graph, tmp, options, schedule)
        summary = write_testbench(graph, tmp, frames, labels, trace_samples, options, views, simulated=simulated)
        env = environment()
        context = {"name": options.name, "options": options, "nodes": views, "T": graph.time_steps, **summary,
                   "meta": graph.meta, "flow": flow, "schedule": schedule,
                   "cores": {core.node: core for core in schedule.cores}}
        account = memory.account(views, flow, options.part)
        memory.save(account, tmp / "memory.json")
        summary["memory"] = memory.account_lines(account, top=0)[0]
        for template, target in (("Makefile.j2", "Makefile"), ("build_prj.tcl.j2", "build_prj.tcl"),
                                 ("README.md.j2", "README.md")):
            (tmp / target).write_text(env.get_template(template).render(context))
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
