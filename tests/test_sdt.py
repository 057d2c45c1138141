"""The Spike-driven Transformer (model.family sdt): its topology and names, the membrane shortcut's integer
contract (fold_requant, requant, the lif and sdsa ops), the lowering and the simulator against torch;
its HLS C++ and the RTL's refusal are tests/test_sdt_hls.py's."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import CONFIGS, GRAPH_CFG, mixed_format_model
from hqflow import numerics
from hqflow.config import load_config
from hqflow.errors import UserError
from hqflow.export.lower import lower
from hqflow.ir import load_graph
from hqflow.models import topology_of
from hqflow.ops import OPS
from hqflow.sim.run import run

SDT_CFG = GRAPH_CFG.replace("model", family="sdt")


@pytest.fixture(scope="module")
def model():
    return mixed_format_model(3, SDT_CFG)


@pytest.fixture(scope="module")
def graph(model):
    return lower(model, SDT_CFG)


def test_topology_names_and_ops():
    topology = topology_of(SDT_CFG.model)
    ops = [step.op for step in topology.steps]
    assert ops.count("sdsa") == 1 and ops.count("lif") == 4 and "ssa" not in ops
    assert {s.name for s in topology.layers} >= {"patch_embed.proj_conv", "patch_embed.rpe_conv", "block.0.attn.q_conv",
                                                  "block.0.attn.proj_conv", "block.0.mlp.fc2_conv", "head"}
    residual = {s.name: s.op for s in topology.layers if s.lif is None}  # the membrane shortcut's layers, and the head
    assert residual == {"patch_embed.proj_conv3": "conv_bn", "patch_embed.rpe_conv": "conv_bn",
                        "block.0.attn.proj_conv": "linear_bn", "block.0.mlp.fc2_conv": "linear_bn", "head": "head"}
    assert topology.lif_thresholds()["block.0.attn.talking_heads_lif"] == SDT_CFG.model.attn_threshold
    with pytest.raises(UserError, match=r"model.family: 'vit'; expected one of spikformer, sdt"):
        SDT_CFG.replace("model", family="vit")


def test_the_config_builds_the_model(model):
    cfg = load_config(CONFIGS / "sdt-tiny.yaml")
    assert cfg.model.family == "sdt" and topology_of(cfg.model).num_tokens == 36
    names = dict(model.named_modules())
    assert "block.0.attn.talking_heads_lif" in names and "patch_embed.proj_bn3" in names


@pytest.mark.parametrize("seed", range(4))
def test_fold_requant_rounds_the_real_bn_output(seed):
    """y_int = (acc m_int + b_int) >> shift is the real k acc + b in 2^-R units within the bound of its docstring."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-3, 3, 6).astype(np.float32), rng.uniform(-2, 2, 6).astype(np.float32)
    scale, frac, acc_max = float(rng.uniform(1e-3, 0.5)), int(rng.integers(0, 20)), 5000
    consts = numerics.fold_requant(a, b, scale, frac, acc_max)
    assert np.abs(consts.m_int).max() < 2 ** (numerics.MULT_BITS - 1)
    assert np.abs(consts.m_int).max() >= 2 ** (numerics.MULT_BITS - 2) or consts.shift == 62  # the widest shift
    acc = rng.integers(-acc_max, acc_max + 1, (50, 6))
    y_int = numerics.requant(acc, consts)
    for (i, c), value in np.ndenumerate(y_int):
        real = (Fraction(float(a[c])) * Fraction(scale) * int(acc[i, c]) + Fraction(float(b[c]))) * 2**frac
        assert abs(value - real) <= Fraction(1, 2) + Fraction(abs(int(acc[i, c])) + 1, 2 ** (consts.shift + 1))
    with pytest.raises(ValueError, match="leaves int64 even unshifted"):
        numerics.fold_requant(a, b, scale * 2**40, 40, 2**40)


def test_sdsa_is_q_masked_by_the_lif_of_the_k_and_v_count(graph):
    node = next(n for n in graph.nodes if n.op == "sdsa")
    rng = np.random.default_rng(0)
    t, n, d = graph.time_steps, *node.shape
    q, k, v = (rng.integers(0, 2, (t, 2, n, d)).astype(np.uint8) for _ in range(3))
    out = OPS["sdsa"].execute(graph, node, q, k, v)
    count = (k.astype(np.int64) * v).sum(axis=2)  # [T, B, D]
    thr, membrane = float(node.attrs["theta"]), np.zeros(count.shape[1:])
    for step in range(t):  # the float LIF: H = (V + X) / 2, S = H >= theta, V = H (1 - S)
        h = (membrane + count[step]) / 2
        mask = h >= thr
        membrane = np.where(mask, 0.0, h)
        np.testing.assert_array_equal(out[step], q[step] * mask[:, None, :].astype(np.uint8))


