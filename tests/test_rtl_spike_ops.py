"""The spike-op Verilog cores (ssa, maxpool, add, tokens, head) under Verilator, bit for bit against
hqflow.numerics: random inputs, several time steps, every output of every step (export/rtl/dev/spike_ops.py).

Default run: one Verilator build (every core in one model) and a few cases per core; `slow`: a second
build at other sizes (one-channel heads, one-class groups, wide ROM lines, a 1-row map) and many more
cases. Each run prints `mismatches: N`; a corrupted expected value must be caught.
"""

from __future__ import annotations

import numpy as np
import pytest

from hqflow.errors import UserError
from hqflow.export.rtl import memfiles, verilator
from hqflow.export.rtl.dev import spike_ops

pytestmark = pytest.mark.rtl


def _need_verilator() -> None:
    try:
        verilator.find_verilator()
    except UserError as exc:
        pytest.skip(f"Verilator is missing: {exc}")


def _cases(rng, shape, rounds: int) -> list[list[spike_ops.Case]]:
    """Runs (lists of cases): one with the weightless cores and the SSA, then one per head round
    (each head kind once per run: a run's folder holds one ROM file per kind)."""
    plain = []
    for _ in range(rounds):
        plain += [spike_ops.add_case(rng, shape), spike_ops.tokens_case(rng, shape),
                  spike_ops.maxpool_case(rng, shape), spike_ops.ssa_case(rng, shape, attention=True),
                  spike_ops.ssa_case(rng, shape)]
    heads = [[spike_ops.head_case(rng, shape, kind) for kind in spike_ops.HEADS] for _ in range(rounds)]
    return [plain, *heads]


def _check(exe, runs, folder, shape) -> int:
    """Run every case; assert 0 mismatches and the documented cycles of every step; returns the steps."""
    steps = 0
    for i, cases in enumerate(runs):
        result = spike_ops.run(exe, cases, folder / f"run{i}")
        print(result.output.splitlines()[-1])
        assert result.mismatches == 0 and result.returncode == 0, result.output[-2000:]
        expected = {(c, t): spike_ops.expected_cycles(case, t, shape) for c, case in enumerate(cases)
                    for t in range(len(case.steps))}
        assert result.cycles == expected
        steps += len(expected)
    return steps


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _need_verilator()
    shape = spike_ops.TbShape()
    folder = tmp_path_factory.mktemp("spike_ops")
    return shape, spike_ops.build(shape, folder / "build"), folder


def test_spike_ops_bit_exact_and_cycles(model):
    shape, exe, folder = model
    runs = _cases(np.random.default_rng(11), shape, rounds=2)
    assert _check(exe, runs, folder, shape) == sum(len(c.steps) for cases in runs for c in cases)
    cores = {case.core for cases in runs for case in cases}
    assert cores == {"add", "tokens", "maxpool", "ssa", "head_u", "head_p", "head_z", "head_f"}


@pytest.mark.parametrize("core, index", [("ssa", 5), ("maxpool", 2), ("head_z", 3), ("add", 0)])
def test_a_corrupted_expected_value_is_caught(model, core, index):
    shape, exe, folder = model
    rng = np.random.default_rng(5)
    make = {"ssa": lambda: spike_ops.ssa_case(rng, shape), "maxpool": lambda: spike_ops.maxpool_case(rng, shape),
            "head_z": lambda: spike_ops.head_case(rng, shape, "z"), "add": lambda: spike_ops.add_case(rng, shape)}
    case = make[core]()
    last = len(case.steps) - 1
    clean = spike_ops.run(exe, [case], folder / f"clean_{core}")
    assert clean.mismatches == 0
    bad = spike_ops.run(exe, [case], folder / f"bad_{core}", corrupt=(0, last, index))
    assert bad.mismatches == 1 and bad.returncode == 1
    assert "mismatches: 1" in bad.output


