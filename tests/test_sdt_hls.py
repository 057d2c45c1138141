"""The Spike-driven Transformer in HLS C++: its kernels (wbn, lif_stream, sdsa, the signed add and pool) in
the one schedule, bit for bit against the simulator in both arithmetic builds, and the static check of its
firmware. Its Verilog: tests/test_sdt_rtl.py."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from conftest import GRAPH_CFG, mixed_format_model
from hqflow.export import csim
from hqflow.export.hls import write_project
from hqflow.export.hls.static_check import check_firmware
from hqflow.export.lower import lower
from hqflow.ops import signed_nodes

pytestmark = pytest.mark.csim

SDT_CFG = GRAPH_CFG.replace("model", family="sdt")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    graph = lower(mixed_format_model(5, SDT_CFG), SDT_CFG)
    frames = np.random.default_rng(5).poisson(0.4, (4, SDT_CFG.data.time_steps, 2, 16, 16)).astype(np.int16)
    root = tmp_path_factory.mktemp("sdt") / "exp"
    write_project(graph, root / "hls", frames, np.arange(4) % 10, trace_samples=2)
    return graph, root


def _csim(hls, *args):
    return subprocess.run(["make", "--no-print-directory", "-C", str(hls), "csim", *args,
                           f"AP_TYPES={csim.ap_types_dir()}", f"CXX={csim.compiler()}"], capture_output=True, text=True)


@pytest.mark.parametrize("arithmetic", [(), ("AP_ARITHMETIC=1",)], ids=["model64", "ap_arithmetic"])
def test_whole_model_is_bit_exact(project, arithmetic):
    graph, root = project
    assert (root / "hls" / "firmware" / "sdt_top.cpp").is_file()  # the project is named after the family
    result = _csim(root / "hls", *arithmetic)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning" not in result.stderr, result.stderr[-3000:]
    values = sum(int(np.prod(n.shape)) for n in graph.nodes if n.op != "head")
    assert f"trace values compared: {2 * graph.time_steps * values}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 0"


def test_a_changed_negative_residual_value_is_found(project, tmp_path):
    """The signed streams are read back as two's complement: a golden negative value changed by one is named."""
    graph, root = project
    assert _csim(root / "hls").returncode == 0
    index = next(i for i, n in enumerate(graph.nodes) if n.name == "block.0.add1")
    assert "block.0.add1" in signed_nodes(graph.nodes)
    data = tmp_path / "data"
    shutil.copytree(root / "hls" / "tb" / "data", data)
    trace = data / "golden_trace.txt"
    lines = trace.read_text().splitlines()
    row = next(k for k, line in enumerate(lines) if line.split()[2] == str(index) and
               any(int(v) < 0 for v in line.split()[4:]))
    fields = lines[row].split()
    at = next(k for k, v in enumerate(fields[4:]) if int(v) < 0)
    fields[4 + at] = str(int(fields[4 + at]) - 1)
    lines[row] = " ".join(fields)
    trace.write_text("\n".join(lines) + "\n")
    bad = subprocess.run([str(root / "hls" / "build" / "sdt_csim"), str(data)], capture_output=True, text=True)
    assert f"first mismatch: node block.0.add1, step {fields[1]}, sample {fields[0]}, index {at}" in bad.stdout, bad.stdout
    assert bad.stdout.strip().splitlines()[-1] == "mismatches: 1"


def test_firmware_passes_the_static_check(project):
    report = check_firmware(project[1])
    assert report.ok, report.summary()


def test_the_stage_3_pool_of_signed_values_is_bit_exact(tmp_path):
    """pools[3]: the max pool of BN outputs (two's complement, a max per value; the padding takes no part)."""
    cfg = SDT_CFG.replace("model", pools=(True, False, False, True))
    graph = lower(mixed_format_model(6, cfg), cfg)
    assert "patch_embed.pool3" in signed_nodes(graph.nodes)
    frames = np.random.default_rng(6).poisson(0.4, (2, cfg.data.time_steps, 2, 16, 16)).astype(np.int16)
    write_project(graph, tmp_path / "hls", frames, np.zeros(2, np.int64), trace_samples=2)
    result = _csim(tmp_path / "hls")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 0"
