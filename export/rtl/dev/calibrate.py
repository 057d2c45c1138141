"""Calibrate the FPGA resource table (hqflow/tables/fpga_xc7.yaml) from Yosys syntheses of the RTL cores.

    python -m hqflow.export.rtl.dev.calibrate -o hqflow/tables/fpga_xc7.yaml [--cache DIR] [--family xc7]

A small design of experiments, each point one `synth_xilinx -family xc7` run (export/rtl/yosys.py, out of
context) of a core with random weight codes of its format and random LIF tables in memory files:
  memories   hqflow_weight_rom (ROMs) and hqflow_ram (RAMs) at a few widths x depths: checks the
             memory_libmap cost rules of hqflow.fpga.memory_resources and fits the LUTs per bit of a
             ROM in soft logic
  linear     hqflow_linear_lif, N 8, C 32, O 32: lanes 4 / 8 / 16 (fixed cost per core), accumulator and
             membrane widths (LUT and FF per lane and bit), every format of FORMATS at input widths
             X_BITS 1, 2, 15 (the lane's product), a larger C and N (memories)
  conv       hqflow_conv_lif, C 4, 6 x 6, O 16: lanes 4 / 8 and two formats (fixed cost per core)
  head       hqflow_head, 36 tokens x 32 channels -> 10 classes, 10-bit sums (fixed cost)
  spike ops  hqflow_add, hqflow_maxpool, hqflow_ssa at the tiny model's sizes (fixed cost; the SSA's
             memories through memory_resources)
The fit (least squares, numpy) is the model of hqflow.fpga: memories first (their predicted resources
subtracted), then LUT / FF = fixed[core] + P * (lane[f, X] + a * ACC + b * V); DSP per lane = the
measured DSP48 / P. Results are cached per point (a hash of the core sources, parameters and seed)
in --cache, so a rerun only synthesizes what changed. The last line printed is the worst relative
LUT error of the fitted table over the core points (`max_lut_error_pct: E`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hqflow import fpga, numerics
from hqflow.export.rtl import memfiles, yosys
from hqflow.export.rtl.paths import CORES
from hqflow.export.rtl.seq_ops import SCHEME_CODE
from hqflow.io import atomic_text
from hqflow.numerics import Candidate

FORMATS = ("uniform-2", "uniform-4", "uniform-8", "po2-2", "po2-4", "po2z-4", "fp32")
X_BITS = (1, 2, 15)
LANES = (4, 8, 16)
F_BITS, T_SHIFT = 20, 2  # the LIF's frac_bits and bias shift (frac_bits - bias_frac_bits), as the lowering's
LINEAR = {"N": 8, "C": 32, "O": 32}
CONV = {"C": 4, "H": 6, "W": 6, "O": 16}
WEIGHTED_SOURCES = ("hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v")
DEFAULT_CACHE = Path("out/fpga_calibration")


# ---------------------------------------------------------------------------------------------- points

def widths(kind: str, shape: dict, fmt: Candidate, x_bits: int) -> tuple[int, int]:
    """(ACC, V) of a calibration point: hqflow.fpga.estimate_widths of its shape."""
    return fpga.estimate_widths(POINT_KINDS[kind].shape(shape), fmt, x_bits, F_BITS)


def design() -> list[dict]:
    """The design of experiments: one dict per synthesis (see the module docstring)."""
    points = []
    for w, d in ((64, 64), (64, 256), (64, 1024), (128, 96), (256, 72), (32, 2048)):
        points.append({"kind": "rom", "width": w, "depth": d})
    for w, d in ((72, 4), (120, 32), (240, 432), (64, 1024), (16, 2304), (96, 1)):
        points.append({"kind": "ram", "width": w, "depth": d})

    def weighted(kind, shape, fmt, x_bits, lanes, acc=None, v=None):
        fa, fv = widths(kind, shape, Candidate.parse(fmt), x_bits)
        return {"kind": kind, **shape, "format": fmt, "x_bits": x_bits, "P": lanes,
                "acc": acc or fa, "v": v or fv}

    for lanes in LANES:
        points.append(weighted("linear_lif", LINEAR, "uniform-4", 1, lanes))
    base = weighted("linear_lif", LINEAR, "uniform-4", 1, 8)
    points.append(weighted("linear_lif", LINEAR, "uniform-4", 1, 8, acc=base["acc"] + 12))
    points.append(weighted("linear_lif", LINEAR, "uniform-4", 1, 8, v=base["v"] + 16))
    for fmt in FORMATS:
        for x_bits in X_BITS:
            if (fmt, x_bits) != ("uniform-4", 1):
                points.append(weighted("linear_lif", LINEAR, fmt, x_bits, 8))
    points.append(weighted("linear_lif", {**LINEAR, "C": 128}, "uniform-4", 1, 8))
    points.append(weighted("linear_lif", {**LINEAR, "N": 64}, "po2-2", 1, 8))
    for lanes in (4, 8):
        points.append(weighted("conv_lif", CONV, "uniform-4", 1, lanes))
    points.append(weighted("conv_lif", CONV, "po2-2", 1, 8))
    points.append(weighted("conv_lif", CONV, "uniform-2", 15, 8))
    for fmt in ("uniform-4", "po2-2"):
        points.append({"kind": "head", "N": 36, "C": 32, "CLASSES": 10, "format": fmt, "P": 8,
                       "IN_BITS": 3, "SUM_BITS": 10, "ACC": 19, "LOGIT_BITS": 32})
    points.append({"kind": "add", "SIZE": 3456, "A_BITS": 1, "B_BITS": 1, "OUT_BITS": 2})
    points.append({"kind": "maxpool", "C": 12, "H": 24, "W": 24})
    points.append({"kind": "ssa", "N": 36, "D": 96, "HEADS": 4, "ACC_BITS": 11, "V_BITS": 16, "F": 4, "T": 2})
    return points


# ---------------------------------------------------------------------------------------------- synthesis

def _random_codes(fmt: Candidate, rows: int, outputs: int, rng) -> tuple[np.ndarray, int]:
    """Random ROM codes uint64 [rows, outputs] of a format and its zero point."""
    if fmt.scheme == "fp32":
        w_eff = rng.integers(-(2**15), 2**15, (outputs, rows))
        zero_point = 0
    else:
        zero_point = 1 << (fmt.bits - 1) if fmt.scheme == "uniform" else 0
        codes = rng.integers(0, 1 << fmt.bits, (outputs, rows)).astype(np.uint64)
        w_eff = numerics.rom_decode(fmt, codes, zero_point)
    return numerics.rom_encode(fmt, w_eff, zero_point).T.copy(), zero_point


def _random_hex(folder: Path, name: str, width: int, depth: int, rng) -> str:
    values = [int.from_bytes(rng.bytes(-(-width // 8)), "little") % (1 << width) for _ in range(depth)]
    atomic_text(folder / name, memfiles.hex_lines(values, width))
    return name


def _weighted_common(point: dict, folder: Path, rng) -> dict:
    """The weight ROM (random codes of the point's format, written to weights.mem) and its parameters."""
    kind, fmt, lanes = POINT_KINDS[point["kind"]], Candidate.parse(point["format"]), point["P"]
    bits = numerics.rom_code_bits(fmt)
    codes, zero_point = _random_codes(fmt, point[kind.inputs] * kind.taps, point[kind.outputs], rng)
    text, _, _ = memfiles.rom_text(codes, bits, lanes, f"calibration {fmt.name}")
    atomic_text(folder / "weights.mem", text)
    return {"P": lanes, "BITS": bits, "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
            "ZP": zero_point, "ROM_FILE": "weights.mem"}


def _lif_params(point: dict, folder: Path, rng) -> dict:
    """hqflow_linear_lif / hqflow_conv_lif: the ROM, random LIF tables, widths and the point's geometry."""
    common = _weighted_common(point, folder, rng)  # (the ROM's codes drawn first, the tables after)
    groups = -(-point["O"] // point["P"])
    for name, width in (("bias.mem", point["P"] * point["v"]), ("thr.mem", point["P"] * point["v"]),
                        ("sign.mem", 2 * point["P"])):
        _random_hex(folder, name, width, groups, rng)
    geometry = POINT_KINDS[point["kind"]].geometry
    return {**common, "X_BITS": point["x_bits"], "ACC_BITS": point["acc"],
            "V_BITS": point["v"], "F": F_BITS, "T": T_SHIFT, "BIAS_FILE": "bias.mem", "THR_FILE": "thr.mem",
            "SIGN_FILE": "sign.mem", **{k: point[k] for k in geometry}}


def _head_params(point: dict, folder: Path, rng) -> dict:
    common = _weighted_common(point, folder, rng)
    _random_hex(folder, "bias.mem", point["LOGIT_BITS"], point["CLASSES"], rng)
    return {**common, **{k: point[k] for k in ("N", "C", "CLASSES", "IN_BITS", "SUM_BITS", "LOGIT_BITS")},
            "ACC_BITS": point["ACC"], "BF": 4, "BIAS_FILE": "bias.mem"}


def _rom_params(point: dict, folder: Path, rng) -> dict:
    _random_hex(folder, "rom.mem", point["width"], point["depth"], rng)
    depth = point["depth"]
    return {"WIDTH": point["width"], "DEPTH": depth, "AW": max(1, (depth - 1).bit_length()), "FILE": "rom.mem"}


@dataclass(frozen=True)
class PointKind:
    """How a calibration point of one kind is synthesized and modelled. top / sources: the core; params:
    writes its memory files, returns its parameters; fit: what `fit` learns from it ("memory": nothing,
    it checks the memory rules; "lif": the kind's fixed cost, with the lane and width coefficients shared
    by every "lif" kind, in one least squares; "residual": the fixed cost left after those (the head);
    "terms": a spike op's fixed term, what its memories leave); a weighted core also has `group` (its
    LayerShape group for hqflow.fpga), `taps`, the keys of its inputs, outputs and geometry, and `x_key`
    (its input bits); memories: the resources hqflow.fpga predicts for the memories inside it. A weighted
    kind's name is its entry in the table's cores."""
    top: str
    sources: tuple[str, ...]
    params: Callable[[dict, Path, np.random.Generator], dict]
    fit: str
    group: str | None = None
    taps: int = 1
    inputs: str = "C"
    outputs: str = "O"
    geometry: tuple[str, ...] = ()
    x_key: str = "x_bits"
    memories: Callable[[dict, fpga.FpgaTable], fpga.Resources] = lambda point, table: fpga.Resources()

    @property
    def weighted(self) -> bool:
        return self.group is not None

    def shape(self, point: dict):
        """The LayerShape hqflow.fpga models a weighted point as."""
        from hqflow.cost import LayerShape

        positions = point["H"] * point["W"] if "H" in self.geometry else point["N"] if "N" in self.geometry else 1
        return LayerShape("p", self.group, point[self.inputs], point[self.outputs], self.taps, positions, 1)


_PLAIN = lambda point, folder, rng: {k: v for k, v in point.items() if k != "kind"}  # noqa: E731 (the point's own)
POINT_KINDS = {
    "rom": PointKind("hqflow_weight_rom", ("hqflow_weight_rom.v",), _rom_params, "memory",
                     memories=lambda p, table: fpga.memory_resources(p["width"], p["depth"], table, rom=True)),
    "ram": PointKind("hqflow_ram", ("hqflow_ram.v",),
                     lambda p, folder, rng: {"WIDTH": p["width"], "DEPTH": p["depth"]}, "memory",
                     memories=lambda p, table: fpga.memory_resources(p["width"], p["depth"], table)),
    "linear_lif": PointKind("hqflow_linear_lif", (*WEIGHTED_SOURCES, "hqflow_linear_lif.v"), _lif_params, "lif", "mlp",
                        geometry=("N", "C", "O")),
    "conv_lif": PointKind("hqflow_conv_lif", (*WEIGHTED_SOURCES, "hqflow_conv_lif.v"), _lif_params, "lif", "tokenizer",
                      taps=9, geometry=("C", "H", "W", "O")),
    "head": PointKind("hqflow_head", ("hqflow_ram.v", "hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_head.v"),
                      _head_params, "residual", "head", inputs="C", outputs="CLASSES", x_key="SUM_BITS"),
    "add": PointKind("hqflow_add", ("hqflow_ram.v", "hqflow_add.v"), _PLAIN, "terms"),
    "maxpool": PointKind("hqflow_maxpool", ("hqflow_ram.v", "hqflow_maxpool.v"), _PLAIN, "terms"),
    "ssa": PointKind("hqflow_ssa", ("hqflow_ram.v", "hqflow_lif.v", "hqflow_ssa.v"), _PLAIN, "terms",
                     memories=lambda p, table: fpga.ssa_memories(p["N"], p["D"], p["HEADS"], p["V_BITS"], table)),
}
FIT_KINDS = {stage: [k for k, kind in POINT_KINDS.items() if kind.fit == stage]
             for stage in ("memory", "lif", "residual", "terms")}  # the point kinds of each stage of `fit`


def _setup(point: dict, folder: Path, seed: int) -> tuple[str, list[str], dict]:
    """(top, core source files, parameters) of a point, its memory files written into `folder`."""
    kind = POINT_KINDS[point["kind"]]
    return kind.top, list(kind.sources), kind.params(point, folder, np.random.default_rng(seed))


def point_key(point: dict, seed: int) -> str:
    """A cache key: the point and the seed. The core sources are not part of it (their hash is recorded
    in each point's cells.json as `sources`): after a change of the cores, give a fresh --cache."""
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode() + str(seed).encode()).hexdigest()[:16]


def sources_hash() -> str:
    """A hash of every core source (recorded with each synthesized point)."""
    h = hashlib.sha256()
    for path in sorted(CORES.glob("*.v")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def synthesize(point: dict, cache: Path, family: str = "xc7", seed: int = 0) -> dict:
    """{cell type: count} of one point (from the cache when there), synthesized in cache/<key>/."""
    folder = Path(cache) / point_key(point, seed)
    done = folder / "cells.json"
    if done.is_file():
        return json.loads(done.read_text())["cells"]
    folder.mkdir(parents=True, exist_ok=True)
    top, sources, params = _setup(point, folder, seed)
    t0 = time.perf_counter()
    res = yosys.synth(top, [CORES / s for s in sources], params, family=family, workdir=folder)
    cells = dict(res.cells)
    atomic_text(done, json.dumps({"point": point, "seconds": round(time.perf_counter() - t0, 1),
                                  "sources": sources_hash(), "seed": seed, "cells": cells},
                                 indent=1) + "\n")
    return cells


# ---------------------------------------------------------------------------------------------- fit

def point_memories(point: dict, table: fpga.FpgaTable) -> fpga.Resources:
    """The predicted resources of the memories inside a core point (hqflow.fpga's rules)."""
    return POINT_KINDS[point["kind"]].memories(point, table)


def _shape_of(point: dict):
    return POINT_KINDS[point["kind"]].shape(point)


def _weighted_x(point: dict) -> int:
    return point[POINT_KINDS[point["kind"]].x_key]


def _zero_table(memory: dict) -> fpga.FpgaTable:
    """A table with the memory rules and every logic coefficient 0 (layer_resources = memories only)."""
    zero = fpga.Lane(0.0, 0.0, 0.0)
    return fpga.FpgaTable("(calibration)", "xc7", False, {k: 1.0 for k in fpga.RESOURCE_KEYS},
                          {c: {"lut": 0.0, "ff": 0.0} for c in fpga.CORES},
                          {k: 0.0 for k in ("lut_per_acc_bit", "ff_per_acc_bit", "lut_per_v_bit", "ff_per_v_bit")},
                          {f: {x: zero for x in X_BITS} for f in FORMATS}, memory, {})


def fit(results: list[tuple[dict, dict]], memory: dict) -> dict:
    """The table's coefficients (a dict ready for YAML) from [(point, cells)]."""
    measured = [(p, fpga.resources_from_cells(c)) for p, c in results]
    # 1. memories: the rules of DEFAULT_MEMORY (memory_libmap's costs), checked point by point in errors()
    zero = _zero_table(memory)

    def mem_of(p):
        if POINT_KINDS[p["kind"]].weighted:
            fmt = Candidate.parse(p["format"])
            return fpga.layer_resources(_shape_of(p), fmt, zero, p["P"], _weighted_x(p),
                                        p.get("acc", p.get("ACC")), p.get("v", 0))
        return point_memories(p, zero)

    # 2. weighted LIF cores: least squares over [fixed of each kind (linear_lif, conv_lif), P*acc, P*v, P*lane(f, x)...]
    cores = [(p, r, mem_of(p)) for p, r in measured if p["kind"] in FIT_KINDS["lif"]]
    combos = sorted({(p["format"], p["x_bits"]) for p, _, _ in cores})
    cols = [f"fixed_{k}" for k in FIT_KINDS["lif"]] + ["acc", "v"] + [f"{f}@{x}" for f, x in combos]
    a = np.zeros((len(cores), len(cols)))
    for i, (p, _, _) in enumerate(cores):
        a[i, cols.index(f"fixed_{p['kind']}")] = 1
        a[i, cols.index("acc")], a[i, cols.index("v")] = p["P"] * p["acc"], p["P"] * p["v"]
        a[i, cols.index(f"{p['format']}@{p['x_bits']}")] = p["P"]
    coef = {}
    for key in ("lut", "ff"):
        y = np.array([getattr(r, key) - getattr(m, key) for _, r, m in cores])
        coef[key] = dict(zip(cols, np.linalg.lstsq(a, y, rcond=None)[0].tolist()))
    lanes: dict[str, dict[int, dict]] = {}
    for f, x in combos:
        dsp = [r.dsp / p["P"] for p, r, _ in cores if (p["format"], p["x_bits"]) == (f, x)]
        lanes.setdefault(f, {})[x] = {"lut": round(coef["lut"][f"{f}@{x}"], 2), "ff": round(coef["ff"][f"{f}@{x}"], 2),
                                      "dsp": round(float(np.mean(dsp)), 3)}
    width = {"lut_per_acc_bit": round(coef["lut"]["acc"], 3), "ff_per_acc_bit": round(coef["ff"]["acc"], 3),
             "lut_per_v_bit": round(coef["lut"]["v"], 3), "ff_per_v_bit": round(coef["ff"]["v"], 3)}
    core_fixed = {k: {"lut": round(coef["lut"][f"fixed_{k}"], 1), "ff": round(coef["ff"][f"fixed_{k}"], 1)}
                  for k in FIT_KINDS["lif"]}
    # 3. the head: the residual after its lanes and memories (v = 0)
    part = fpga.FpgaTable("(calibration)", "xc7", False, zero.weights,
                          {**core_fixed, **{k: {"lut": 0.0, "ff": 0.0} for k in FIT_KINDS["residual"]}}, width,
                          {f: {x: fpga.Lane(**e) for x, e in by.items()} for f, by in lanes.items()}, memory, {})
    for kind in FIT_KINDS["residual"]:
        rest = [r + fpga.layer_resources(_shape_of(p), Candidate.parse(p["format"]), part, p["P"], _weighted_x(p),
                                         p.get("acc", p.get("ACC"))).scaled(-1)
                for p, r in measured if p["kind"] == kind]
        core_fixed[kind] = {"lut": round(float(np.mean([h.lut for h in rest])), 1) if rest else 0.0,
                            "ff": round(float(np.mean([h.ff for h in rest])), 1) if rest else 0.0}
    # 4. spike ops: fixed cost = measured - their memories
    spike_ops: dict[str, dict] = {"tokens": {}}
    for p, r in measured:
        if p["kind"] in FIT_KINDS["terms"]:
            rest = fpga.Resources(r.lut, r.ff, r.dsp, r.bram) + point_memories(p, zero).scaled(-1)
            spike_ops[p["kind"]] = {"fixed": {k: round(float(v), 1) for k, v in rest.to_dict().items()}}
    return {"memory": memory, "cores": core_fixed, "width": width, "lanes": lanes, "spike_ops": spike_ops}


def yaml_text(coeffs: dict, header: dict) -> str:
    """The table file: a comment header (how it was made) and the coefficients."""
    import yaml

    lines = [
        "# FPGA resource table of the hqflow RTL cores, Xilinx 7-series (the model: hqflow/fpga.py).",
        "# Generated by:  " + header["command"],
        f"# Yosys: {header['yosys']};  synth_xilinx -family {header['family']} -flatten -noiopad -noclkbuf "
        "(out of context)",
        f"# Date: {header['date']};  {header['points']} of the {len(design())} points of design() "
        f"({header['seconds']:.0f} s, cached by point)",
        "# Points: export/rtl/dev/calibrate.py design(): memories (ROM / RAM widths x depths), hqflow_linear_lif",
        "# (N 8, C 32, O 32) at lanes 4/8/16, accumulator / membrane widths, formats x input widths 1/2/15,",
        "# larger C and N; hqflow_conv_lif (C 4, 6x6, O 16); hqflow_head; hqflow_add / maxpool / ssa.",
        "# lut counts LUT1..LUT6 and LUT RAM (RAM32M = 4 LUTs); bram = RAMB36 + RAMB18 / 2.",
        f"# Fit: worst LUT error over the core points {header['max_lut_error_pct']:.1f} %, "
        f"mean {header['mean_lut_error_pct']:.1f} %; FF worst {header['max_ff_error_pct']:.1f} %;",
        f"# DSP exact on {header['dsp_exact']} of {header['weighted_points']} weighted-core points;"
        f" BRAM exact on {header['bram_exact']} of {header['all_points']} points.",
        "# weights: LUT-equivalents of one FF / DSP48 / BRAM36 for the search's scalar cost: the scarcity",
        "# of each on an Artix-7 100T (63400 LUT, 126800 FF, 240 DSP48, 135 BRAM36): w = 63400 / capacity.",
        "# memory: Yosys 0.23 memory_libmap's costs for xc7 (techlibs/xilinx lutrams_xc5v.txt, brams_xc4v.txt:",
        "# RAM32M / RAM64M cost 8, RAMB18 129, RAMB36 257; soft logic 1/64 per ROM bit (measured: the ROM points",
        "# switch to block RAM where bits / 64 exceeds the BRAM cost), 1 per RAM bit).",
    ]
    body = {"schema_version": 1, "family": header["family"], "placeholder": False,
            "weights": {"lut": 1.0, "ff": 0.5, "dsp": round(63400 / 240, 1), "bram": round(63400 / 135, 1)},
            **coeffs}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=110)


DEFAULT_MEMORY = {"rom_logic_cost": 1 / 64, "ram_logic_cost": 1.0, "rom_lut_depth": 64, "ram_lut_per_bit": 0.0,
                  "lutram": {"cost": 8.0, "luts": 4.0, "configs": [[6, 32], [3, 64]]},
                  "bram18": {"cost": 129.0, "configs": [[36, 512], [18, 1024], [9, 2048], [4, 4096], [2, 8192],
                                                        [1, 16384]]},
                  "bram36": {"cost": 257.0, "configs": [[72, 512], [36, 1024], [18, 2048], [9, 4096], [4, 8192],
                                                        [2, 16384], [1, 32768]]}}


def predict(point: dict, table: fpga.FpgaTable) -> fpga.Resources:
    """The fitted table's estimate of one point."""
    kind = point["kind"]
    if POINT_KINDS[kind].weighted:
        return fpga.layer_resources(_shape_of(point), Candidate.parse(point["format"]), table, point["P"],
                                    _weighted_x(point), point.get("acc", point.get("ACC")), point.get("v", 0))
    fixed = table.spike_ops[kind]["fixed"] if kind in table.spike_ops else fpga.Resources()
    return fixed + point_memories(point, table)


def errors(results: list[tuple[dict, dict]], table: fpga.FpgaTable) -> list[dict]:
    """Per point: measured and predicted resources."""
    rows = []
    for p, cells in results:
        m, e = fpga.resources_from_cells(cells), predict(p, table)
        rows.append({"point": p, "measured": m.to_dict(), "estimate": e.to_dict()})
    return rows


def _pct(est: float, meas: float) -> float:
    return 100 * abs(est - meas) / max(meas, 1.0)


def run(out: Path, cache: Path = DEFAULT_CACHE, family: str = "xc7", points: list[dict] | None = None,
        progress: bool = True, cached_only: bool = False) -> dict:
    """Synthesize the design (cached), fit, write the table `out`; returns the summary."""
    points = design() if points is None else points
    if cached_only:
        points = [p for p in points if (Path(cache) / point_key(p, 0) / "cells.json").is_file()]
    t0 = time.perf_counter()
    results = []
    for i, p in enumerate(points):
        results.append((p, synthesize(p, cache, family)))
        if progress:
            print(f"[{i + 1}/{len(points)}] {json.dumps(p)}", file=sys.stderr, flush=True)
    coeffs = fit(results, DEFAULT_MEMORY)
    version = subprocess.run([str(yosys.find_yosys()), "-V"], capture_output=True, text=True).stdout.strip()
    command = f"python -m hqflow.export.rtl.dev.calibrate -o {out}" + (" --cached-only" if cached_only else "")
    header = {"command": command, "yosys": version, "family": family,
              "date": datetime.date.today().isoformat(), "points": len(points),
              "seconds": time.perf_counter() - t0}
    # errors with the fitted table (written to a temporary file to parse it as a user would)
    draft = Path(cache) / "draft.yaml"
    atomic_text(draft, yaml_text(coeffs, {**header, "max_lut_error_pct": 0, "mean_lut_error_pct": 0,
                                          "max_ff_error_pct": 0, "dsp_exact": 0, "weighted_points": 0,
                                          "bram_exact": 0, "all_points": 0}))
    rows = errors(results, fpga.load_fpga_table(draft))
    cores = [r for r in rows if POINT_KINDS[r["point"]["kind"]].weighted]
    lut_err = [_pct(r["estimate"]["lut"], r["measured"]["lut"]) for r in cores]
    ff_err = [_pct(r["estimate"]["ff"], r["measured"]["ff"]) for r in cores]
    header.update(max_lut_error_pct=max(lut_err), mean_lut_error_pct=float(np.mean(lut_err)),
                  max_ff_error_pct=max(ff_err), weighted_points=len(cores),
                  dsp_exact=sum(r["estimate"]["dsp"] == r["measured"]["dsp"] for r in cores),
                  bram_exact=sum(r["estimate"]["bram"] == r["measured"]["bram"] for r in rows), all_points=len(rows))
    atomic_text(Path(out), yaml_text(coeffs, header))
    atomic_text(Path(cache) / "errors.json", json.dumps(rows, indent=1) + "\n")
    return {"header": header, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=fpga.DEFAULT_TABLE, help="the table to write")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="a folder of synthesized points")
    ap.add_argument("--family", default="xc7")
    ap.add_argument("--cached-only", action="store_true",
                    help="fit from the points already in --cache (a partial design: formats / input widths "
                         "not synthesized are interpolated by hqflow.fpga)")
    args = ap.parse_args(argv)
    summary = run(args.out, args.cache, args.family, cached_only=args.cached_only)
    for r in summary["rows"]:
        p, m, e = r["point"], r["measured"], r["estimate"]
        label = " ".join(f"{k}={v}" for k, v in p.items() if k not in ("acc", "v"))
        print(f"{label}: LUT {m['lut']:g}/{e['lut']:.0f} FF {m['ff']:g}/{e['ff']:.0f} "
              f"DSP {m['dsp']:g}/{e['dsp']:g} BRAM {m['bram']:g}/{e['bram']:g}")
    h = summary["header"]
    print(f"wrote {args.out}; DSP exact {h['dsp_exact']}/{h['weighted_points']}, BRAM exact "
          f"{h['bram_exact']}/{h['all_points']}")
    print(f"max_lut_error_pct: {h['max_lut_error_pct']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
