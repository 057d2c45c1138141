"""One schedule, two renderers: the streaming RTL top and the HLS dataflow both read the schedule of
export/rtl/stream.py (plan_stream), so a change of one layer's folding there changes both outputs, and
only that layer's part of them."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from hqflow.config import load_config
from hqflow.export.hls import HlsOptions
from hqflow.export.hls.writer import render_firmware
from hqflow.export.lower import lower
from hqflow.export.rtl import stream, stream_project
from hqflow.export.rtl.project import _env
from hqflow.search import supernet

from conftest import CONFIGS


@pytest.fixture(scope="module")
def graph():
    cfg = load_config(CONFIGS / "tiny.yaml").replace("model", num_classes=10)
    with torch.no_grad():
        return lower(supernet.random_quantized_model(cfg.model, seed=4), cfg)


def _refold(schedule, node: str, lanes: int):
    """The schedule with `node`'s core folded to `lanes` output channels a cycle (its LIF lanes alike)."""
    cores = tuple(dataclasses.replace(core, lanes=lanes, params={**core.params, "P": lanes, "LIF_LANES": lanes})
                  if core.node == node else core for core in schedule.cores)
    return dataclasses.replace(schedule, cores=cores)


def _renderings(graph, schedule, folder) -> tuple[str, str]:
    """(the Verilog top, the HLS parameters.h) of one schedule."""
    render_firmware(graph, folder, HlsOptions(), schedule)
    return stream_project.render_top(schedule, _env()), (folder / "firmware" / "parameters.h").read_text()


def test_a_folding_change_in_the_schedule_reaches_both_backends(graph, tmp_path):
    schedule = stream.plan_stream(graph, 64, files=False)
    core = next(c for c in schedule.cores if c.op == "linear_lif" and c.lanes > 1)
    ident = core.node.replace(".", "_")
    verilog, params = _renderings(graph, schedule, tmp_path / "a")
    verilog2, params2 = _renderings(graph, _refold(schedule, core.node, core.lanes // 2), tmp_path / "b")

    def hls_lanes(text: str) -> dict[str, int]:
        return {name: int(value) for name, value in
                re.findall(r"struct (\w+)_config : hqflow::wlif_config \{.*?lanes = (\d+);", text, re.S)}

    def rtl_lanes(text: str) -> dict[str, int]:  # each core's comment line "// k: node (op, P n; ...)"
        return {node.replace(".", "_"): int(p) for node, p in re.findall(r"// \d+: (\S+) \(\w+, P (\d+);", text)}

    before, after = hls_lanes(params), hls_lanes(params2)
    assert before[ident] == core.lanes and after[ident] == core.lanes // 2
    assert {k: v for k, v in before.items() if k != ident} == {k: v for k, v in after.items() if k != ident}
    assert verilog != verilog2
    rtl_before, rtl_after = rtl_lanes(verilog), rtl_lanes(verilog2)
    assert rtl_before[ident] == core.lanes and rtl_after[ident] == core.lanes // 2
    assert {k: v for k, v in rtl_before.items() if k != ident} == {k: v for k, v in rtl_after.items() if k != ident}
    # the Verilog core's parameter too, and nothing but that core's lines changed
    changed = set(verilog.splitlines()) ^ set(verilog2.splitlines())
    assert f"        .P({core.lanes // 2})," in changed and all(
        re.search(r"\.(P|LIF_LANES)\(\d+\)|// \d+: " + re.escape(core.node), line) for line in changed), changed
