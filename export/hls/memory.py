"""The on-chip memory account of an HLS project: every array and stream the firmware declares, its bits, and
the block RAM / UltraRAM it maps to by Vitis' rules, against the device table of --part.

Rules (Vitis HLS, UG1399; the 7 series / UltraScale+ memory primitives):
  * a BRAM18K is 18 Kb in one of the aspect ratios 16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18, 512 x 36; an
    array of W-bit words, D deep takes the fewest of any one ratio: ceil(W / w) ceil(D / d);
  * a URAM288 is 4K words of 72 bits: ceil(W / 72) ceil(D / 4096) (a narrower word still takes a row:
    BIND_STORAGE impl=uram does not pack words side by side; Yosys' inference, hqflow.resources, does);
  * a stream (FIFO) of at most 1,024 bits (width x depth) is a shift register in LUTs (config_storage fifo:
    auto-SRL up to 1,024 bits); a larger one a RAM as above, in block RAM (or UltraRAM where bound);
  * an array the kernel binds (BIND_STORAGE: the config's `storage`) goes where it says; a constant table
    (ROM) or an unbound array of at most 1,024 bits goes to LUTs, a larger one to block RAM;
  * accumulators and words partitioned to registers are logic, not memory (not listed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from hqflow.devices import find_device
from hqflow.export.hls.ops import LUTRAM_BITS
from hqflow.resources import ultra_moves

__all__ = ["BRAM18_SHAPES", "Entry", "account", "account_lines", "bram18", "entries", "entry", "place", "save", "uram288"]

BRAM18_SHAPES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))  # (width, depth)
FIT_SHARE = 0.8  # as the RTL folding's: every memory resource within 80 % of the part's


def bram18(width: int, depth: int) -> int:
    """BRAM18Ks of a `depth` x `width`-bit RAM: the fewest of any one aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM18_SHAPES)


def uram288(width: int, depth: int) -> int:
    """URAM288s of a `depth` x `width`-bit RAM: 72-bit words, 4K deep."""
    return math.ceil(width / 72) * math.ceil(depth / 4096)


@dataclass(frozen=True)
class Entry:
    """One array or stream: its owner (node or "stream"), name, kind (rom, ram, fifo), `depth` words of
    `width` bits, where it goes (lut, bram, uram) and the primitives it takes."""

    owner: str
    name: str
    kind: str
    width: int
    depth: int
    where: str
    bram18: int
    uram: int

    @property
    def bits(self) -> int:
        return self.width * self.depth


def entry(owner: str, name: str, kind: str, width: int, depth: int, storage: str) -> Entry:
    """An array, table or stream mapped by the rules of the module docstring (storage: as Array.storage,
    or "srl" for a stream in shift registers)."""
    if storage in ("lutram", "srl") or (storage in ("auto", "rom") and width * depth <= LUTRAM_BITS):
        return Entry(owner, name, kind, width, depth, "lut", 0, 0)
    if storage == "uram":
        return Entry(owner, name, kind, width, depth, "uram", 0, uram288(width, depth))
    return Entry(owner, name, kind, width, depth, "bram", bram18(width, depth), 0)


TABLE_BITS = {"hqflow::rom_word_t": 64, "long long": 64, "int": 32, "short": 16, "signed char": 8}


def entries(views, flow) -> list[Entry]:
    """Every array of the kernels (views' arrays), every constant table and every stream of the dataflow."""
    found = []
    for view in views:
        for table in view.tables:  # a constant array [rows][words]: rows x words words of its C type
            found.append(entry(view.name, table.field, "rom", TABLE_BITS[str(table.ctype)], table.values.size, "rom"))
        for array in view.arrays:
            found.append(entry(view.name, array.name, "ram", array.width, array.depth, array.storage))
    for st in flow.streams:
        found.append(entry("stream", st.name, "fifo", st.width, st.depth, st.storage))
    return found


