"""The HLS export: C++ kernels against hqflow.numerics, bit for bit, compiled with g++.

Random single layers (conv and linear, every weight scheme, bits 2..8, random shapes, inputs,
biases, thresholds and signs) each become a small DeployGraph (input -> layer -> tokens -> head);
their projects are compiled together into one program, whose testbench compares every node at
every step and the logits with the NumPy simulator's: 32 layers in the default run, 200 more (four
programs of 50) under `slow`. The whole tiny model follows the same path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from hqflow import numerics
from hqflow.config import load_config
from hqflow.errors import UserError
from hqflow.export import csim
from hqflow.export.hls import HlsOptions, write_project
from hqflow.export.lower import lower
from hqflow.ir import DeployGraph, Node, complete, validate
from hqflow.numerics import Candidate
from hqflow.search import supernet
from hqflow.sim.run import run

from conftest import CONFIGS, EVERY_FORMAT


SCHEMES = ["uniform", "po2", "po2z", "fp32"]


def _weights(rng, fmt: Candidate, shape, max_shift: int = 12) -> tuple[dict[str, np.ndarray], dict]:
    """Random code tables of a format, and its attrs (zero point); po2 shifts up to max_shift (the caller's
    budget that keeps the accumulator and membrane within 64 bits) or the format's largest."""
    if fmt.scheme == "uniform":
        return {"w_int": rng.integers(0, 2**fmt.bits, shape).astype(np.uint8)}, \
            {"zero_point": int(rng.integers(0, 2**fmt.bits))}
    if fmt.scheme == "po2":
        field = 2 ** (fmt.bits - 1) - 1
        largest = min(field - 1 if fmt.zero_level else field, max_shift)
        sign = rng.choice(np.int8([-1, 0, 1]) if fmt.zero_level else np.int8([-1, 1]), shape)
        shift = rng.integers(0, largest + 1, shape)
        shift.flat[0] = largest  # the largest shift in use
        return {"w_sign": sign, "w_shift": np.where(sign == 0, 0, shift).astype(np.uint8)}, {}
    w_fx = rng.integers(-(2**31), 2**31, shape)
    w_fx.flat[0] = rng.choice([-(2**31), 2**31 - 1, w_fx.flat[0]])  # the extreme codes
    return {"w_fx": w_fx}, {}


def _lif(rng, acc: np.ndarray, channels: int, bias_frac: int, t: int, channel_axis: int) -> dict[str, np.ndarray]:
    """Biases and thresholds on the scale of the layer's real accumulators, so that it spikes sometimes."""
    moved = np.moveaxis(acc, channel_axis, -1).reshape(-1, channels)
    scale = np.maximum(np.abs(moved).mean(axis=0), 1.0)
    frac = bias_frac + t
    sign = rng.choice(np.int8([-1, 1, 1, 1]), channels)
    sign[rng.random(channels) < 0.05] = 0
    bias = np.round(rng.normal(0, 0.3, channels) * scale * 2**bias_frac).astype(np.int64)
    thr = np.ceil(rng.uniform(0.1, 0.8, channels) * scale * 2**frac).astype(np.int64)
    thr[rng.random(channels) < 0.05] = 0  # fires whenever sign * h >= 0
    return {"bias_int": bias, "thr_int": thr, "sign": sign}


def _node_attrs(fmt: Candidate, x_max: int, w_eff: np.ndarray, extra: dict) -> dict:
    bound = numerics.acc_bound(x_max, w_eff)
    return {"format": fmt.name, "x_max": x_max, "acc_bits": numerics.bits_for(-bound, bound), **extra}


