"""Each op owns its hardware in the layer-sequential top: its SeqOp (export/rtl/seq_ops.py: module,
parameters, buffer, cycle formula) and its CoreModel (hqflow/fpga_cores.py: resources). The top, the
single-layer projects, the estimate and hqflow.fpga branch on no op's name, and an unknown op is a
UserError naming the node and the op (never zero resources). Fast, no Verilator or Yosys."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from conftest import GRAPH_CFG, mixed_format_model
from hqflow import fpga
from hqflow.cost import LayerShape, layer_shapes
from hqflow.errors import UserError
from hqflow.export.lower import lower
from hqflow.export.rtl import seq_ops, top
from hqflow.export.rtl.dev import layer
from hqflow.fpga_cores import FPGA_CORES, core_model, layer_core
from hqflow.ops import OPS
from hqflow.topology import spikformer

ROOT = Path(__file__).resolve().parents[1]
# the modules that dispatch through the registries: no op's name may appear in them as a string
# the code that runs, renders or costs a graph or a model by its ops (the ops' own tables excluded; the HLS
# writer's templates take the first and last node as "input" and "head")
DISPATCHERS = ("export/rtl/top.py", "export/rtl/dev/layer.py", "export/rtl/estimate.py", "hqflow/fpga.py", "sim/run.py",
               "export/lower.py", "search/model.py", "export/hls/dataflow.py",
               "export/hls/memory.py", "export/rtl/stream.py", "export/rtl/stream_project.py",
               "export/rtl/stream_estimate.py", "export/compare.py", "hqflow/ir.py", "hqflow/cost.py",
               "sim/metrics.py", "export/metrics.py")


@pytest.fixture(scope="module")
def graph():
    return lower(mixed_format_model(0), GRAPH_CFG)


@pytest.fixture(scope="module")
def table():
    return fpga.load_fpga_table()


def _with_op(graph, name: str, op: str):
    """`graph` with node `name`'s op replaced by `op`."""
    nodes = tuple(dataclasses.replace(n, op=op) if n.name == name else n for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)


@pytest.mark.parametrize("node", ["sps.conv1", "sps.pool0", "tokens", "blocks.0.attn.attn", "head"])
def test_unknown_op_is_a_user_error_naming_node_and_op(graph, table, node):
    bad = _with_op(graph, node, "relu")
    pattern = rf"node '{node}': unknown op 'relu'"
    with pytest.raises(UserError, match=pattern):
        top.plan_top(bad, 8)
    with pytest.raises(UserError, match=pattern):
        fpga.graph_resources(bad, table, 8)
    with pytest.raises(ValueError, match="no cycle formula for op 'relu'"):
        top.core_cycles("relu", {}, 0, False)


def test_unknown_op_in_a_topology_is_a_user_error():
    topology = spikformer(GRAPH_CFG.model)
    steps = tuple(dataclasses.replace(s, op="gelu") if s.name == "sps.add" else s for s in topology.steps)
    with pytest.raises(UserError, match=r"node 'sps.add': unknown op 'gelu'"):
        fpga.layer_input_bits(dataclasses.replace(topology, steps=steps), 4)


def test_registries_cover_every_op_and_agree():
    spikformer_ops = [op for op in OPS if op not in ("conv_bn", "linear_bn", "lif", "sdsa")]  # the reference's
    assert sorted(seq_ops.SEQ_OPS) == spikformer_ops and sorted(FPGA_CORES) == spikformer_ops
    for op in spikformer_ops:
        assert seq_ops.SEQ_OPS[op].op == op
        assert seq_ops.SEQ_OPS[op].has_core == FPGA_CORES[op].has_core, op  # no core: no resources either
    cores = [seq for seq in seq_ops.SEQ_OPS.values() if seq.has_core]
    assert len(seq_ops.SEQ_MODULES) == len(cores) and all(seq_ops.SEQ_MODULES[seq.module] is seq for seq in cores)
    assert sum(seq.frame for seq in seq_ops.SEQ_OPS.values()) == 1
    assert sum(seq.logits for seq in seq_ops.SEQ_OPS.values()) == 1
    with pytest.raises(ValueError, match="no cycle formula for op 'input'"):
        top.core_cycles("input", {}, 0, False)