def test_cycle_formula_depends_on_the_sizes(model):
    """The formulas are functions of the sizes (not constants fitted to one shape): a 2x wider SSA
    costs 4 N D more cycles, and a last head step costs C G + K + 1 more than an accumulating one."""
    shape, _, _ = model
    ssa = spike_ops.ssa_case(np.random.default_rng(0), shape)
    wide = spike_ops.TbShape(SSA_D=2 * shape.SSA_D, SSA_ACC_BITS=shape.SSA_ACC_BITS + 1)
    assert (spike_ops.expected_cycles(ssa, 0, wide) - spike_ops.expected_cycles(ssa, 0, shape)
            == 4 * shape.SSA_N * shape.SSA_D)
    head = spike_ops.head_case(np.random.default_rng(0), shape, "u")
    groups = -(-shape.HEAD_K // shape.HU_P)
    assert (spike_ops.expected_cycles(head, len(head.steps) - 1, shape) - spike_ops.expected_cycles(head, 0, shape)
            == shape.HEAD_C * groups + shape.HEAD_K + 1)


def test_rom_text_matches_pack_rom():
    from hqflow import numerics
    codes = np.arange(15, dtype=np.uint64).reshape(3, 5) % 8
    text = memfiles.rom_text(codes, 3, 3)[0]      # 21 codes to a word, one line per row
    words = numerics.pack_rom(codes, 3)
    assert [int(line, 16) for line in text.split()] == [int(w) for w in words.ravel()]
    wide = memfiles.rom_text(codes.astype(np.uint64), 32, 4)[0]   # 2 codes a word, 2 words a line
    first = int(wide.split()[0], 16)
    assert [(first >> (32 * i)) & 0xFFFFFFFF for i in range(4)] == [int(c) for c in codes[0, :4]]



def test_group_text_one_lane_group_a_line():
    codes = np.arange(15, dtype=np.uint64).reshape(3, 5) % 8     # 3 rows, 5 outputs, 3-bit codes
    text, width, lines = memfiles.group_text(codes, 3, 2)         # P 2: groups (0, 1), (2, 3), (4, pad)
    assert (width, lines) == (6, 9)
    values = [int(line, 16) for line in text.split()]
    expected = [int(codes[r, 2 * g]) | (int(codes[r, 2 * g + 1]) << 3 if 2 * g + 1 < 5 else 0)
                for r in range(3) for g in range(3)]
    assert values == expected

@pytest.mark.slow
def test_spike_ops_other_sizes_many_cases(tmp_path):
    """Edge sizes: one-channel SSA heads (HD = 1), a one-row odd-width map, one input channel and one
    lane group in the heads (the forwarded read-after-write), lines of several ROM words (P > 64 / bits)."""
    _need_verilator()
    shape = spike_ops.TbShape(ADD_SIZE=33, ADD_A_BITS=3, ADD_B_BITS=2, ADD_OUT_BITS=4,
                              TOK_C=5, TOK_H=3, TOK_W=1, TOK_BITS=3, MP_C=3, MP_H=1, MP_W=7,
                              SSA_N=5, SSA_D=4, SSA_HEADS=4, SSA_ACC_BITS=4, SSA_V_BITS=12, SSA_F=4, SSA_T=2,
                              HEAD_N=2, HEAD_C=1, HEAD_K=3, HEAD_IN_BITS=3, HEAD_SUM_BITS=6,
                              HU_BITS=8, HU_ZP=128, HU_P=16, HP_BITS=2, HP_P=32, HZ_BITS=3, HZ_P=42, HF_P=4)
    exe = spike_ops.build(shape, tmp_path / "build")
    steps = _check(exe, _cases(np.random.default_rng(23), shape, rounds=6), tmp_path, shape)
    default = spike_ops.TbShape()
    exe = spike_ops.build(default, tmp_path / "build_default")
    steps += _check(exe, _cases(np.random.default_rng(29), default, rounds=12), tmp_path / "default", default)
    print(f"steps checked: {steps}")


def test_ram_infers_block_ram(tmp_path):
    """hqflow_ram (1024 x 16, registered read) maps onto one RAMB18 under Yosys synth_xilinx, no
    LUT or flip-flop around it (an asynchronous read would have needed LUT RAM and registers)."""
    from hqflow.export.rtl import yosys
    try:
        yosys.find_yosys()
    except UserError as exc:
        pytest.skip(f"Yosys is missing: {exc}")
    res = yosys.synth("hqflow_ram", [spike_ops.ROOT / "cores" / "hqflow_ram.v"], {"WIDTH": 16, "DEPTH": 1024},
                      workdir=tmp_path)
    assert (res.bram18, res.bram36, res.lut, res.ff, res.lutram) == (1, 0, 0, 0, 0)
