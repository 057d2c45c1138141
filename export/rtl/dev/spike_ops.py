"""The spike-op cores (ssa, maxpool, add, tokens, head) under Verilator, checked against hqflow.numerics.

One Verilator model (rtl_templates/tb/spike_ops_tb.v + spike_ops_tb.cpp) holds one instance of each
core (four heads: uniform, po2, po2z, fp32 weights) at the sizes of `TbShape`; random cases run in
it, several time steps each, and every output of every step is compared bit for bit with the
expected values computed here from hqflow.numerics (maxpool_or, ssa_int + lif_run, linear_acc +
head_logits) and the simulator's own add / tokens (hqflow.ops.OPS[...].execute).

    shape = TbShape(); exe = build(shape, workdir)
    cases = [add_case(rng, shape), ...];  result = run(exe, cases, workdir / "run")
    result.mismatches, result.cycles[(case, step)]
Head cases carry their ROM and bias files (the top reads head_<u|p|z|f>_weights.mem and
head_<u|p|z|f>_bias.mem from the run folder), so one run holds at most one case of each head kind.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from hqflow import numerics
from hqflow.export.rtl import memfiles, top, verilator
from hqflow.export.rtl.paths import TEMPLATES
from hqflow.io import atomic_text
from hqflow.ops import OPS

__all__ = ["HEADS", "Case", "Result", "TbShape", "add_case", "build", "expected_cycles", "head_case",
           "maxpool_case", "run", "ssa_case", "tokens_case"]

ROOT = TEMPLATES
SOURCES = ("hqflow_ram.v", "hqflow_add.v", "hqflow_tokens.v", "hqflow_maxpool.v", "hqflow_lif.v", "hqflow_ssa.v",
           "hqflow_lanes.v", "hqflow_weight_rom.v", "hqflow_head.v")
SEL = {"add": 0, "tokens": 1, "maxpool": 2, "ssa": 3, "head_u": 4, "head_p": 5, "head_z": 6, "head_f": 7}
# the head instances of the top: kind -> weight scheme
HEADS = {"u": "uniform", "p": "po2", "z": "po2z", "f": "fp32"}


@dataclasses.dataclass(frozen=True)
class TbShape:
    """The sizes of the test top (its -G parameters, spike_ops_tb.v's names)."""

    ADD_SIZE: int = 12
    ADD_A_BITS: int = 1
    ADD_B_BITS: int = 3
    ADD_OUT_BITS: int = 4
    TOK_C: int = 3
    TOK_H: int = 2
    TOK_W: int = 3
    TOK_BITS: int = 2
    MP_C: int = 2
    MP_H: int = 5
    MP_W: int = 6
    SSA_N: int = 6
    SSA_D: int = 8
    SSA_HEADS: int = 2
    SSA_ACC_BITS: int = 6
    SSA_V_BITS: int = 16
    SSA_F: int = 3
    SSA_T: int = 3
    HEAD_N: int = 3
    HEAD_C: int = 10
    HEAD_K: int = 5
    HEAD_IN_BITS: int = 2
    HEAD_SUM_BITS: int = 6
    HEAD_ACC_BITS: int = 44
    HEAD_LOGIT_BITS: int = 48
    HEAD_BF: int = 3
    HU_BITS: int = 4
    HU_ZP: int = 7
    HU_P: int = 4
    HP_BITS: int = 4
    HP_P: int = 4
    HZ_BITS: int = 3
    HZ_P: int = 3
    HF_P: int = 2

    def params(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Case:
    """One core, several steps. steps: (first, last, a, b, c, expected) per step (1-D int arrays);
    files: name -> text written into the run folder (head ROMs); out_bits: the compared width."""

    core: str
    out_bits: int
    steps: tuple
    lif: tuple[int, int, int] = (0, 0, 0)   # ssa: bias_int, thr_int, sign
    files: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    mismatches: int
    cycles: dict        # (case, step) -> cycles
    output: str
    returncode: int


def build(shape: TbShape, workdir: Path, defines: dict | None = None) -> Path:
    """The Verilator model of the test top at `shape`; returns the executable."""
    sources = [ROOT / "cores" / name for name in SOURCES] + [ROOT / "tb" / "spike_ops_tb.v"]
    return verilator.build("spike_ops_tb", sources, ROOT / "tb" / "spike_ops_tb.cpp", workdir,
                           parameters=shape.params(), defines=defines)


def _ints(values) -> str:
    values = np.asarray(values, np.int64).ravel()
    return f"{len(values)} " + " ".join(str(int(v)) for v in values)


def run(executable: Path, cases: list[Case], folder: Path, corrupt: tuple[int, int, int] | None = None) -> Result:
    """Write the cases (and their files) into `folder`, run the model there, parse its report.
    corrupt (case, step, index): add 1 to that expected value first (a negative control)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [str(len(cases))]
    for i, case in enumerate(cases):
        for name, text in case.files:
            atomic_text(folder / name, text)
        bias, thr, sign = case.lif
        lines.append(f"{SEL[case.core]} {len(case.steps)} {case.out_bits} {bias} {thr} {sign}")
        for t, (first, last, a, b, c, expected) in enumerate(case.steps):
            expected = np.array(expected, np.int64)
            if corrupt is not None and corrupt[:2] == (i, t):
                expected.ravel()[corrupt[2]] ^= 1
            lines.append(f"{int(first)} {int(last)}\n{_ints(a)}\n{_ints(b)}\n{_ints(c)}\n{_ints(expected)}")
    atomic_text(folder / "cases.txt", "\n".join(lines) + "\n")
    proc = verilator.run(executable, ["cases.txt"], folder, timeout=600)
    text = proc.stdout + proc.stderr
    found = re.findall(r"^mismatches: (\d+)$", text, re.M)
    cycles = {(int(c), int(s)): int(n) for c, s, n in re.findall(r"^case (\d+) step (\d+) cycles (\d+)", text, re.M)}
    return Result(int(found[-1]) if found else -1, cycles, text, proc.returncode)


# ---- cases: random inputs, expected outputs from hqflow.numerics ------------------------------------


def add_case(rng: np.random.Generator, shape: TbShape, steps: int = 3) -> Case:
    """Residual add of counts: a < 2^A_BITS, b < 2^B_BITS (the simulator's add)."""
    out = []
    for t in range(steps):
        a = rng.integers(0, 2**shape.ADD_A_BITS, shape.ADD_SIZE)
        b = rng.integers(0, 2**shape.ADD_B_BITS, shape.ADD_SIZE)
        out.append((t == 0, t == steps - 1, a, b, [], OPS["add"].execute(None, None, a, b)))
    return Case("add", shape.ADD_OUT_BITS, tuple(out))


def tokens_case(rng: np.random.Generator, shape: TbShape, steps: int = 2) -> Case:
    """[C][H][W] -> [H*W][C] (the simulator's tokens, on a [T=1, B=1, C, H, W] value)."""
    out = []
    for t in range(steps):
        x = rng.integers(0, 2**shape.TOK_BITS, (shape.TOK_C, shape.TOK_H, shape.TOK_W))
        y = OPS["tokens"].execute(None, None, x[None, None])[0, 0]
        out.append((t == 0, t == steps - 1, x, [], [], y))
    return Case("tokens", shape.TOK_BITS, tuple(out))


def maxpool_case(rng: np.random.Generator, shape: TbShape, steps: int = 3) -> Case:
    """numerics.maxpool_or of random spikes (densities from sparse to dense), channels last in and out
    (the core's layout: [H][W][C])."""
    out = []
    for t in range(steps):
        density = rng.uniform(0.02, 0.6)
        x = (rng.random((shape.MP_C, shape.MP_H, shape.MP_W)) < density).astype(np.uint8)
        out.append((t == 0, t == steps - 1, np.ascontiguousarray(x.transpose(1, 2, 0)), [], [],
                    np.ascontiguousarray(numerics.maxpool_or(x).transpose(1, 2, 0))))
    return Case("maxpool", 1, tuple(out))


def ssa_case(rng: np.random.Generator, shape: TbShape, attention: bool = False) -> Case:
    """ssa_int then lif_run over SSA_T steps. attention: the node's own LIF (fold_lif(1, 0,
    attn_scale, 0.5, 0, T)); else a random bias, threshold and sign (+1, -1, 0) that fit SSA_V_BITS."""
    n, d, steps, frac = shape.SSA_N, shape.SSA_D, shape.SSA_T, shape.SSA_F
    bound = numerics.ssa_bound(n, d // shape.SSA_HEADS)
    assert numerics.bits_for(0, bound) <= shape.SSA_ACC_BITS
    while True:
        if attention:
            consts = numerics.fold_lif(1, 0, float(rng.choice([0.25, 0.125])), 0.5, frac - steps, steps)
        else:
            sign = int(rng.choice([1, 1, -1, 0]))
            scale = (bound << frac) // 2
            consts = numerics.LifConsts(np.array([rng.integers(-bound // 2, bound // 2 + 1)]),
                                        np.array([rng.integers(0, scale + 2)]), np.array([sign], np.int8),
                                        frac, frac - steps)
        if numerics.membrane_bits(0, bound, consts) <= shape.SSA_V_BITS:
            break
    density = rng.uniform(0.1, 0.7, 3)
    q, k, v = ((rng.random((steps, n, d)) < p).astype(np.uint8) for p in density)
    y = numerics.ssa_int(q, k, v, shape.SSA_HEADS)
    spikes = numerics.lif_run(y, consts, channel_axis=-1)
    out = tuple((t == 0, t == steps - 1, q[t], k[t], v[t], spikes[t]) for t in range(steps))
    return Case("ssa", 1, out, (int(consts.bias_int[0]), int(consts.thr_int[0]), int(consts.sign[0])))


def _random_codes(rng: np.random.Generator, fmt: numerics.Candidate, shape: tuple[int, int]) -> np.ndarray:
    if fmt.scheme == "fp32":  # 32-bit two's complement weights, of every magnitude
        w_eff = rng.integers(-(2**31), 2**31, shape) >> rng.integers(0, 31, shape)
        return numerics.rom_encode(fmt, w_eff)
    return rng.integers(0, 2 ** numerics.rom_code_bits(fmt), shape).astype(np.uint64)


def head_case(rng: np.random.Generator, shape: TbShape, kind: str, steps: int = 3) -> Case:
    """The head over `steps` steps: x [N][C] < 2^IN_BITS, random codes of the kind's format
    (every code, the po2z zero included), a random bias; logits = head_logits(linear_acc(sum_{t,n} x))."""
    bits = {"u": shape.HU_BITS, "p": shape.HP_BITS, "z": shape.HZ_BITS, "f": 32}[kind]
    parallel = {"u": shape.HU_P, "p": shape.HP_P, "z": shape.HZ_P, "f": shape.HF_P}[kind]
    fmt = numerics.Candidate.parse("fp32" if kind == "f" else f"{HEADS[kind]}-{bits}")
    zero_point = shape.HU_ZP if kind == "u" else 0
    n, c, classes, bf = shape.HEAD_N, shape.HEAD_C, shape.HEAD_K, shape.HEAD_BF
    codes = _random_codes(rng, fmt, (c, classes))              # rows = input channels
    w_eff = numerics.rom_decode(fmt, codes, zero_point).T      # [classes, channels]
    x = rng.integers(0, 2**shape.HEAD_IN_BITS, (steps, n, c))
    x_max = (2**shape.HEAD_IN_BITS - 1) * n * steps
    assert x_max < 2**shape.HEAD_SUM_BITS
    assert numerics.bits_for(0, numerics.acc_bound(x_max, w_eff)) <= shape.HEAD_ACC_BITS
    bias_int = rng.integers(-(2**20), 2**20, classes)
    logits = numerics.head_logits(numerics.linear_acc(x.sum(axis=(0, 1)), w_eff), bias_int, bf)
    assert numerics.bits_for(int(logits.min()), int(logits.max())) <= shape.HEAD_LOGIT_BITS
    width = shape.HEAD_LOGIT_BITS
    files = ((f"head_{kind}_weights.mem", memfiles.rom_text(codes, bits, parallel, f"head {kind}")[0]),
             (f"head_{kind}_bias.mem", memfiles.hex_lines([int(b) % (1 << width) for b in bias_int], width)))
    out = tuple((t == 0, t == steps - 1, x[t], [], [], logits if t == steps - 1 else []) for t in range(steps))
    return Case(f"head_{kind}", width, out, files=files)


def expected_cycles(case: Case, step: int, shape: TbShape) -> int:
    """The cycles per step each core's header documents (top.core_cycles, at the test top's sizes)."""
    s = shape
    params = {"add": {"SIZE": s.ADD_SIZE},
              "tokens": {"C": s.TOK_C, "H": s.TOK_H, "W": s.TOK_W},
              "maxpool": {"C": s.MP_C, "H": s.MP_H, "W": s.MP_W},
              "ssa": {"N": s.SSA_N, "D": s.SSA_D, "HEADS": s.SSA_HEADS}}
    if case.core in params:
        return top.core_cycles(case.core, params[case.core], 0, False)
    lanes = {"head_u": s.HU_P, "head_p": s.HP_P, "head_z": s.HZ_P, "head_f": s.HF_P}[case.core]
    head = {"N": s.HEAD_N, "C": s.HEAD_C, "CLASSES": s.HEAD_K, "P": lanes}
    return top.core_cycles("head", head, 0, bool(case.steps[step][1]))
