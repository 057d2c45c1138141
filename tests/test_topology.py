"""The topology is the one description of the Spikformer: the torch model, the cost model, the
lowering and the comparison all follow it, for any depth, pool pattern and width."""

import dataclasses

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import neuron

from hqflow.config import ModelConfig
from hqflow.cost import layer_shapes
from hqflow.search.model import Spikformer, quant_layers
from hqflow.ops import OPS
from hqflow.topology import GROUPS, INPUT, TOKENS, Topology, WeightLayer, spikformer

CONFIGS = [
    ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10),
    ModelConfig(img_size=16, embed_dim=24, num_heads=3, depth=2, pools=(False, True, False, True), num_classes=5),
    ModelConfig(img_size=8, embed_dim=32, num_heads=4, depth=3, mlp_ratio=2, pools=(False,) * 4, num_classes=3),
    ModelConfig(img_size=32, embed_dim=16, num_heads=1, depth=1, pools=(True,) * 4, num_classes=2),
]
IDS = ["depth1", "depth2-pools-0101", "depth3-no-pools", "all-pools"]


def mismatches(topology: Topology, model: torch.nn.Module) -> list[str]:
    """Where the model's conv / linear / BN / LIF modules differ from the topology's weight layers."""
    modules = dict(model.named_modules())
    found = []
    layers = quant_layers(model)
    if list(layers) != [layer.name for layer in topology.layers]:
        return [f"layers {list(layers)} != {[layer.name for layer in topology.layers]}"]
    for layer in topology.layers:
        m = layers[layer.name]
        if layer.op == "conv_lif":
            got = (type(m), m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None)
            want = (torch.nn.Conv2d, layer.c_in, layer.c_out, (layer.kernel_size,) * 2, (layer.stride,) * 2,
                    (layer.padding,) * 2, layer.bias)
        else:
            got = (type(m), m.in_features, m.out_features, m.bias is not None)
            want = (torch.nn.Linear, layer.c_in, layer.c_out, layer.bias)
        if got != want:
            found.append(f"{layer.name}: {got} != {want}")
        if layer.bn is not None:
            bn = modules.get(layer.bn)
            bn_type = torch.nn.BatchNorm2d if layer.op == "conv_lif" else torch.nn.BatchNorm1d
            if type(bn) is not bn_type or bn.num_features != layer.c_out:
                found.append(f"{layer.bn}: {bn}")
    lifs = [n for n, m in model.named_modules() if isinstance(m, neuron.BaseNode)]
    if lifs != list(topology.lif_thresholds()):
        found.append(f"LIF modules {lifs} != {list(topology.lif_thresholds())}")
    for name, theta in topology.lif_thresholds().items():
        if name in modules and modules[name].v_threshold != theta:
            found.append(f"{name}: threshold {modules[name].v_threshold} != {theta}")
    return found


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_model_modules_are_the_topology(cfg):
    topology = spikformer(cfg)
    model = Spikformer(cfg)
    assert mismatches(topology, model) == []
    # control: another depth, another width
    assert mismatches(spikformer(dataclasses.replace(cfg, depth=cfg.depth + 1)), model) != []
    assert mismatches(spikformer(dataclasses.replace(cfg, embed_dim=2 * cfg.embed_dim)), model) != []
    # every state_dict entry belongs to a step's module
    owners = {m for step in topology.steps for m in step.modules}
    assert {key.rpartition(".")[0] for key in model.state_dict()} <= owners


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=IDS[:2])
def test_step_shapes_are_the_forward_shapes(cfg):
    """Each step's output shape per sample and step is what the torch forward pass computes."""
    model = Spikformer(cfg).eval()
    batch, time_steps = 2, 3
    x = torch.rand(batch, time_steps, 2, cfg.img_size, cfg.img_size) * 3
    with torch.no_grad():
        for step in model.topology.steps:
            out = model.run(x, until=step.name)
            want = (batch, *step.shape) if step.op == "head" else (time_steps, batch, *step.shape)
            assert tuple(out.shape) == want, step.name
        with pytest.raises(KeyError, match="no step 'sps.conv9'"):
            model.run(x, until="sps.conv9")
    assert model.topology.step(TOKENS).shape == (cfg.num_tokens, cfg.embed_dim)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_steps_are_a_graph_in_order(cfg):
    """Inputs precede their readers, names are unique, groups and positions as the cost model counts."""
    topology = spikformer(cfg)
    seen = set()
    for step in topology.steps:
        assert set(step.inputs) <= seen and step.name not in seen, step.name
        seen.add(step.name)
    assert topology.steps[0].name == INPUT and topology.steps[-1].name == "head"
    assert topology.grid == cfg.grid and topology.num_tokens == cfg.num_tokens
    assert {layer.group for layer in topology.layers} == set(GROUPS)
    for layer in topology.layers:
        if layer.op == "conv_lif":
            assert layer.positions == layer.shape[1] * layer.shape[2]
        elif layer.op == "linear_lif":
            assert layer.positions == cfg.num_tokens
    for step in topology.steps:  # the windows are the ops' own (hqflow.ops), not spelled again
        if OPS[step.op].window is not None:
            assert step.window == OPS[step.op].window, step.name
    pools = [step.name for step in topology.steps if step.op == "maxpool"]
    assert pools == [f"sps.pool{i}" for i, pool in enumerate(cfg.pools) if pool]
    stages = topology.layers[:4]
    assert [layer.pool for layer in stages] == [f"sps.pool{i}" if pool else None for i, pool in enumerate(cfg.pools)]