@pytest.mark.parametrize("pools", [None, (True, False, False, True)], ids=["tiny", "stage-3 pool"])
def test_integer_model_agrees_with_torch(model, graph, pools):
    """Random QAT formats and BN: the simulator's predictions equal the torch model's on random frames, and
    the residual path's values are signed fixed point (the membrane shortcut); with the stage-3 pool, of
    BN outputs, too."""
    if pools is not None:
        cfg = SDT_CFG.replace("model", pools=pools)
        model = mixed_format_model(4, cfg)
        graph = lower(model, cfg)
        assert graph.node("patch_embed.pool3").value_max == graph.node("patch_embed.proj_conv3").value_max > 1
    frames = torch.randint(0, 4, (16, SDT_CFG.data.time_steps, 2, 16, 16))
    with torch.no_grad():
        expected = model(frames).argmax(1).numpy()
    logits, trace = run(graph, frames.numpy().astype(np.int16), trace=True)
    np.testing.assert_array_equal(numerics.argmax_first(logits), expected)
    if pools is None:  # this model's residual sums take both signs
        assert trace["block.0.add2"].min() < 0 < trace["block.0.add2"].max()
    for node in graph.nodes:  # every stored range holds the traced values
        assert np.abs(trace[node.name]).max() <= node.value_max, node.name


def test_a_stale_requant_table_is_refused(graph, tmp_path):
    graph.save(tmp_path / "g")
    load_graph(tmp_path / "g")  # the control
    tensors = dict(np.load(tmp_path / "g" / "tensors.npz"))
    tensors["patch_embed.rpe_conv/m_int"] = tensors["patch_embed.rpe_conv/m_int"] * 4
    np.savez(tmp_path / "g" / "tensors.npz", **tensors)
    with pytest.raises(UserError, match=r"node 'patch_embed.rpe_conv'"):
        load_graph(tmp_path / "g")
    doc = json.loads((tmp_path / "g" / "graph.json").read_text())
    assert next(n for n in doc["nodes"] if n["name"] == "head_lif")["attrs"]["in_frac_bits"] == 16


def test_the_paper_setting_config():
    """configs/paper-sdt-cifar10-dvs.yaml: the SDT paper's Spike-driven Transformer-2-256 on 128x128 at T 16,
    every tokenizer stage pooled (the stage-3 pool on BN outputs), 64 tokens, 2.56 M parameters."""
    from hqflow.search.model import Spikformer, count_parameters

    cfg = load_config(CONFIGS / "paper-sdt-cifar10-dvs.yaml")
    m = cfg.model
    assert (m.family, m.img_size, m.embed_dim, m.depth, m.mlp_ratio, cfg.data.time_steps) == ("sdt", 128, 256, 2, 4, 16)
    assert m.pools == (True, True, True, True) and m.attn_threshold == 0.5 and cfg.data.dataset == "cifar10-dvs"
    topology = topology_of(m.__class__(**{**m.__dict__, "num_classes": 10}))
    assert topology.num_tokens == 64 and topology.step("patch_embed.pool3").inputs == ("patch_embed.proj_conv3",)
    assert count_parameters(Spikformer(cfg.replace("model", num_classes=10).model)) == 2_563_594


def test_the_attentions_additions_are_counted_as_such():
    """`hqflow cost`'s spike operations (Op.spike_ops): at the paper's setting (N 64, D 256, 16 heads, T 16, 2
    blocks) the SSA takes 2 N D hd additions a step, the SDSA N D (and 2 N D ANDs): 32 times fewer."""
    from hqflow.cost import spike_ops

    paper = load_config(CONFIGS / "paper.yaml").replace("model", num_classes=10)
    sdt = load_config(CONFIGS / "paper-sdt-cifar10-dvs.yaml").replace("model", num_classes=10)
    n, d, hd, t, blocks = 64, 256, 16, 16, 2
    ssa, sdsa = spike_ops(paper.model, t)["ssa"], spike_ops(sdt.model, t)["sdsa"]
    assert ssa == {"adds": blocks * 2 * n * d * hd * t, "updates": blocks * n * d * t}
    assert sdsa == {"adds": blocks * n * d * t, "ands": blocks * 2 * n * d * t, "updates": blocks * d * t}
    assert ssa["adds"] == 2 * hd * sdsa["adds"]
    assert spike_ops(sdt.model, t)["add"] == spike_ops(paper.model, t)["add"]  # the residual adds alike
