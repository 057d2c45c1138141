"""Logic depth of a Xilinx netlist after Yosys `synth_xilinx` (its `write_json`): per module, the most LUT
levels on a path between registers and the longest carry chain. For Xilinx parts hqflow has no place and
route, so a clock stays a target; these two numbers say how hard the target is (a 7-series LUT level with its
routing takes roughly 0.5 to 1 ns, a CARRY4 about 0.1 ns after the first).

A path starts at a sequential cell's output (flip-flop, block RAM, DSP48, UltraRAM), a LUT-RAM's stored
word or a module input, and ends at a sequential cell's input or a module output. Levels: LUT1..LUT6,
MUXF7/MUXF8 and LUT-RAM reads (RAM32M, RAM64X1D, SRL16E, ...: their output follows their read address) count
one each; INV counts none (the implementation absorbs it into a LUT); CARRY4 / CARRY8 count none as levels but
their cascades (CO of one into CI of the next) make the carry chain. CARRY4's outputs are modelled bit by bit
(O[i] and CO[i] follow S[0..i], DI[0..i], CI and CYINIT), so that a chain is not mistaken for a loop. A DSP48
is treated as registered (a combinational DSP path is not counted).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CELLS", "CellModel", "cell_model", "module_depth", "netlist_depth"]

_READ_ADDRESS = re.compile(r"A(DDR[A-H])?\d*|ADR\d|DPRA\d*")  # a LUT-RAM's read address ports
_INWARD = "input"  # a Yosys netlist's port direction (of a cell's port; not an op)


def _in_ports(cell: dict) -> dict:
    """The cell's ports whose netlist direction is inward, with their bits."""
    dirs = cell.get("port_directions", {})
    return {port: bits for port, bits in cell["connections"].items() if dirs.get(port) == _INWARD}


def _all_inputs(cell: dict, index: int) -> list:
    return [b for bits in _in_ports(cell).values() for b in bits]


def _read_address(cell: dict, index: int) -> list:
    """A LUT-RAM's output follows its read address (its stored word is state)."""
    return [b for port, bits in _in_ports(cell).items() if _READ_ADDRESS.fullmatch(port) for b in bits]


def _carry_inputs(cell: dict, index: int) -> list:
    """The input bits a CARRY4/8 output bit O[index] or CO[index] follows."""
    conn = cell["connections"]
    return [*conn.get("S", [])[:index + 1], *conn.get("DI", [])[:index + 1], *conn.get("CI", []),
            *conn.get("CYINIT", [])]


@dataclass(frozen=True)
class CellModel:
    """How a family of cells times: registered (its outputs start paths), whether its inputs end paths, the
    input bits an output bit follows, the LUT levels it adds, whether it extends a carry cascade."""
    pattern: re.Pattern
    registered: bool = False
    ends_paths: bool = False
    follows: Callable[[dict, int], list] = _all_inputs
    levels: int = 0
    carry: bool = False


CELLS = (
    CellModel(re.compile(r"FD[RSCP]E(_1)?|RAMB(18|36)E[12]|DSP48E[12]|URAM288|\$_DFF.*"), registered=True,
              ends_paths=True),
    CellModel(re.compile(r"LUT[1-6]|MUXF[78]"), levels=1),
    CellModel(re.compile(r"RAM(32|64|128|256|512)(M|X\d[SD])(16)?|SRLC?(16|32)E"), ends_paths=True,
              follows=_read_address, levels=1),
    CellModel(re.compile(r"CARRY[48]"), follows=_carry_inputs, carry=True),
)
WIRE = CellModel(re.compile(""))  # INV, BUF and the like: no level (the implementation absorbs them)


def cell_model(kind: str) -> CellModel:
    return next((m for m in CELLS if m.pattern.fullmatch(kind)), WIRE)


def module_depth(module: dict) -> dict:
    """{"lut_levels", "carry_chain"} of one module of a Yosys JSON netlist (its cells with port_directions)."""
    driver: dict[int, tuple[str, str, int]] = {}  # bit -> (cell, output port, index)
    cells = module.get("cells", {})
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "output":
                for k, bit in enumerate(bits):
                    if isinstance(bit, int):
                        driver[bit] = (name, port, k)
    memo: dict[int, tuple[int, int]] = {}  # bit -> (LUT levels to it, CARRY4 cells in its carry cascade)

    def depth(bit) -> tuple[int, int]:
        stack, expanding = [bit], set()  # expanding: bits waiting for their inputs (the path being followed)
        while stack:
            top = stack[-1]
            if top in memo or not isinstance(top, int) or top not in driver:
                stack.pop()
                continue
            name, port, index = driver[top]
            cell = cells[name]
            model = cell_model(cell["type"])
            if model.registered:
                memo[top] = (0, 0)
                stack.pop()
                continue
            ins = model.follows(cell, index)
            pending = {b for b in ins if isinstance(b, int) and b in driver and b not in memo}
            if pending and top not in expanding:
                expanding.add(top)
                for b in pending:
                    if b in expanding:  # a combinational loop (not in a synthesizable design): cut it
                        memo[b] = (0, 0)
                    else:
                        stack.append(b)
                continue
            expanding.discard(top)
            levels = max((memo.get(b, (0, 0))[0] for b in ins if isinstance(b, int)), default=0) + model.levels
            chain = 0
            if model.carry:
                ci = [b for b in cell["connections"].get("CI", []) if isinstance(b, int)]
                chain = max((memo.get(b, (0, 0))[1] for b in ci), default=0) + 1
            memo[top] = (levels, chain)
            stack.pop()
        return memo.get(bit, (0, 0)) if isinstance(bit, int) else (0, 0)

    levels = chain = 0
    ends = []
    for cell in cells.values():
        if cell_model(cell["type"]).ends_paths:
            ends += _all_inputs(cell, 0)
    for port in module.get("ports", {}).values():
        if port["direction"] == "output":
            ends += port["bits"]
    for bit in ends:
        got = depth(bit)
        levels = max(levels, got[0])
    for bit, (_, c) in memo.items():
        chain = max(chain, c)
    return {"lut_levels": levels, "carry_chain": chain}


def netlist_depth(netlist: dict) -> dict[str, dict]:
    """{module: module_depth} for every module of a Yosys JSON netlist that has cells and is not a library cell."""
    out = {}
    for name, module in netlist.get("modules", {}).items():
        if module.get("attributes", {}).get("blackbox") or not module.get("cells"):
            continue
        if all(c["type"].startswith("$") for c in module["cells"].values()):
            continue  # a library cell's timing model ($specify cells)
        out[name.lstrip("\\")] = module_depth(module)
    return out