def place(views, flow, part: str) -> tuple[frozenset[str], frozenset[str]]:
    """UltraRAM for the account where block RAM is over FIT_SHARE of the part's (as the RTL schedule's
    placement does for its cores): the RAMs a kernel binds (line buffers, the attention's q) and the deep
    streams, the most BRAM36 freed per URAM288 taken first, while URAM stays within its own share; a move
    that frees fewer BRAM36 than the URAM288s it takes is none. Returns (the nodes whose bound arrays move,
    the streams that move)."""
    device = find_device(part)
    rows = entries(views, flow)
    bram36 = sum(e.bram18 for e in rows) / 2
    uram = sum(e.uram for e in rows)
    bindable = {(v.name, a.name) for v in views for a in v.arrays if a.storage == "bram"}
    moves = []
    for e in rows:
        if e.where == "bram" and (e.kind == "fifo" or (e.owner, e.name) in bindable):
            taken = uram288(e.width, e.depth)
            if e.bram18 / 2 >= taken > 0:
                moves.append((e.bram18 / 2, taken, (e.owner, e.name)))
    moved, _, _ = ultra_moves(moves, bram36, uram, FIT_SHARE * device.bram36, FIT_SHARE * device.uram)
    return (frozenset(owner for owner, _ in moved if owner != "stream"),
            frozenset(name for owner, name in moved if owner == "stream"))


def account(views, flow, part: str) -> dict:
    """The account as a JSON-ready dict: entries, totals (bits on chip in block RAM / UltraRAM, BRAM18K,
    BRAM36 = BRAM18K / 2, URAM288), the device's capacity and the shares, and whether both stay within
    FIT_SHARE."""
    rows = entries(views, flow)
    device = find_device(part)
    bram18_total = sum(e.bram18 for e in rows)
    uram_total = sum(e.uram for e in rows)
    bram36 = bram18_total / 2
    shares = {"bram36": bram36 / device.bram36 if device.bram36 else math.inf,
              "uram": uram_total / device.uram if device.uram else (0.0 if uram_total == 0 else math.inf)}
    onchip = sum(e.bits for e in rows if e.where in ("bram", "uram"))
    return {"part": part, "device": device.name,
            "entries": [asdict(e) for e in rows],
            "total": {"bits_bram_uram": onchip, "bits_lut": sum(e.bits for e in rows if e.where == "lut"),
                      "bram18": bram18_total, "bram36": bram36, "uram": uram_total},
            "capacity": {"bram36": device.bram36, "uram": device.uram},
            "share": shares, "share_limit": FIT_SHARE,
            "fits": all(v <= FIT_SHARE for v in shares.values())}


def account_lines(doc: dict, top: int = 8) -> list[str]:
    """A few lines for a person: the totals against the device, then the largest entries."""
    total, cap, share = doc["total"], doc["capacity"], doc["share"]
    lines = [f"memory account ({doc['part']}, {doc['device']}): {total['bits_bram_uram'] / 1e6:.3f} Mbit in block "
             f"RAM / UltraRAM, {total['bits_lut'] / 1e3:.1f} Kbit in LUTs; BRAM36 {total['bram36']:g} of "
             f"{cap['bram36']} ({share['bram36']:.0%}), URAM288 {total['uram']} of {cap['uram']} "
             f"({share['uram']:.0%}): " + (f"within {doc['share_limit']:.0%}" if doc["fits"] else
                                            f"NOT within {doc['share_limit']:.0%}")]
    largest = sorted(doc["entries"], key=lambda e: -(e["bram18"] + 8 * e["uram"]))[:top]
    for e in largest:
        if e["bram18"] or e["uram"]:
            lines.append(f"  {e['owner']:24} {e['name']:10} {e['kind']:4} {e['depth']:>7} x {e['width']:>3} bits "
                         f"-> {e['where']}: {e['bram18'] or e['uram']} {'BRAM18' if e['bram18'] else 'URAM288'}")
    return lines


def save(doc: dict, path) -> None:
    path.write_text(json.dumps(doc, indent=1) + "\n")
