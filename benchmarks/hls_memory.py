"""On-chip memory of the HLS project at the paper's configuration: the streaming dataflow against the
time-major design it replaced, by the same Vitis rules (export/hls/memory.py).

The paper's Spikformer (128x128, D 256, 16 heads, 2 blocks, T 16) with random weights in the demo plan's
formats (benchmarks/paper_hw.py's paper_graph; every layer uniform-4 with --formats uniform-4), scheduled
for --part (default the ZU7EV) at --lanes, its HLS views and dataflow rendered, and the memory account
taken: every array, table and stream with the BRAM18K / URAM288 it maps to. Beside it, the account of
the time-major design of earlier versions (one static output buffer and one membrane array per node, the
conv kernels' static accumulators [H][W][O], the same tables), by the same rules, all in block RAM.

    python benchmarks/hls_memory.py [--formats demo] [--part xczu7ev-ffvc1156-2-e] [--lanes 32]

The last line: `paper_hls_onchip_mbit: X` (the dataflow's bits in block RAM and UltraRAM).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def time_major(graph, views) -> dict:
    """The time-major design's account: per node its output buffer and membrane, the convs' accumulators,
    and the same tables, each mapped by memory.py's rules (no UltraRAM: the design placed none)."""
    from hqflow.export.hls import memory

    rows = []
    for view, node in zip(views, graph.nodes):
        if view.kernel is not None and view.word_type is not None:  # a process with an output of its own
            rows.append(memory.entry(node.name, "out", "ram", view.bits, math.prod(node.shape), "auto"))
        if "v_bits" in node.attrs:
            rows.append(memory.entry(node.name, "v", "ram", int(node.attrs["v_bits"]), math.prod(node.shape), "auto"))
        if "acc_bits" in node.attrs and len(node.shape) == 3:  # a [O][H][W] accumulator (the scattering conv)
            rows.append(memory.entry(node.name, "acc", "ram", int(node.attrs["acc_bits"]), math.prod(node.shape),
                                      "auto"))
        for table in view.tables:
            rows.append(memory.entry(node.name, table.field, "rom", memory.TABLE_BITS[str(table.ctype)],
                                      table.values.size, "rom"))
    return {"bits": sum(r.bits for r in rows if r.where != "lut"), "bram36": sum(r.bram18 for r in rows) / 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="demo", help="demo (the demo plan's formats) or one format")
    parser.add_argument("--config", type=Path, default=ROOT.parent / "configs" / "paper.yaml")
    parser.add_argument("--part", default="xczu7ev-ffvc1156-2-e")
    parser.add_argument("--lanes", type=int, default=32)
    args = parser.parse_args()
    from paper_hw import paper_graph

    from hqflow.export.hls import HlsOptions, memory
    from hqflow.export.hls.writer import placed
    from hqflow.export.rtl import stream

    graph, source = paper_graph(args.formats, args.config)
    print(f"paper configuration, random weights in {source}; part {args.part}, lanes bound {args.lanes}")
    options = HlsOptions(part=args.part, lanes=args.lanes)
    from hqflow.export.rtl.stream_project import part_fit

    place, _ = part_fit(options)  # the schedule's UltraRAM placement for the part (worst-case input rates)
    schedule, fits = stream.plan_to_fit(graph, args.lanes, None, None, place)
    views, flow = placed(graph, options, schedule)
    doc = memory.account(views, flow, args.part)
    for line in memory.account_lines(doc, top=12):
        print(line)
    old = time_major(graph, views)
    total = doc["total"]
    print(f"dataflow (this design): {total['bits_bram_uram'] / 1e6:.2f} Mbit in block RAM / UltraRAM: "
          f"BRAM36 {total['bram36']:g}, URAM288 {total['uram']}; the schedule's RTL estimate fits the part: {fits}")
    print(f"time-major (before): {old['bits'] / 1e6:.2f} Mbit, BRAM36 {old['bram36']:g} "
          f"({old['bram36'] / doc['capacity']['bram36']:.1f}x the part's {doc['capacity']['bram36']})")
    print(f"paper_hls_onchip_mbit: {total['bits_bram_uram'] / 1e6:.2f}")


if __name__ == "__main__":
    main()