def test_depth_and_pools_change_only_the_topology():
    """A deeper model adds whole blocks; a pool pattern changes positions, not layers."""
    base = CONFIGS[0]
    shallow, deep = spikformer(base), spikformer(dataclasses.replace(base, depth=3))
    extra = [s.name for s in deep.steps if s.name not in {t.name for t in shallow.steps}]
    assert extra == [s.name.replace("blocks.0.", f"blocks.{b}.") for b in (1, 2) for s in shallow.steps
                     if s.name.startswith("blocks.0.")]
    repooled = spikformer(dataclasses.replace(base, pools=(False, True, False, True)))
    same = [(l.name, l.c_in, l.c_out) for l in shallow.layers]
    assert [(l.name, l.c_in, l.c_out) for l in repooled.layers] == same
    assert [l.positions for l in repooled.layers] != [l.positions for l in shallow.layers]


def _without_rpe(topology: Topology) -> Topology:
    """The tokenizer without its RPE conv and residual add: tokens read the last conv stage."""
    last = next(s for s in topology.steps if s.name == "sps.rpe").source
    steps = tuple(dataclasses.replace(s, inputs=(last,)) if s.name == TOKENS else s for s in topology.steps
                  if s.name not in ("sps.rpe", "sps.add"))
    return dataclasses.replace(topology, steps=steps)


def test_another_topology_needs_no_other_change():
    """A tokenizer without RPE: the torch model and the cost model follow the edited topology alone."""
    from conftest import counted_macs

    cfg = CONFIGS[1]
    topology = _without_rpe(spikformer(cfg))
    model = Spikformer(cfg, topology).eval()
    assert "sps.rpe" not in dict(model.named_modules()) and mismatches(topology, model) == []
    x = torch.rand(1, 3, 2, cfg.img_size, cfg.img_size) * 3  # one sample, T = 3
    counted = counted_macs(model, x)
    assert counted == {s.name: s.macs for s in layer_shapes(topology, 3)}
    assert counted != {s.name: s.macs for s in layer_shapes(cfg, 3)}  # control: the config's own has the RPE
    with torch.no_grad():
        assert set(model.run(x, until=TOKENS).unique().tolist()) <= {0.0, 1.0}  # no residual: spikes only
        assert model(x).shape == (1, cfg.num_classes)


def test_lif_modules_are_the_spiking_steps():
    topology = spikformer(CONFIGS[1])
    lifs = topology.lif_modules()
    spiking = [s.name for s in topology.steps if s.op in ("conv_lif", "linear_lif", "ssa")]
    assert list(lifs) == spiking
    assert lifs["sps.conv2"] == "sps.lif2" and lifs["sps.rpe"] == "sps.rpe_lif"
    assert lifs["blocks.1.attn.attn"] == "blocks.1.attn.attn_lif" and lifs["blocks.0.mlp.fc1"] == "blocks.0.mlp.fc1_lif"
    thresholds = topology.lif_thresholds()
    assert thresholds["blocks.1.attn.attn_lif"] == CONFIGS[1].attn_threshold
    assert thresholds["sps.lif0"] == CONFIGS[1].v_threshold
    assert isinstance(topology.step("head"), WeightLayer) and topology.step("head").bias
    with pytest.raises(KeyError, match="no step 'sps.conv4'"):
        topology.step("sps.conv4")


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=IDS[:3])
def test_lowered_graph_is_the_topology(cfg):
    """The lowering's nodes are the topology's steps: names, ops, inputs, shapes."""
    from hqflow.config import Config
    from hqflow.export.lower import lower
    from hqflow.search.supernet import random_quantized_model

    full = Config().replace("model", **{k: getattr(cfg, k) for k in ("img_size", "embed_dim", "num_heads", "depth",
                                                                      "mlp_ratio", "pools", "num_classes")})
    graph = lower(random_quantized_model(full.model, seed=0), full.replace("data", time_steps=2))
    nodes = [(n.name, n.op, tuple(n.inputs), tuple(n.shape)) for n in graph.nodes]
    steps = [(s.name, s.op, s.inputs, s.shape) for s in spikformer(full.model).steps]
    assert nodes == steps
    np.testing.assert_array_equal([n.shape[0] for n in graph.nodes if n.op == "conv_lif"],
                                  [l.c_out for l in spikformer(full.model).layers if l.op == "conv_lif"])


