"""Xilinx 7-series resources of the weighted RTL cores per weight format, synthesized with Yosys.

For each reference layer and format, random ROM codes of the format (hqflow.numerics.rom, written as
export/rtl/memfiles.py lays them out: a ROM of constants would be optimized away) and random LIF
tables go into memory files, and `synth_xilinx -family xc7` (export/rtl/yosys.py, out of context)
synthesizes the core: hqflow_linear_lif or hqflow_conv_lif with its ROM, lanes, LIF and memories.

    python benchmarks/core_resources.py                     # the reference layers, every format
    python benchmarks/core_resources.py --small             # a small shape of each core (seconds)
    python benchmarks/core_resources.py --x-bits 8 --out out/core_resources   # multi-bit inputs

Reference layers: linear 384 -> 96 over 64 tokens, conv 3x3 48 -> 96 on 16 x 16 pixels, 8 lanes,
spike inputs (X_BITS 1; --x-bits for multi-bit inputs such as event counts). Widths: acc_bits from
numerics.bounds (acc_bound of the random weights), v_bits = acc_bits + F + 2. fp32 is the 32-bit
fixed point with random 16-bit weights. Writes core_resources.json and core_resources.md into --out,
prints the table; the last line is `po2_dsp_total: N`, the DSP48 count over every po2 / po2z core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hqflow import numerics
from hqflow.export.rtl import memfiles, yosys
from hqflow.io import atomic_text
from hqflow.numerics import Candidate
from hqflow.numerics.bounds import acc_bound, bits_for
from hqflow.ops import OPS
from hqflow.export.rtl.paths import CORES
SOURCES = ["hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v"]
FORMATS = ["fp32", "uniform-2", "uniform-4", "uniform-8", "po2-2", "po2-4", "po2z-4"]
F, T = 4, 2  # the LIF's frac_bits and its bias shift
REFERENCE = {"linear_lif": {"N": 64, "C": 384, "O": 96, "P": 8}, "conv_lif": {"C": 48, "H": 16, "W": 16, "O": 96, "P": 8}}
SMALL = {"linear_lif": {"N": 4, "C": 16, "O": 16, "P": 4}, "conv_lif": {"C": 4, "H": 4, "W": 4, "O": 8, "P": 4}}


def random_codes(candidate: Candidate, rows: int, outputs: int, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """(codes uint64 [rows, outputs], w_eff int64 [outputs, rows], zero_point) of random weights."""
    if candidate.scheme == "fp32":
        w_eff = rng.integers(-(2**15), 2**15, (outputs, rows))
        zero_point = 0
    else:
        zero_point = 1 << (candidate.bits - 1) if candidate.scheme == "uniform" else 0
        codes = rng.integers(0, 1 << candidate.bits, (outputs, rows)).astype(np.uint64)
        w_eff = numerics.rom_decode(candidate, codes, zero_point)
    codes = numerics.rom_encode(candidate, w_eff, zero_point)
    return codes.T.copy(), w_eff, zero_point


def write_memfiles(folder: Path, candidate: Candidate, rows: int, outputs: int, parallel: int,
                   v_bits: int, rng) -> tuple[dict[str, str], int, np.ndarray]:
    """Write weights.mem (rows x outputs codes) and the LIF tables; (file parameters, zero point, w_eff)."""
    codes, w_eff, zero_point = random_codes(candidate, rows, outputs, rng)
    bits = numerics.rom_code_bits(candidate)
    memfiles.check_lanes(bits, parallel, candidate.name)
    kw, row_wide = memfiles.rom_shape(bits, parallel, outputs)
    words = numerics.pack_rom(codes, bits)
    padded = np.zeros((rows, row_wide * kw), np.uint64)
    padded[:, : words.shape[1]] = words
    lines = [sum(int(w) << (64 * k) for k, w in enumerate(wide)) for wide in padded.reshape(-1, kw)]
    atomic_text(folder / "weights.mem", memfiles.hex_lines(lines, 64 * kw))
    groups = -(-outputs // parallel)

    def packed(values, width):
        values = [int(v) % (1 << width) for v in values] + [0] * (groups * parallel - outputs)
        return [sum(values[g * parallel + p] << (p * width) for p in range(parallel)) for g in range(groups)]

    tables = {"bias": packed(rng.integers(-100, 100, outputs), v_bits),
              "thr": packed(rng.integers(1, 1000, outputs), v_bits),
              "sign": packed(rng.choice([1, 3, 0], outputs), 2)}
    for name, values in tables.items():
        width = 2 * parallel if name == "sign" else v_bits * parallel
        atomic_text(folder / f"{name}.mem", memfiles.hex_lines(values, width))
    files = {"ROM_FILE": "weights.mem", "BIAS_FILE": "bias.mem", "THR_FILE": "thr.mem", "SIGN_FILE": "sign.mem"}
    return files, zero_point, w_eff


def core_parameters(kind: str, shape: dict, candidate: Candidate, x_bits: int, folder: Path, rng) -> dict:
    """The core's parameters with its memory files written into `folder`."""
    window = OPS[kind].window  # the op's (conv_lif: 3x3), none for a linear layer
    rows = shape["C"] * (window.kernel_size ** 2 if window else 1)
    # acc width first from the weights (their draw does not depend on v_bits: same seed, same codes)
    _, w_eff, _ = random_codes(candidate, rows, shape["O"], np.random.default_rng(rng))
    bound = acc_bound((1 << x_bits) - 1, w_eff)
    acc_bits = bits_for(-bound, bound)
    v_bits = acc_bits + F + 2
    files, zero_point, _ = write_memfiles(folder, candidate, rows, shape["O"], shape["P"], v_bits,
                                          np.random.default_rng(rng))
    scheme = {"uniform": 0, "po2": 1, "fp32": 2}[candidate.scheme]
    return {**shape, "BITS": numerics.rom_code_bits(candidate), "SCHEME": scheme,
            "ZERO_LEVEL": int(candidate.zero_level), "ZP": zero_point, "X_BITS": x_bits,
            "ACC_BITS": acc_bits, "V_BITS": v_bits, "F": F, "T": T, **files}


