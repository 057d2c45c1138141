"""The static check of the HLS firmware (hqflow.export.hls.static_check): what can be checked without an
HLS tool. A random tiny export passes in every variant (C simulation, its ap_int arithmetic, synthesis);
its trace hook exists only in the C simulation; and a recursive function, a malloc, a printf, a new[]
and a variable-length array appended to a copy of its top function are each caught. The paper
config's export is checked under `slow`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hqflow.config import load_config
from hqflow.export.hls import write_project
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
    assert {how for _, how in synthesis.undefined} <= {"allowed", "static-object runtime",
                                                        "iostream initializer of ap_types", "inside ap_types"}
    assert synthesis.includes == ("ap_int.h",)


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