def test_the_torch_side_covers_every_op(monkeypatch):
    """TORCH_OPS (search/layers.py: modules, forward, lowering rule) covers every op the topology emits (all
    of hqflow.ops); an op added without its torch side fails when search/layers.py is imported."""
    import importlib

    import hqflow.search.layers as layers

    emitted = {step.op for cfg in CONFIGS for step in spikformer(cfg).steps}
    assert emitted <= set(layers.TORCH_OPS) == set(OPS)
    monkeypatch.setitem(OPS, "conv3d", OPS["conv_lif"])
    with pytest.raises(ValueError, match=r"the torch model and its lowering \(.*\) has no implementation of op 'conv3d'"):
        importlib.reload(layers)
    monkeypatch.undo()
    importlib.reload(layers)  # the control: the ops as shipped


def test_another_topology_lowers_and_agrees():
    """The tokenizer without RPE: the lowering follows the edited topology alone, and the simulator
    agrees with the torch model built from it."""
    from hqflow.config import Config
    from hqflow.export.compare import compare
    from hqflow.export.lower import lower
    from hqflow.numerics import Candidate
    from hqflow.search import supernet
    from hqflow.sim.run import run

    sizes = {key: getattr(CONFIGS[0], key) for key in ("img_size", "num_heads", "depth", "pools", "num_classes")}
    cfg = Config().replace("model", **sizes, embed_dim=32).replace("data", time_steps=3)
    formats = tuple(Candidate.parse(f) for f in ("uniform-4", "po2z-4", "uniform-8"))
    # weights and BN statistics to reuse (wide enough BN ranges that spikes reach the encoder)
    full = supernet.random_quantized_model(cfg.model, formats, 1, gamma=(-0.5, 1.5), beta=(-0.2, 0.8), mean=(-0.5, 0.5))
    topology = _without_rpe(spikformer(cfg.model))
    model = Spikformer(cfg.model, topology)
    supernet.apply_formats(model, {name: layer.candidates[0] for name, layer in supernet.weight_layers(full).items()
                                   if name in {step.name for step in topology.layers}})
    model.load_state_dict({key: value for key, value in full.state_dict().items() if key in model.state_dict()})
    graph = lower(model.eval(), cfg)
    assert [(n.name, n.op, tuple(n.inputs), tuple(n.shape)) for n in graph.nodes] == [
        (s.name, s.op, s.inputs, s.shape) for s in topology.steps]
    assert graph.node(TOKENS).inputs == ("sps.conv3",) and graph.node(TOKENS).value_max == 1  # no residual add
    frames = np.random.default_rng(0).poisson(0.7, (4, 3, 2, cfg.model.img_size, cfg.model.img_size))
    frames = frames.astype(np.int16)
    result = compare(graph, model, [(frames, np.zeros(4, np.int64))], progress=False)
    assert min(result.spike_agreement().values()) > 0.99 and result.prediction_agreement == 1.0
    _, trace = run(graph, frames, trace=True)
    assert 0 < trace["blocks.0.mlp.fc1"].mean() < 1  # real spiking activity


def test_an_op_without_a_forward_is_refused_at_once():
    topology = spikformer(CONFIGS[0])
    steps = tuple(dataclasses.replace(s, op="gelu") if s.name == "sps.add" else s for s in topology.steps)
    with pytest.raises(ValueError, match="no forward for step 'sps.add' \\(op 'gelu'\\)"):
        Spikformer(CONFIGS[0], dataclasses.replace(topology, steps=steps))
    Spikformer(CONFIGS[0], topology)  # the control
