"""Lowering to the DeployGraph and the NumPy simulator: exact agreement, round trip, load errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.export.compare import compare
from hqflow.export.lower import lower
from hqflow.ir import load_graph
from hqflow.numerics import Candidate
from hqflow.search import supernet
from hqflow.search.model import Spikformer
from hqflow.sim.run import run

from conftest import GRAPH_CFG, MIXED_FORMATS, mixed_format_model

CFG = GRAPH_CFG
FORMATS = MIXED_FORMATS


def random_model(seed: int) -> Spikformer:
    """A QAT-style model with every format in use and random BN statistics (negative gamma too)."""
    return mixed_format_model(seed, gamma=(-0.5, 1.5), beta=(-0.2, 0.8), mean=(-0.5, 0.5))


def frames(seed: int, batch: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).poisson(0.7, (batch, 4, 2, 16, 16)).astype(np.int16)


@pytest.mark.parametrize("seed", [0, 1])
def test_simulator_agrees_with_the_fake_quant_model(seed):
    model = random_model(seed)
    graph = lower(model, CFG)
    x = frames(seed)
    result = compare(graph, model, [(x, np.zeros(len(x), np.int64))], progress=False)
    agreement = result.spike_agreement()
    assert set(agreement) >= {"sps.conv0", "sps.rpe", "blocks.0.attn.attn", "blocks.0.mlp.fc2"}
    # the only differences: membranes within the bias rounding (2^-17) or float32 error of a threshold
    assert min(agreement.values()) > 0.999, agreement
    assert result.prediction_agreement == 1.0
    logits, trace = run(graph, x, trace=True)
    assert logits.dtype == np.int64 and logits.shape == (len(x), CFG.model.num_classes)
    assert 0 < trace["blocks.0.mlp.fc1"].mean() < 1  # the test exercises real spiking activity


def test_round_trip_through_files(tmp_path):
    graph = lower(random_model(2), CFG)
    graph.save(tmp_path / "g")
    loaded = load_graph(tmp_path / "g")
    assert [n.to_dict() for n in loaded.nodes] == json.loads(json.dumps([n.to_dict() for n in graph.nodes]))
    for key, value in graph.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[key], value)
        assert loaded.tensors[key].dtype == value.dtype
    x = frames(3)
    np.testing.assert_array_equal(run(loaded, x)[0], run(graph, x)[0])
    po2 = next(n for n in graph.nodes if n.attrs.get("format") == "po2-2")
    assert {"w_sign", "w_shift"} <= {k.split("/")[1] for k in graph.tensors if k.startswith(po2.name + "/")}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda doc, t: doc["nodes"][1].update(op="conv3d"), "node 'sps.conv0': unknown op 'conv3d'"),
        (lambda doc, t: t.pop("sps.conv1/bias_int"), "node 'sps.conv1': tensor 'bias_int' missing"),
        (lambda doc, t: t.update({"sps.conv0/thr_int": t["sps.conv0/thr_int"].astype(np.float32)}),
         "node 'sps.conv0': tensor 'thr_int' has dtype float32"),
        (lambda doc, t: t.update({"head/bias_int": t["head/bias_int"][:3]}), "node 'head': tensor 'bias_int' has shape"),
        (lambda doc, t: doc["nodes"][1]["attrs"].update(acc_bits=4), "node 'sps.conv0': attrs.acc_bits 4 cannot hold"),
        (lambda doc, t: doc["nodes"][1]["attrs"].update(frac_bits=3), "node 'sps.conv0': attrs.frac_bits 3 must be"),
        (lambda doc, t: doc["nodes"][1]["attrs"].update(v_bits=8), "node 'sps.conv0': attrs.v_bits 8 cannot hold"),
        (lambda doc, t: doc["nodes"][1].update(inputs=["nowhere"]), "input 'nowhere' is not an earlier node"),
        (lambda doc, t: doc.update(schema_version=9), "schema_version 9"),
        (lambda doc, t: t["sps.conv2/thr_int"].__setitem__(0, -5), "node 'sps.conv2': tensor 'thr_int' holds -5"),
        (lambda doc, t: t["sps.conv2/sign"].__setitem__(1, 2),
         "node 'sps.conv2': tensor 'sign' holds 2 at index \\(1,\\); expected values -1, 0 or 1"),
    ],
)
def test_load_errors_name_node_and_field(tmp_path, edit, message):
    lower(random_model(4), CFG).save(tmp_path)
    doc = json.loads((tmp_path / "graph.json").read_text())
    with np.load(tmp_path / "tensors.npz") as npz:
        tensors = {k: npz[k] for k in npz.files}
    edit(doc, tensors)
    (tmp_path / "graph.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "tensors.npz", **tensors)
    with pytest.raises(UserError, match=message):
        load_graph(tmp_path)


def test_simulator_never_imports_torch():
    code = "import sys, hqflow.ir, hqflow.sim.run; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.csim
def test_cli_export_and_sim(tmp_path):
    from hqflow.cli import main
    from hqflow.search.trainer import train

    cfg = CFG.replace("data", max_train_samples=64).replace("train", epochs=1, batch_size=32, warmup_epochs=0)
    train(cfg, tmp_path / "run", progress=False)
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["sim", str(tmp_path / "out"), "--limit", "32", "--compare-torch", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["samples"] == 32 and summary["prediction_agreement"] >= 0.9
    again = runner.invoke(main, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "out")])
    assert again.exit_code == 2 and "pass --force" in again.output
    hls = runner.invoke(main, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "out"), "--force",
                               "--target", "hls", "--tb-samples", "8", "--trace-samples", "1"])
    assert hls.exit_code == 0, hls.output
    assert "testbench of 8 samples (1 traced, " in hls.output
    assert (tmp_path / "out" / "graph.json").is_file() and (tmp_path / "out" / "hls" / "Makefile").is_file()
    csim = subprocess.run([sys.executable, "-m", "hqflow.cli", "csim", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert csim.returncode == 0, csim.stdout[-2000:] + csim.stderr[-2000:]
    assert csim.stdout.strip().splitlines()[-1] == "mismatches: 0"


@settings(max_examples=6, deadline=None)
@given(
    dim_heads=st.sampled_from([(16, 1), (16, 2), (32, 4)]),
    pools=st.sampled_from([(True, True, False, False), (True, False, True, False)]),
    time_steps=st.integers(1, 6),
    formats=st.lists(st.sampled_from(FORMATS + ["uniform-3", "po2-5", "po2z-6"]), min_size=12, max_size=12),
    seed=st.integers(0, 1000),
)
def test_random_models_lower_and_agree(dim_heads, pools, time_steps, formats, seed):
    """Random shapes, T, formats per layer and BN statistics (negative gamma included)."""
    dim, heads = dim_heads
    cfg = config_from_dict({"model": {"img_size": 16, "embed_dim": dim, "num_heads": heads, "depth": 1,
                                      "pools": list(pools), "attn_scale": 0.125, "num_classes": 10},
                            "data": {"time_steps": time_steps}})
    torch.manual_seed(seed)
    model = Spikformer(cfg.model)
    names = list(supernet.weight_layers(model))
    supernet.apply_formats(model, {n: Candidate.parse(f) for n, f in zip(names, formats)})
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(-0.5, 1.5)
                m.bias.uniform_(-0.3, 0.8)
                m.running_var.uniform_(0.05, 0.5)
    model.eval()
    graph = lower(model, cfg)
    x = np.random.default_rng(seed).poisson(0.6, (3, time_steps, 2, 16, 16)).astype(np.int16)
    result = compare(graph, model, [(x, np.zeros(3, np.int64))], progress=False)
    assert min(result.spike_agreement().values()) > 0.99
    assert result.agree_predictions >= 2  # a near-tie of the float logits may flip one of three


# ---- semantics the integer model does not implement are refused, never exported wrong ---------------


def _model(cfg):
    return mixed_format_model(0, cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tau": 3.0}, "model.tau: 3.0; the integer LIF implements tau = 2 only"),
        ({"tau": 2.5}, "model.tau: 2.5; the integer LIF implements tau = 2 only"),
        ({"in_channels": 3}, "model.in_channels: 3; the deployed input is hqflow's event frames [T, 2, H, W]"),
        # constants beyond 64 bits: the attention threshold 0.5 / 1e-30 * 2^T, a membrane holding 1e30
        ({"attn_scale": 1e-30}, "model.attn_scale 1e-30, model.attn_threshold 0.5 (T 4, attention products up to 256)"),
        ({"attn_threshold": 1e30}, "model.attn_scale 0.25, model.attn_threshold 1e+30"),
        ({"v_threshold": 1e30}, "layer sps.conv0 (model.v_threshold 1e+30, data.time_steps 4): folding its BN"),
    ],
)
def test_lowering_refuses_semantics_it_cannot_represent(change, message):
    cfg = CFG.replace("model", **change)
    with pytest.raises(UserError) as info:
        lower(_model(cfg), cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("key", ["v_threshold", "attn_threshold", "attn_scale"])
@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf")])
def test_lowering_refuses_thresholds_and_scales_out_of_range(key, value):
    """The config refuses these too; the lowering does not rely on it (a config object built elsewhere)."""
    from types import SimpleNamespace

    from hqflow.export.lower import check_semantics

    model_cfg = SimpleNamespace(**{**CFG.model.__dict__, key: value})
    with pytest.raises(UserError, match=f"model.{key}: {value!r}; the integer model needs a finite value > 0"):
        check_semantics(_model(CFG), SimpleNamespace(model=model_cfg))
    check_semantics(_model(CFG), CFG)  # the control: the unchanged config passes


def test_lowering_checks_the_neurons_themselves():
    """The LIF modules must be what the integer LIF computes, whatever the config says."""
    model = _model(CFG)
    model.sps.lif2.v_reset = None  # soft reset
    with pytest.raises(UserError, match="module sps.lif2: v_reset None; the integer LIF implements v_reset 0.0"):
        lower(model, CFG)
    model = _model(CFG)
    model.get_submodule("blocks.0.mlp.fc1_lif").tau = 4.0
    with pytest.raises(UserError, match="module blocks.0.mlp.fc1_lif: tau 4.0; the integer LIF implements tau 2.0"):
        lower(model, CFG)
    with pytest.raises(ValueError, match="the model was built from another model config than the one given"):
        lower(_model(CFG), CFG.replace("model", v_threshold=0.7))  # its LIFs and topology have 0.5


@pytest.mark.parametrize(("scale", "theta"), [(0.25, 0.5), (0.125, 0.5), (0.1, 0.3), (1 / 3, 0.7), (0.3, 1.1)])
def test_attention_lif_is_exact_for_any_positive_scale_and_threshold(scale, theta):
    """Why only attn_scale, attn_threshold > 0 are refused: the integer attention LIF equals the real LIF
    of the config's values (H = (V + scale * y) / 2, S = H >= theta, hard reset), computed here in exact
    rational arithmetic, for any of them, not only the dyadic 0.25 / 0.5."""
    from fractions import Fraction

    from hqflow import numerics

    t, bound = 6, 64
    consts = numerics.fold_lif(np.ones(1), np.zeros(1), scale, theta, 0, t)
    rng = np.random.default_rng(0)
    y = rng.integers(0, bound + 1, (t, 4000, 1))
    y[:, :50] = np.arange(50)[None, :, None] % (bound + 1)  # small products, near the threshold
    spikes = numerics.lif_run(y, consts, channel_axis=-1)
    v = [Fraction(0)] * y.shape[1]
    expected = np.zeros_like(spikes)
    for step in range(t):
        for i in range(y.shape[1]):
            h = (v[i] + Fraction(scale) * int(y[step, i, 0])) / 2
            expected[step, i, 0] = h >= Fraction(theta)
            v[i] = Fraction(0) if expected[step, i, 0] else h
    np.testing.assert_array_equal(spikes, expected)
    assert 0.05 < expected.mean() < 0.95  # both outcomes occur


def test_non_default_thresholds_and_scale_lower_and_agree():
    """v_threshold 0.7, attn_scale 0.1, attn_threshold 0.3: lowered exactly, and the simulator agrees with
    the fake-quant model as for the defaults."""
    import math
    from fractions import Fraction

    cfg = CFG.replace("model", v_threshold=0.7, attn_scale=0.1, attn_threshold=0.3)
    model = _model(cfg)
    graph = lower(model, cfg)
    ssa = graph.node("blocks.0.attn.attn")
    f = ssa.attrs["frac_bits"]
    assert int(graph.tensor(ssa.name, "thr_int")[0]) == math.ceil(Fraction(0.3) / Fraction(0.1) * 2**f)
    x = frames(7)
    result = compare(graph, model, [(x, np.zeros(len(x), np.int64))], progress=False)
    assert min(result.spike_agreement().values()) > 0.99 and result.prediction_agreement >= 5 / 6


def test_simulator_checks_frames_against_the_input_node():
    """Frames of another shape, or counts beyond the input's max_count (the widths' premise), are refused."""
    graph = lower(_model(CFG), CFG)
    x = frames(8, batch=2)
    run(graph, x)  # the control
    with pytest.raises(ValueError, match=r"expected \[B, 4, 2, 16, 16\]"):
        run(graph, x[:, :, :, :8])
    with pytest.raises(ValueError, match=r"hold inputs in \[0, 32767\]"):
        run(graph, x.astype(np.int64) + 40000)
    with pytest.raises(ValueError, match="integer event counts"):
        run(graph, x.astype(np.float32))
