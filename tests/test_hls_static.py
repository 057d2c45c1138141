"""The static check of the HLS firmware (hqflow.export.hls.static_check): what can be checked without an
HLS tool. A random tiny export passes in every variant (C simulation, its ap_int arithmetic, synthesis);
its trace hook exists only in the C simulation; and a recursive function, a malloc, a printf, a new[]
and a variable-length array appended to a copy of its top function are each caught. The paper
config's export is checked under `slow`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hqflow.config import load_config
from hqflow.export.hls import write_project
from hqflow.export.hls import memory
from hqflow.export.hls.static_check import MAKEFILE_FLAGS, check_firmware
from hqflow.export.lower import lower
from hqflow.search import supernet

from conftest import CONFIGS

pytestmark = pytest.mark.csim


def _export(root: Path, config: str, seed: int) -> Path:
    """A random model of `config` (10 classes), exported with one sample of test vectors."""
    cfg = load_config(CONFIGS / config).replace("model", num_classes=10)
    with torch.no_grad():
        graph = lower(supernet.random_quantized_model(cfg.model, seed=seed), cfg)
    t, res = cfg.data.time_steps, cfg.model.img_size
    frames = np.random.default_rng(seed).poisson(0.2, (1, t, 2, res, res)).astype(np.int16)
    write_project(graph, root / "hls", frames, np.zeros(1, np.int64), trace_samples=1)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("static") / "exp", "tiny.yaml", seed=3)


def test_tiny_export_passes(tiny):
    report = check_firmware(tiny)
    assert report.ok, report.summary()
    makefile = (tiny / "hls" / "Makefile").read_text()
    assert all(flag in makefile for flag in MAKEFILE_FLAGS)  # the check compiles as the project does
    for variant in report.variants:
        assert variant.compiled and variant.calls and variant.arrays, variant.variant
        assert not [c for c in variant.cycles if any("hqflow" in name for name in c)]
    # the trace hook: present (and its heap use attributed to it) in the C simulation, absent under synthesis
    csim = report.variant("csim")
    assert csim.trace_functions and ("operator new(unsigned long)", "trace hook (C simulation only)") in csim.undefined
    synthesis = report.variant("synthesis")
    assert synthesis.trace_functions == ()
    assert {how for _, how in synthesis.undefined} <= {"allowed", "static-object runtime", "stream channel",
                                                        "iostream initializer of ap_types", "inside ap_types"}
    assert ("hls::stream<ap_uint<4> >::read()", "stream channel") in synthesis.undefined  # the processes' reads
    assert synthesis.includes == ("ap_int.h", "hls_stream.h")
    # the dataflow region: every process of the schedule, every stream one producer and one consumer
    assert report.dataflow.violations == () and len(report.dataflow.processes) >= 15
    entries = report.memory["entries"]  # (a random model with fp32 layers: its ROMs need not fit the part)
    assert {e["kind"] for e in entries} == {"rom", "ram", "fifo"} and report.memory["total"]["bram36"] > 0
    assert report.memory["total"]["bram18"] == sum(e["bram18"] for e in entries)
    for e in entries:
        assert e["bram18"] == (memory.bram18(e["width"], e["depth"]) if e["where"] == "bram" else 0), e
    assert "dataflow: " in report.summary() and "memory account (" in report.summary()


def _edited(tiny: Path, tmp_path: Path, edit) -> Path:
    copy = Path(shutil.copytree(tiny, tmp_path / "edited"))
    top = next((copy / "hls" / "firmware").glob("*_top.cpp"))
    text = top.read_text()
    top.write_text(edit(text))
    assert top.read_text() != text  # the edit applied
    return copy


def _twice(text: str) -> str:
    """The first max pooling called twice: its input and output streams get two consumers and producers."""
    call = re.search(r"\n    hqflow::maxpool_or<\w+>\(\w+, \w+\);", text).group(0)
    return text.replace(call, call + call, 1)


DATAFLOW_NEGATIVE = {  # an edit of the top function's file: the violations it must raise
    "static state": (lambda t: t.replace("    using namespace", "    static int neg_count = 0;\n    neg_count++;\n"
                                         "    using namespace", 1), ["static state", "not a stream, a pragma or a "
                                                                     "process call in the dataflow region: static"]),
    "two consumers": (_twice, ["1 producers and 2 consumers", "2 producers and 1 consumers"]),
    "conditional process": (lambda t: re.sub(r"(\n    )(hqflow::head<[^;]*;)", r"\1if (!in.empty()) { \2 }", t),
                            ["not a stream, a pragma or a process call in the dataflow region: if"]),
    "no dataflow": (lambda t: t.replace("HQFLOW_PRAGMA(HLS DATAFLOW)", ""), ["no #pragma HLS DATAFLOW"]),
}


@pytest.mark.parametrize("case", DATAFLOW_NEGATIVE)
def test_dataflow_violations_are_caught(tiny, tmp_path, case):
    edit, expected = DATAFLOW_NEGATIVE[case]
    report = check_firmware(_edited(tiny, tmp_path, edit), variants=("synthesis",))
    for text in expected:
        assert any(text in line for line in report.violations), f"{case}: {report.summary()}"


def test_memory_account_must_match_the_streams(tiny, tmp_path):
    """memory.json's FIFOs are checked against the top's stream declarations and depths."""
    import json

    copy = Path(shutil.copytree(tiny, tmp_path / "account"))
    account = copy / "hls" / "memory.json"
    doc = json.loads(account.read_text())
    fifo = next(e for e in doc["entries"] if e["kind"] == "fifo")
    fifo["depth"] += 1
    account.write_text(json.dumps(doc))
    report = check_firmware(copy, variants=("synthesis",))
    assert any("memory account: its streams differ" in line and fifo["name"] in line for line in report.violations)


NEGATIVE = {  # appended to the generated top function's file: (code, the violation it must raise)
    "recursion": ("int neg_rec(int n) { return n > 0 ? neg_rec(n - 1) + 1 : 0; }\n", "recursion: neg_rec"),
    "static recursion": ("static int neg_fact(int n) { return n > 1 ? n * neg_fact(n - 1) : 1; }\n"
                         "int neg_use(int n) { return neg_fact(n); }\n", "recursion: neg_fact"),
    "malloc": ("#include <cstdlib>\nvoid *neg_malloc(int n) { return std::malloc(n); }\n", "heap: malloc"),
    "new": ("int *neg_new(int n) { return new int[n]; }\n", "heap: operator new[]"),
    "printf": ("#include <cstdio>\nvoid neg_printf(int x) { std::printf(\"%d\\n\", x); }\n", "io: printf"),
}
VLA = "int neg_vla(int n) { int a[n]; for (int i = 0; i < n; i++) a[i] = i; return a[n - 1]; }\n"


def _broken(tiny: Path, tmp_path: Path, code: str) -> Path:
    copy = Path(shutil.copytree(tiny, tmp_path / "exp"))
    top = next((copy / "hls" / "firmware").glob("*_top.cpp"))
    top.write_text(top.read_text() + "\n" + code)
    return copy


def test_violations_are_caught(tiny, tmp_path):
    """Each control, appended together (one compile), raises its own violation; the source scan sees new/malloc."""
    report = check_firmware(_broken(tiny, tmp_path, "".join(code for code, _ in NEGATIVE.values())),
                            variants=("synthesis",))
    for case, (_, expected) in NEGATIVE.items():
        assert any(expected in line for line in report.violations), f"{case}: {report.summary()}"
    scanned = [line for line in report.violations if "in the firmware source" in line]
    assert any("malloc" in line for line in scanned) and any("new int" in line for line in scanned)


def test_variable_length_array_is_caught(tiny, tmp_path):
    report = check_firmware(_broken(tiny, tmp_path, VLA), variants=("synthesis",))
    assert not report.ok and not report.variant("synthesis").compiled
    assert any("does not compile" in line and "variable length" in line for line in report.violations), \
        report.summary()


@pytest.mark.slow
def test_paper_export_passes(tmp_path):
    """The paper's model (128x128, D 256, depth 2, T 16), random weights: every variant passes."""
    report = check_firmware(_export(tmp_path / "paper", "paper.yaml", seed=1))
    assert report.ok, report.summary()
    assert report.variant("synthesis").trace_functions == ()
