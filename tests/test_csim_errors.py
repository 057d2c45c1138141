"""`hqflow csim` on broken projects: one line "error: <file>: ... expected ...", exit status 2.

One tiny project (3 samples, 2 traced) is exported and compiled once; each row copies it (the
binary stays up to date, so nothing recompiles), breaks one thing, and runs the CLI as a user
would. Never a traceback, a crash, a hang or a verdict line: the testbench checks every vector
file against the sizes the project was generated with, and the CLI names a missing piece of the
project before anything compiles. The intact copy is the control (exit 0, "mismatches: 0"), and
a changed golden value still counts as a mismatch (exit 1), not as an error.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hqflow.config import load_config
from hqflow.export import csim
from hqflow.export.hls import write_project
from hqflow.export.lower import lower
from hqflow.search import supernet

from conftest import CONFIGS

pytestmark = pytest.mark.csim

HQFLOW = Path(sys.executable).parent / "hqflow"
SAMPLES, TRACED = 3, 2


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> tuple[Path, dict]:
    """An export folder (graph.json and hls/) with a compiled testbench; and its sizes."""
    cfg = load_config(CONFIGS / "tiny.yaml")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=10))
    with torch.no_grad():
        graph = lower(supernet.random_quantized_model(cfg.model), cfg)
    t, res = cfg.data.time_steps, cfg.model.img_size
    frames = np.random.default_rng(0).poisson(0.3, (SAMPLES, t, 2, res, res)).astype(np.int16)
    root = tmp_path_factory.mktemp("csim_errors") / "exp"
    graph.save(root)
    write_project(graph, root / "hls", frames, np.arange(SAMPLES) % 10, trace_samples=TRACED)
    build = subprocess.run(["make", "--no-print-directory", "-C", str(root / "hls"), "build/spikformer_csim",
                            f"CXX={csim.compiler()}", f"AP_TYPES={csim.ap_types_dir()}", "CXXFLAGS=-std=c++17 -O1"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    sizes = {"T": t, "inputs": t * 2 * res * res, "classes": 10, "nodes": len(graph.nodes) - 1}
    return root, sizes


def _copy(export: Path, tmp_path: Path) -> Path:
    """The export with its compiled binary (modification times kept: make sees it up to date)."""
    return Path(shutil.copytree(export, tmp_path / "exp", copy_function=shutil.copy2))


def _cli(target: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(HQFLOW), "csim", str(target)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _data(exp: Path, name: str) -> Path:
    return exp / "hls" / "tb" / "data" / name


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in edit(lines)))


def _edit_field(path: Path, line: int, field: int, value: str) -> None:
    def edit(lines):
        fields = lines[line].split()
        fields[field] = value
        lines[line] = " ".join(fields)
        return lines
    _edit_lines(path, edit)


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


# (id, break the export copy `exp` (its folder given), the argument to pass, what the error line must hold)
CASES = [
    # the folder itself
    ("no-such-folder", lambda e: None, "missing", ["missing: no such folder", "hqflow export RUN --target hls"]),
    ("a-file", lambda e: (e / "file").write_text("x"), "file", ["file: not a folder"]),
    ("empty-folder", lambda e: (e / "empty").mkdir(), "empty", ["empty: no HLS project there"]),
    ("numpy-export", lambda e: _remove(e / "exp" / "hls"), "exp", ["exp: an export without an HLS project",
                                                                    "--target numpy"]),
    ("no-makefile", lambda e: _remove(e / "exp" / "hls" / "Makefile"), "exp",
     ["hls: incomplete HLS project (Makefile missing)"]),
    ("no-testbench-source", lambda e: _remove(e / "exp" / "hls" / "tb" / "spikformer_tb.cpp"), "exp",
     ["tb: 0 testbench sources (*_tb.cpp), expected one"]),
    ("no-kernels", lambda e: _remove(e / "exp" / "hls" / "firmware" / "kernels"), "exp",
     ["firmware/kernels/hqflow.h: missing"]),
    ("no-testbench-header", lambda e: _remove(e / "exp" / "hls" / "tb" / "hqflow_testbench.h"), "exp",
     ["tb/hqflow_testbench.h: missing"]),
    ("no-data-folder", lambda e: _remove(e / "exp" / "hls" / "tb" / "data"), "exp",
     ["data/inputs.txt: testbench vectors missing"]),
    ("no-trace", lambda e: _remove(_data(e / "exp", "golden_trace.txt")), "exp",
     ["data/golden_trace.txt: testbench vectors missing"]),
    ("labels-a-folder", lambda e: (_remove(_data(e / "exp", "labels.txt")), _data(e / "exp", "labels.txt").mkdir()),
     "exp", ["data/labels.txt: testbench vectors missing"]),
    ("firmware-edited", lambda e: _data(e / "exp", "../../firmware/parameters.h").write_text("#error broken\n"),
     "exp", ["the C++ build failed", "parameters.h"]),
    # the vectors: empty, truncated, too long, not numbers, not the project's sizes
    ("inputs-empty", lambda e: _data(e / "exp", "inputs.txt").write_text(""), "exp",
     ["data/inputs.txt: 0 lines, expected 3 (one per test sample"]),
    ("labels-empty", lambda e: _data(e / "exp", "labels.txt").write_text(""), "exp",
     ["data/labels.txt: 0 lines, expected 3"]),
    ("logits-empty", lambda e: _data(e / "exp", "golden_logits.txt").write_text(""), "exp",
     ["data/golden_logits.txt: 0 lines, expected 3"]),
    ("trace-empty", lambda e: _data(e / "exp", "golden_trace.txt").write_text(""), "exp",
     ["data/golden_trace.txt: 0 lines, expected {trace_lines} (2 traced samples x {T} steps x {nodes} nodes)"]),
    ("inputs-last-line-lost", lambda e: _edit_lines(_data(e / "exp", "inputs.txt"), lambda ls: ls[:-1]), "exp",
     ["data/inputs.txt: 2 lines, expected 3"]),
    ("inputs-cut-mid-line", lambda e: _data(e / "exp", "inputs.txt").write_text(
        _data(e / "exp", "inputs.txt").read_text()[:-301]), "exp",
     ["data/inputs.txt, line 3: ", " values, expected {inputs} (the input frames of one sample"]),
    ("logits-cut-mid-line", lambda e: _edit_lines(_data(e / "exp", "golden_logits.txt"),
                                                  lambda ls: ls[:-1] + [" ".join(ls[-1].split()[:4])]), "exp",
     ["data/golden_logits.txt, line 3: 4 values, expected 10 (the integer logits of one sample)"]),
    ("inputs-extra-line", lambda e: _edit_lines(_data(e / "exp", "inputs.txt"), lambda ls: ls + ls[:1]), "exp",
     ["data/inputs.txt: more than 4 lines, expected 3"]),
    ("inputs-extra-value", lambda e: _edit_lines(_data(e / "exp", "inputs.txt"), lambda ls: [ls[0] + " 0"] + ls[1:]),
     "exp", ["data/inputs.txt, line 1: {inputs_plus_1} values, expected {inputs}"]),
    ("inputs-blank-line", lambda e: _edit_lines(_data(e / "exp", "inputs.txt"), lambda ls: ls[:1] + [""] + ls[1:]),
     "exp", ["data/inputs.txt, line 2: 0 values, expected {inputs}"]),
    ("inputs-word", lambda e: _edit_field(_data(e / "exp", "inputs.txt"), 1, 5, "abc"), "exp",
     ['data/inputs.txt, line 2: "abc" is not an integer']),
    ("logits-float", lambda e: _edit_field(_data(e / "exp", "golden_logits.txt"), 0, 2, "1.5"), "exp",
     ['data/golden_logits.txt, line 1: "1.5" is not an integer']),
    ("logits-binary", lambda e: _data(e / "exp", "golden_logits.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x01\xff"),
     "exp", ['data/golden_logits.txt, line 1: "\\x89PNG" is not an integer']),
    ("labels-huge", lambda e: _edit_field(_data(e / "exp", "labels.txt"), 2, 0, "99999999999999999999"), "exp",
     ["data/labels.txt, line 3: 99999999999999999999 does not fit a 64-bit integer"]),
    ("labels-out-of-range", lambda e: _edit_field(_data(e / "exp", "labels.txt"), 1, 0, "10"), "exp",
     ["data/labels.txt, line 2: label 10, expected 0..9"]),
    ("input-too-large", lambda e: _edit_field(_data(e / "exp", "inputs.txt"), 2, 7, "1000000000"), "exp",
     ["data/inputs.txt, line 3: value 8 is 1000000000, which does not fit the input type"]),
    ("trace-last-line-lost", lambda e: _edit_lines(_data(e / "exp", "golden_trace.txt"), lambda ls: ls[:-1]), "exp",
     ["data/golden_trace.txt: {trace_lines_minus_1} lines, expected {trace_lines}"]),
    ("trace-cut-mid-line", lambda e: _data(e / "exp", "golden_trace.txt").write_text(
        _data(e / "exp", "golden_trace.txt").read_text()[:-41]), "exp",
     ["data/golden_trace.txt, line {trace_lines}: node ", "values, expected"]),
    ("trace-duplicate-line", lambda e: _edit_lines(_data(e / "exp", "golden_trace.txt"), lambda ls: ls[:2] + ls[1:]),
     "exp", ["data/golden_trace.txt, line 3: sample 0, step 0, node ", "given twice"]),
    ("trace-unknown-node", lambda e: _edit_field(_data(e / "exp", "golden_trace.txt"), 0, 2, "999"), "exp",
     ["data/golden_trace.txt, line 1: node 999, expected the index of a traced node"]),
    ("trace-step-beyond-T", lambda e: _edit_field(_data(e / "exp", "golden_trace.txt"), 0, 1, "4"), "exp",
     ["data/golden_trace.txt, line 1: step 4, expected 0..3"]),
    ("trace-untraced-sample", lambda e: _edit_field(_data(e / "exp", "golden_trace.txt"), 0, 0, "2"), "exp",
     ["data/golden_trace.txt, line 1: sample 2, expected 0..1 (the traced samples)"]),
    ("trace-wrong-count", lambda e: _edit_field(_data(e / "exp", "golden_trace.txt"), 0, 3, "7"), "exp",
     ["data/golden_trace.txt, line 1: node ", ": count 7 and"]),
    ("trace-word", lambda e: _edit_field(_data(e / "exp", "golden_trace.txt"), 4, 9, "x1"), "exp",
     ['data/golden_trace.txt, line 5: "x1" is not an integer']),
    ("trace-short-header", lambda e: _edit_lines(_data(e / "exp", "golden_trace.txt"), lambda ls: ["0 0"] + ls[1:]),
     "exp", ['data/golden_trace.txt, line 1: 2 values, expected "sample step node count values..."']),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_project_is_one_clear_error(export, tmp_path, case):
    root, sizes = export
    _, breaks, target, expected = case
    _copy(root, tmp_path)
    breaks(tmp_path)
    result = _cli(tmp_path / target)
    trace_lines = TRACED * sizes["T"] * sizes["nodes"]
    words = {**sizes, "inputs_plus_1": sizes["inputs"] + 1, "trace_lines": trace_lines,
             "trace_lines_minus_1": trace_lines - 1}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(errors) == 1, result.stderr
    for part in expected:
        assert part.format(**words) in errors[0], (part.format(**words), errors[0])
    assert "Traceback" not in result.stderr and "mismatches" not in result.stdout, result.stdout + result.stderr


def test_intact_copy_passes(export, tmp_path):
    """The control: the same copy, unbroken, runs without recompiling and has no mismatch."""
    exp = _copy(export[0], tmp_path)
    result = _cli(exp)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 0"
    assert f"{SAMPLES} samples (every node at every step for the first {TRACED})" in result.stdout
    assert "g++" not in result.stdout  # nothing was rebuilt: the rows above ran the compiled binary


def test_changed_golden_value_is_a_mismatch_not_an_error(export, tmp_path):
    exp = _copy(export[0], tmp_path)
    logits = _data(exp, "golden_logits.txt")
    _edit_field(logits, 1, 3, str(int(logits.read_text().splitlines()[1].split()[3]) + 1))
    result = _cli(exp)
    assert result.returncode == 1 and "error:" not in result.stderr, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 1"
    assert "first mismatch: node logits, sample 1, index 3" in result.stdout


@pytest.mark.parametrize("env, expected", [({"CXX": "no-such-cxx"}, "C++ compiler 'no-such-cxx' not found on PATH"),
                                           ({"AP_TYPES": "/nonexistent"}, "/nonexistent: no ap_int.h there")],
                         ids=["no-compiler", "no-ap-types"])
def test_missing_toolchain_is_one_clear_error(export, tmp_path, env, expected):
    result = _cli(_copy(export[0], tmp_path), env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.stderr
    assert "mismatches" not in result.stdout