def random_layer_graph(rng, op: str, fmt_name: str, out_c: int | None = None) -> tuple[DeployGraph, np.ndarray]:
    """input -> conv_lif -> tokens -> head, or input -> tokens -> linear_lif -> head; and frames [S, T, C, H, W]."""
    fmt = Candidate.parse(fmt_name)
    t = int(rng.integers(1, 7))
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(2, 7)), int(rng.integers(2, 7))
    out_c = int(rng.integers(1, 20)) if out_c is None else out_c
    x_max = int(rng.choice([1, 1, 3, 255, 32767, int(rng.integers(2, 2**15))]))
    samples = 2
    density = rng.uniform(0.1, 0.6)
    frames = (rng.integers(0, x_max + 1, (samples, t, c, h, w)) * (rng.random((samples, t, c, h, w)) < density))
    bias_frac = 0 if fmt.scheme == "fp32" else int(rng.choice([0, 8, 16]))
    shape = (out_c, c, 3, 3) if op == "conv_lif" else (out_c, c)
    # the widest po2 shifts the 64-bit membrane allows: |acc| < x_max * fan_in * 2^shift, shifted by frac_bits
    fan_in = int(np.prod(shape[1:]))
    max_shift = 59 - (bias_frac + t) - x_max.bit_length() - fan_in.bit_length()
    codes, extra = _weights(rng, fmt, shape, max_shift)
    w_eff = numerics.w_eff_from_codes(fmt, codes, extra.get("zero_point", 0))
    x = frames.swapaxes(0, 1).reshape(t * samples, c, h, w)
    if op == "conv_lif":
        acc = numerics.conv2d_acc(x, w_eff)
    else:
        acc = numerics.linear_acc(x.reshape(t * samples, c, h * w).swapaxes(1, 2), w_eff)
    lif = _lif(rng, acc, out_c, bias_frac, t, 1 if op == "conv_lif" else -1)
    consts = numerics.LifConsts(lif["bias_int"], lif["thr_int"], lif["sign"], bias_frac + t, bias_frac)
    bound = numerics.acc_bound(x_max, w_eff)
    attrs = _node_attrs(fmt, x_max, w_eff, extra)
    attrs.update(theta=1.0, frac_bits=bias_frac + t, bias_frac_bits=bias_frac,
                 v_bits=numerics.membrane_bits(-bound, bound, consts))
    nodes = [Node("input", "input", (), (c, h, w), {"max_count": x_max})]
    tensors = {f"layer/{k}": v for k, v in {**codes, **lif}.items()}
    if op == "conv_lif":
        nodes += [Node("layer", "conv_lif", ("input",), (out_c, h, w), attrs),
                  Node("tokens", "tokens", ("layer",), (h * w, out_c))]
        head_in, head_x_max, n_tok, head_c = "tokens", 1, h * w, out_c
    else:
        nodes += [Node("tokens", "tokens", ("input",), (h * w, c)),
                  Node("layer", "linear_lif", ("tokens",), (h * w, out_c), attrs)]
        head_in, head_x_max, n_tok, head_c = "layer", 1, h * w, out_c
    head_fmt = Candidate.parse(str(rng.choice(["uniform-4", "uniform-8", "po2z-4", "po2-3", "po2-8", "fp32"])))
    head_codes, head_extra = _weights(rng, head_fmt, (3, head_c), 12)
    head_w = numerics.w_eff_from_codes(head_fmt, head_codes, head_extra.get("zero_point", 0))
    head_attrs = _node_attrs(head_fmt, head_x_max * n_tok * t, head_w, head_extra)
    head_attrs.update(bias_frac_bits=int(rng.choice([0, 16])), num_tokens=n_tok)
    nodes.append(Node("head", "head", (head_in,), (3,), head_attrs))
    tensors.update({f"head/{k}": v for k, v in head_codes.items()})
    tensors["head/bias_int"] = rng.integers(-(2**20), 2**20, 3)
    graph = DeployGraph(tuple(nodes), tensors, t, 3, {"model": {"embed_dim": out_c}})
    graph = complete(graph)  # the figures its ops compute (value_max, x_max, logit_bits, windows)
    validate(graph, f"random {op} {fmt_name}")
    return graph, frames