def test_an_op_the_sequential_architecture_lacks_is_refused_by_name(graph, table, monkeypatch):
    """The layer-sequential reference may lack an op (a new op needs only the streaming cores): its top and
    its resource model refuse the node by name, and point at the streaming architecture."""
    monkeypatch.delitem(seq_ops.SEQ_OPS, "ssa")
    monkeypatch.delitem(FPGA_CORES, "ssa")
    with pytest.raises(UserError, match=r"node 'blocks.0.attn.attn': the layer-sequential architecture .* does not "
                       r"implement op 'ssa' \(it implements input, conv_lif,"):
        top.plan_top(graph)
    with pytest.raises(UserError, match=r"node 'blocks.0.attn.attn': the layer-sequential FPGA resource model"):
        fpga.graph_resources(graph, table, 8)
    monkeypatch.undo()
    assert top.plan_top(graph).cores and fpga.graph_resources(graph, table, 8)  # the control


def test_no_core_means_zero_resources_by_declaration(graph, table):
    res = fpga.graph_resources(graph, table, 8)
    for node in graph.nodes:
        if not core_model(node).has_core:
            assert res[node.name] == fpga.Resources(), node.name
        else:
            assert res[node.name].lut > 0, node.name
    plan = top.plan_top(graph, 8)
    assert [c.node for c in plan.cores] == [n.name for n in graph.nodes if seq_ops.seq_op(n).has_core]


def test_shape_and_op_dispatch_agree(graph):
    """A plan's layers come as LayerShapes (no op): layer_core finds the core graph_resources uses by op."""
    for node in graph.nodes:
        core = core_model(node)
        if core.weighted:
            assert layer_core(core.shape(graph, node)) is core, node.name
    keys = {s.name: layer_core(s).table_key for s in layer_shapes(GRAPH_CFG.model, 4)}
    assert keys["sps.conv0"] == "conv_lif" and keys["blocks.0.attn.q"] == "linear_lif" and keys["head"] == "head"
    with pytest.raises(UserError, match="0 weighted cores compute it"):
        layer_core(LayerShape("odd", "mlp", 4, 4, 0, 1, 1))


def test_spike_op_missing_from_the_table_is_an_error(graph, table, tmp_path):
    lacking = dataclasses.replace(table, spike_ops={k: v for k, v in table.spike_ops.items() if k != "maxpool"})
    with pytest.raises(UserError, match=r"spike_ops has no entry for op maxpool \(node 'sps.pool0'\)"):
        fpga.graph_resources(graph, lacking, 8)
    raw = yaml.safe_load(fpga.DEFAULT_TABLE.read_text())
    raw["spike_ops"]["tokens"] = {"fixed": {"lut": 3.0}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"t.yaml: spike_ops.tokens: the op has no core"):
        fpga.load_fpga_table(tmp_path / "t.yaml")


def test_single_layer_core_only_for_weighted_lif(graph):
    with pytest.raises(UserError, match="node sps.pool0: op maxpool, expected conv_lif or linear_lif"):
        layer.layer_parameters(graph, graph.node("sps.pool0"), 4, "f")
    params = layer.layer_parameters(graph, graph.node("sps.conv1"), 4, "f")
    assert params["ROM_FILE"] == '"f/weights.mem"' and params["P"] == 4


@pytest.mark.parametrize("path", DISPATCHERS)
def test_dispatchers_name_no_op(path):
    """No op's name as a string (a branch `node.op == "conv_lif"`, `op in ("ssa", ...)` would need one)."""
    tree = ast.parse((ROOT / path).read_text())
    named = [(node.lineno, node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in OPS]
    assert not named, f"{path} names ops: {named}"
