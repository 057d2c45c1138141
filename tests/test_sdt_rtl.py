"""The Spike-driven Transformer in Verilog: its cores (hqflow_stream_wbn.v: the weighted core with the
requantization unit; hqflow_stream_lif.v; hqflow_stream_sdsa.v; the signed add) in the streaming top,
co-simulated bit for bit on every node at every step, each core's cycles equal to its formula; and the
refusal by name of what its cores do not take (the stage-3 pool of signed values)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import GRAPH_CFG, mixed_format_model
from hqflow.errors import UserError
from hqflow.export.lower import lower
from hqflow.export.rtl.project import RtlOptions, rtlsim, write_rtl
from hqflow.ops import signed_nodes

pytestmark = pytest.mark.rtl

SDT_CFG = GRAPH_CFG.replace("model", family="sdt")


def _frames(seed: int, samples: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).poisson(0.4, (samples, SDT_CFG.data.time_steps, 2, 16, 16)).astype(np.int16)


@pytest.fixture(scope="module")
def cosim(tmp_path_factory):
    """The small SDT exported at --lanes 4 and co-simulated (the Verilator model built once)."""
    graph = lower(mixed_format_model(5, SDT_CFG), SDT_CFG)
    root = tmp_path_factory.mktemp("sdt_rtl")
    write_rtl(graph, root / "rtl", _frames(5), 2, RtlOptions(lanes=4))
    return graph, root, rtlsim(root)


def _check(graph, root, result):
    assert {"patch_embed.add", "block.0.add1", "block.0.add2"} <= signed_nodes(graph.nodes)
    top = (root / "rtl" / "hqflow_top.v").read_text()
    assert "hqflow_stream_wbn #(" in top and "hqflow_stream_sdsa #(" in top and ".A_SIGNED(1)" in top
    lines, total = result
    assert total == 0 and lines[-1] == "mismatches: 0", "\n".join(lines)
    cycles = json.loads((root / "rtl" / "cycles.json").read_text())
    assert all(item["formula_equal"] for item in cycles["nodes"].values()), cycles["nodes"]


def test_whole_model_is_bit_exact_and_every_core_keeps_its_formula(cosim):
    _check(*cosim)


@pytest.mark.slow
def test_whole_model_at_64_lanes(tmp_path):
    graph = lower(mixed_format_model(5, SDT_CFG), SDT_CFG)
    write_rtl(graph, tmp_path / "rtl", _frames(5), 2, RtlOptions(lanes=64))
    _check(graph, tmp_path, rtlsim(tmp_path))


def test_a_changed_negative_residual_value_is_found(cosim, tmp_path):
    """The testbench reads signed streams as two's complement: a golden negative value changed is named."""
    from hqflow.export.rtl import verilator
    from hqflow.export.rtl.project import build

    graph, root, _ = cosim
    exe = build(root / "rtl")  # the model built already
    rtl = tmp_path / "rtl"
    shutil.copytree(root / "rtl", rtl, ignore=shutil.ignore_patterns("obj"))
    tb = (rtl / "data" / "tb.txt").read_text().splitlines()
    row = next(k for k, line in enumerate(tb[1:]) if line.split()[0] == "block.0.add1")
    assert int(tb[1 + row].split()[3]) < 0  # signed: its bits negative
    sizes = [int(line.split()[2]) for line in tb[1:]]
    steps = graph.time_steps
    trace = (rtl / "data" / "trace.txt").read_text().split()
    first = sum(sizes[:row]) * steps
    at = first + next(k for k in range(sizes[row] * steps) if int(trace[first + k]) < 0)
    trace[at] = str(int(trace[at]) - 1)
    (rtl / "data" / "trace.txt").write_text(" ".join(trace) + "\n")
    out = verilator.run(exe, ["2", "0", "1"], rtl).stdout
    assert "mismatch block.0.add1 sample 0" in out and "mismatches: 1" in out, out[-2000:]


def test_the_signed_pool_is_refused_by_name(tmp_path):
    cfg = SDT_CFG.replace("model", pools=(True, False, False, True))
    graph = lower(mixed_format_model(6, cfg), cfg)
    with pytest.raises(UserError, match=r"node 'patch_embed.pool3' \(op maxpool\): the Verilog pool takes spikes, "
                       r"not \d+-bit values \(the HLS export pools them\); export it with --target hls"):
        write_rtl(graph, tmp_path / "rtl", _frames(6, 1), 1, RtlOptions(lanes=8))