def compile_and_run(root: Path, names: list[str], flags: tuple[str, ...] = ()) -> str:
    """One program running the testbench of every project root/<name>; returns its output."""
    main = ["#define HQFLOW_TB_NO_MAIN"]
    for name in names:
        main += [f'#include "{name}/firmware/{name}_top.cpp"', f'#include "{name}/tb/{name}_tb.cpp"']
    main += ["int main() {", "    int status = 0;"]
    main += [f'    status |= {name}_tb::run("{root / name / "tb" / "data"}");' for name in names]
    main += ["    return status;", "}"]
    (root / "all_tb.cpp").write_text("\n".join(main) + "\n")
    cmd = [csim.compiler(), "-std=c++17", "-O1", "-Wall", "-Wextra", "-Wno-uninitialized",
           "-Wno-maybe-uninitialized", *flags, "-isystem", str(csim.ap_types_dir()), str(root / "all_tb.cpp"),
           "-o", str(root / "all_tb")]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    assert "warning" not in build.stderr, build.stderr[-4000:]  # hqflow's own code compiles clean
    result = subprocess.run([str(root / "all_tb")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


def _fuzz(tmp_path: Path, cases: int, seed: int, flags: tuple[str, ...] = (), offset: int = 0) -> None:
    """`cases` random layers (case offset .. offset + cases - 1 of the format cycle), compiled as one program."""
    rng = np.random.default_rng(seed)
    formats = EVERY_FORMAT
    names, spike_rates = [], []
    for i in range(offset, offset + cases):  # every format in turn, conv and linear alternating (swapped each round)
        fmt = formats[i % len(formats)]
        op = ("conv_lif", "linear_lif")[(i + i // len(formats)) % 2]
        graph, frames = random_layer_graph(rng, op, fmt)
        name = f"case{i:03d}"
        write_project(graph, tmp_path / name, frames, np.zeros(len(frames), np.int64), trace_samples=len(frames),
                      options=HlsOptions(name=name))
        spike_rates.append(run(graph, frames, trace=True)[1]["layer"].mean())
        names.append(name)
    out = compile_and_run(tmp_path, names, flags)
    assert out.count("mismatches: 0") == cases, out
    compared = [int(v) for v in re.findall(r"trace values compared: (\d+)", out)]
    assert len(compared) == cases and min(compared) > 0
    # the layers do spike and do stay silent: the comparison is not of constant outputs
    assert 0.02 < np.mean(spike_rates) < 0.98, spike_rates


FUZZ_CASES = 32  # in the default run (both arithmetic builds)
SLOW_PARTS, SLOW_CASES = 4, 50  # 200 more layers under `slow`, 50 per compiled program


@pytest.mark.csim
@pytest.mark.parametrize("flags", [(), ("-DHQFLOW_AP_ARITHMETIC",)], ids=["model64", "ap_arithmetic"])
def test_random_layers_match_numerics(tmp_path, flags):
    """Both arithmetic models of the C simulation (fast, and the synthesis one) agree with numerics."""
    _fuzz(tmp_path, cases=FUZZ_CASES, seed=0, flags=flags)


@pytest.mark.csim
@pytest.mark.slow
@pytest.mark.parametrize("part", range(SLOW_PARTS))
def test_random_layers_match_numerics_every_format(tmp_path, part):
    """Each part is another seed and its own program (a compile of 50 layers stays short)."""
    _fuzz(tmp_path, cases=SLOW_CASES, seed=1 + part, offset=part * SLOW_CASES)


# ---- the whole model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graph():
    cfg = load_config(CONFIGS / "tiny.yaml").replace("model", num_classes=10)
    with torch.no_grad():  # every default format somewhere
        graph = lower(supernet.random_quantized_model(cfg.model), cfg)
    rng = np.random.default_rng(0)
    t, res = cfg.data.time_steps, cfg.model.img_size
    frames = rng.poisson(0.3, (6, t, 2, res, res)).astype(np.int16)
    return graph, frames


@pytest.fixture(scope="module")
def tiny_project(tiny_graph, tmp_path_factory):
    graph, frames = tiny_graph
    out = tmp_path_factory.mktemp("hls") / "tiny"
    write_project(graph, out, frames, np.arange(len(frames)) % 10, trace_samples=2)
    return out


@pytest.mark.csim
def test_whole_tiny_model_is_bit_exact(tiny_project, tiny_graph, tmp_path):
    result = subprocess.run(["make", "--no-print-directory", "-C", str(tiny_project), "csim",
                             f"AP_TYPES={csim.ap_types_dir()}", f"CXX={csim.compiler()}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "mismatches: 0"
    values = sum(int(np.prod(n.shape)) for n in tiny_graph[0].nodes if n.op != "head")
    assert f"trace values compared: {2 * tiny_graph[0].time_steps * values}" in result.stdout

    # the check can fail: a changed golden logit is found and named
    data = tmp_path / "data"
    shutil.copytree(tiny_project / "tb" / "data", data)
    logits = data / "golden_logits.txt"
    rows = logits.read_text().splitlines()
    first = rows[3].split()
    first[1] = str(int(first[1]) + 1)
    rows[3] = " ".join(first)
    logits.write_text("\n".join(rows) + "\n")
    bad = subprocess.run([str(tiny_project / "build" / "spikformer_csim"), str(data)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "first mismatch: node logits, sample 3, index 1" in bad.stdout
    assert bad.stdout.strip().splitlines()[-1] == "mismatches: 1"

    # and so is a changed spike deep inside the traced nodes
    shutil.copy(tiny_project / "tb" / "data" / "golden_logits.txt", logits)
    trace = data / "golden_trace.txt"
    lines = trace.read_text().splitlines()
    target = next(i for i, line in enumerate(lines) if line.split()[:3] == ["1", "2", "12"])
    fields = lines[target].split()
    fields[4 + 7] = str(1 - int(fields[4 + 7]))  # node 12, step 2, sample 1, index 7
    lines[target] = " ".join(fields)
    trace.write_text("\n".join(lines) + "\n")
    bad = subprocess.run([str(tiny_project / "build" / "spikformer_csim"), str(data)],
                         capture_output=True, text=True)
    name = tiny_graph[0].nodes[12].name
    assert f"first mismatch: node {name}, step 2, sample 1, index 7" in bad.stdout, bad.stdout
    assert bad.stdout.strip().splitlines()[-1] == "mismatches: 1"


@pytest.mark.csim
def test_whole_tiny_model_with_synthesis_arithmetic(tiny_project):
    """AP_ARITHMETIC=1: ap_int accumulators, multipliers and LIF, as synthesis sees them; the same bits."""
    result = subprocess.run(["make", "--no-print-directory", "-C", str(tiny_project), "csim", "AP_ARITHMETIC=1",
                             f"AP_TYPES={csim.ap_types_dir()}", f"CXX={csim.compiler()}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "-DHQFLOW_AP_ARITHMETIC" in result.stdout and "warning" not in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 0"


@pytest.mark.csim
@pytest.mark.slow
def test_paper_config_is_bit_exact(tmp_path):
    """The paper's model (128x128, D 256, depth 2, T 16), random weights in every format: one traced sample."""
    cfg = load_config(CONFIGS / "paper.yaml").replace("model", num_classes=10)
    with torch.no_grad():
        graph = lower(supernet.random_quantized_model(cfg.model, seed=1), cfg)
    t, res = cfg.data.time_steps, cfg.model.img_size
    frames = np.random.default_rng(1).poisson(0.1, (1, t, 2, res, res)).astype(np.int16)
    write_project(graph, tmp_path / "paper", frames, np.zeros(1, np.int64), trace_samples=1)
    result = subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path / "paper"), "csim",
                             f"AP_TYPES={csim.ap_types_dir()}", f"CXX={csim.compiler()}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "mismatches: 0"


def test_project_is_complete(tiny_project):
    """Every file the Makefile, the Tcl script and the #includes name exists."""
    makefile = (tiny_project / "Makefile").read_text()
    sources = re.search(r"^SOURCES\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    tcl = (tiny_project / "build_prj.tcl").read_text()
    named = sources + re.findall(r"add_files (?:-tb )?(\S+)", tcl)
    assert len(named) >= 5
    for path in named:
        assert (tiny_project / path).exists(), path
    for source in [*tiny_project.glob("firmware/**/*.h"), *tiny_project.glob("firmware/*.cpp"),
                   *tiny_project.glob("tb/*.cpp"), *tiny_project.glob("tb/*.h")]:
        for include in re.findall(r'#include "([^"]+)"', source.read_text()):
            candidates = [source.parent / include, tiny_project / "firmware" / include]
            assert any(c.exists() for c in candidates), f"{source}: {include}"
    for name in ("inputs.txt", "labels.txt", "golden_logits.txt", "golden_trace.txt"):
        assert (tiny_project / "tb" / "data" / name).stat().st_size > 0
    assert "{{" not in (tiny_project / "README.md").read_text()


def test_po2_layers_have_no_weight_multiply(tiny_project, tiny_graph):
    """A po2 node's config names po2_weight, whose product is a shift: no '*' in its code."""
    graph, _ = tiny_graph
    po2 = [n for n in graph.nodes if n.attrs.get("format", "").startswith("po2")]
    assert po2
    params = (tiny_project / "firmware" / "parameters.h").read_text()
    weights_h = (tiny_project / "firmware" / "kernels" / "hqflow_weights.h").read_text()
    struct = re.search(r"struct po2_weight \{(.*?)\n\};", weights_h, re.S).group(1)
    code = re.sub(r"//.*|/\*.*?\*/", "", struct, flags=re.S)
    assert "<<" in code and "*" not in code and "PRODUCT" not in code
    for node in po2:
        config = re.search(rf"struct {node.name.replace('.', '_')}_config : hqflow::\w+ \{{(.*?)\n\}};", params,
                           re.S).group(1)
        assert "typedef hqflow::po2_weight<" in config
    # the same check does find the multiply where there is one
    uniform = re.search(r"struct uniform_weight \{(.*?)\n\};", weights_h, re.S).group(1)
    assert "HQFLOW_EXACT_PRODUCT(x, " in uniform
    assert re.search(r"#define HQFLOW_EXACT_PRODUCT\(x, w_t, w\) \(\(x\) \* w_t\(w\)\)", weights_h)


@pytest.mark.csim
def test_project_compiles_as_cpp14(tiny_project):
    """build_prj.tcl compiles the firmware and the testbench with -std=c++14: so does g++ here, without a warning."""
    assert '-cflags "-std=c++14 -Ifirmware"' in (tiny_project / "build_prj.tcl").read_text()
    for flags in ((), ("-DHQFLOW_AP_ARITHMETIC",)):
        cmd = [csim.compiler(), "-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Wno-uninitialized",
               "-Wno-maybe-uninitialized", *flags, "-isystem", str(csim.ap_types_dir()),
               "-I", str(tiny_project / "firmware"), str(tiny_project / "firmware" / "spikformer_top.cpp"),
               str(tiny_project / "tb" / "spikformer_tb.cpp")]
        build = subprocess.run(cmd, capture_output=True, text=True)
        assert build.returncode == 0 and "warning" not in build.stderr, build.stderr[-4000:]


# ---- errors -------------------------------------------------------------------------------------


def test_missing_compiler_is_a_clear_error(monkeypatch, tiny_project):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(UserError, match="C\\+\\+ compiler 'no-such-compiler-xyz' not found"):
        csim.run_csim(tiny_project)


def test_missing_ap_types_is_a_clear_error(monkeypatch, tmp_path, tiny_project):
    monkeypatch.setenv("AP_TYPES", str(tmp_path))
    with pytest.raises(UserError, match="no ap_int.h there"):
        csim.run_csim(tiny_project)


def test_project_makefile_names_a_missing_toolchain(tiny_project):
    bad = subprocess.run(["make", "--no-print-directory", "-C", str(tiny_project), "-B", "csim", "AP_TYPES=/nonexistent"],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "error: ap_int.h not found (AP_TYPES='/nonexistent')" in bad.stderr
    bad = subprocess.run(["make", "--no-print-directory", "-C", str(tiny_project), "-B", "csim", "CXX=no-such-cxx"],
                         capture_output=True, text=True)
    assert "error: C++ compiler 'no-such-cxx' not found" in bad.stderr


def test_csim_cli_without_project(tmp_path):
    from click.testing import CliRunner

    from hqflow.cli import main

    result = CliRunner().invoke(main, ["csim", str(tmp_path)])
    assert result.exit_code == 2
    assert "no HLS project there" in result.output
    assert "Traceback" not in result.output


def test_make_is_on_path():
    assert shutil.which("make")
