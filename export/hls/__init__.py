"""DeployGraph -> a stand-alone HLS C++ project, and its testbench vectors from the NumPy simulator.

    <out>/firmware/<name>_top.{h,cpp}   the top function: a DATAFLOW region of streaming processes, one per
                                        core of the schedule (export/rtl/stream.py, the RTL export's)
    <out>/firmware/parameters.h         per-node ap_int and stream word types, config structs
    <out>/firmware/weights/<node>.h     weight ROMs (packed codes) and LIF tables
    <out>/firmware/kernels/             the kernel library (hls_templates/kernels, copied)
    <out>/memory.json                   the on-chip memory account (memory.py)
    <out>/tb/                           testbench, golden vectors (tb/data) from sim traces
    <out>/Makefile, build_prj.tcl, README.md

Python computes only what the templates fill in: sizes and ap_int widths (from the graph's
proven bounds), the weight scheme, folding and storage of each node (from its core in the
schedule), the tables, the streams and the call order, and the golden vectors. All arithmetic
lives in the kernel headers; the templates are rendered with StrictUndefined, so a missing value
is an error, never an empty string.

    cpp_types.py        C++ type names (ap_int<W>, ap_uint<W>, the weight scheme structs), formed once
    configs.py          one frozen dataclass per kernel config struct (mirrors the kernel headers' defaults)
    rom.py              the weight ROMs: codes per weight, packed 64 bits to a word
    views.py            HlsOptions, NodeView (a node as the templates see it), Array, the HlsOp entry type
    ops.py              HLS_OPS: op name -> (config builder, call template); check_ops
    dataflow.py         the schedule as hls::streams and process calls
    memory.py           the memory account by Vitis' rules, and its UltraRAM placement
    writer.py           the schedule, node views, rendering, testbench vectors, write_project
    static_check.py     what an HLS tool needs, read from the firmware's object files
    dataflow_check.py   the top's dataflow region in canonical form
"""

from hqflow.export.hls.cpp_types import ROM_WORD_BITS, CType, weight_scheme
from hqflow.export.hls.ops import HLS_OPS, check_ops, supported_ops
from hqflow.export.hls.rom import pack_rom, rom_codes
from hqflow.export.hls.views import HlsOptions, NodeView, c_ident
from hqflow.export.hls.writer import (KERNELS, TEMPLATES, environment, node_views, render_firmware,
                                      write_project, write_testbench)

__all__ = ["CType", "HLS_OPS", "HlsOptions", "KERNELS", "NodeView", "ROM_WORD_BITS", "TEMPLATES", "c_ident",
           "check_ops", "environment", "node_views", "pack_rom", "render_firmware", "rom_codes", "supported_ops",
           "weight_scheme", "write_project", "write_testbench"]
