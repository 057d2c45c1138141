"""Resources and cycles of an RTL top without synthesis or simulation, for models too large for either here.

    resources  every core by hqflow.fpga.graph_resources (the per-core model calibrated from Yosys
               synthesis of the cores, tables/fpga_xc7.yaml) at the lanes the top gives it, plus every
               buffer by hqflow.fpga.memory_resources (its words x width)
    cycles     every core by top.core_cycles, its documented formula (exact against the co-simulation,
               tests/test_rtl_cli.py), with each weighted core's nonzero inputs taken as `rate` x its
               input size: `rates` {node: fraction of nonzero inputs}, measured on real data
The estimate is checked against a full synthesis of the tiny model (tests/test_rtl_estimate.py).
"""

from __future__ import annotations

import math

import numpy as np

from hqflow import fpga
from hqflow.export.rtl import top
from hqflow.ir import DeployGraph

__all__ = ["estimate_top", "input_rates"]


def input_rates(graph: DeployGraph, trace: dict[str, np.ndarray]) -> dict[str, float]:
    """{node: fraction of nonzero values in its first input} over a simulator trace ({node: [T, B, ...]})."""
    return {node.name: float((trace[node.inputs[0]] != 0).mean()) for node in graph.nodes if node.inputs}


def estimate_top(graph: DeployGraph, lanes: int = 8, rates: dict[str, float] | None = None,
                 table: fpga.FpgaTable | None = None, clock_mhz: float = 100.0) -> dict:
    """{"nodes": {node: {op, lanes, resources, cycles_per_inference}}, "buffers": {node: resources},
    "total": resources, "cycles_per_inference", "latency_us"} of the top `plan_top(graph, lanes)`.
    Cycles need `rates` (nodes missing from it count as 0 % nonzero inputs); without, they are None."""
    table = table or fpga.load_fpga_table()
    plan = top.plan_top(graph, lanes)
    per_core = fpga.graph_resources(graph, table, {c.node: c.lanes or lanes for c in plan.cores})
    nodes, cycles = {}, 0.0
    for core in plan.cores:
        node = graph.node(core.node)
        size = math.prod(graph.node(node.inputs[0]).shape)
        steps = None
        if rates is not None:
            nonzero = round(rates.get(core.node, 0.0) * size)
            steps = [top.SEQUENCER_CYCLES + top.core_cycles(core.op, core.params, nonzero, t == graph.time_steps - 1)
                     for t in range(graph.time_steps)]
            cycles += sum(steps)
        nodes[core.node] = {"op": core.op, "lanes": core.lanes, "resources": per_core[core.node].to_dict(),
                            "cycles_per_inference": sum(steps) if steps else None}
    buffers = {b.node: fpga.memory_resources(b.pack * b.bits, b.words, table) for b in plan.buffers}
    total = sum((per_core[c.node] for c in plan.cores), fpga.Resources()) + sum(buffers.values(), fpga.Resources())
    if rates is not None:
        cycles += math.prod(plan.frame) * graph.time_steps  # the frames arrive one value a cycle
    return {"nodes": nodes, "buffers": {k: v.to_dict() for k, v in buffers.items()}, "total": total.to_dict(),
            "cycles_per_inference": cycles if rates is not None else None,
            "latency_us": cycles / clock_mhz if rates is not None else None, "clock_mhz": clock_mhz,
            "table_placeholder": bool(getattr(table, "placeholder", False))}