def synth_core(kind: str, shape: dict, fmt: str, x_bits: int, folder: Path, seed: int = 0):
    """(Resources, parameters, seconds) of one core in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    params = core_parameters(kind, shape, Candidate.parse(fmt), x_bits, folder, seed)
    top = f"hqflow_{kind}"
    sources = [CORES / name for name in [*SOURCES, f"{top}.v"]]
    t0 = time.perf_counter()
    res = yosys.synth(top, sources, params, workdir=folder)
    return res, params, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/core_resources"))
    ap.add_argument("--small", action="store_true", help="small shapes (seconds per core)")
    ap.add_argument("--x-bits", type=int, default=1, help="input width (1: spikes)")
    ap.add_argument("--cores", default="linear_lif,conv_lif")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args(argv)
    shapes = SMALL if args.small else REFERENCE
    rows, records = [], []
    for kind in args.cores.split(","):
        shape = shapes[kind]
        for fmt in args.formats.split(","):
            res, params, seconds = synth_core(kind, shape, fmt, args.x_bits, args.out / "work" / f"{kind}_{fmt}")
            label = f"{kind} {fmt}"
            rows.append((label, res))
            records.append({"core": kind, "format": fmt, "shape": shape, "x_bits": args.x_bits,
                            "acc_bits": params["ACC_BITS"], "v_bits": params["V_BITS"],
                            "lanes": shape["P"], "synth_seconds": round(seconds, 1),
                            **res.to_dict()})
            print(f"{label}: LUT {res.lut} FF {res.ff} DSP48 {res.dsp} BRAM36 {res.bram:g} ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)
    table = yosys.markdown_table(rows, name="core", lanes=[r["shape"]["P"] for r in records])
    shapes_line = "; ".join(f"{k} {shapes[k]}" for k in args.cores.split(","))
    note = (f"Yosys synth_xilinx -family xc7, out of context; {shapes_line}; X_BITS {args.x_bits}; "
            f"BRAM36 = RAMB36 + RAMB18 / 2\n\n")
    atomic_text(args.out / "core_resources.md", note + table)
    atomic_text(args.out / "core_resources.json", json.dumps(records, indent=1) + "\n")
    print(table, end="")
    for kind in args.cores.split(","):
        by = {r["format"]: r for r in records if r["core"] == kind}
        for po2, uni in (("po2-2", "uniform-2"), ("po2-4", "uniform-4"), ("po2z-4", "uniform-4")):
            if po2 in by and uni in by:
                print(f"{kind}: {po2} DSP48 {by[po2]['dsp']}, LUT {by[po2]['lut']} vs {uni} {by[uni]['lut']}: "
                      f"{'fewer' if by[po2]['lut'] < by[uni]['lut'] else 'NOT fewer'}")
    print(f"po2_dsp_total: {sum(r['dsp'] for r in records if r['format'].startswith('po2'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
