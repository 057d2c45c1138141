"""hqflow.ops: one definition per DeployGraph op; the backends' tables cover every op; the graph file
stores the figures the ops compute (value_max, x_max, logit_bits) and refuses stale ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hqflow import numerics, ops
from hqflow.errors import UserError
from hqflow.ir import FIELD_DTYPES, DeployGraph, Node, complete, make_node, validate
from hqflow.ops import OPS, op_for


def test_every_op_has_one_module_and_a_schema():
    assert set(OPS) == {"input", "conv_lif", "linear_lif", "maxpool", "add", "tokens", "ssa", "head", "conv_bn",
                        "linear_bn", "lif", "sdsa"}
    for name, op in OPS.items():
        assert op.name == name and isinstance(op.arity, int) and op.output
        assert type(op).__module__ == f"hqflow.ops.{name}"
        keys = [spec.key for spec in op.attrs]
        assert len(keys) == len(set(keys)), name
        for spec in op.attrs:  # a default lies within its own range
            if spec.default is not None:
                assert spec.lo <= spec.default and (spec.hi is None or spec.default <= spec.hi), (name, spec)
        for field in op.tensors:
            assert FIELD_DTYPES[field.field] == field.dtype
    # the windows are declared, no longer literals: conv 3x3 stride 1 pad 1, maxpool 3x3 stride 2 pad 1
    assert OPS["conv_lif"].defaults() == {"kernel_size": 3, "stride": 1, "padding": 1}
    assert OPS["maxpool"].defaults() == {"kernel_size": 3, "stride": 2, "padding": 1}


@pytest.mark.parametrize("op", ["conv_lif", "maxpool"])
def test_a_window_op_declares_its_window_once(op):
    """The op's Window gives its attributes (fixed to it, filled in by default) and the output side that
    torch computes for that window."""
    import torch

    window = OPS[op].window
    assert OPS[op].defaults() == dataclasses.asdict(window)
    assert [(spec.lo, spec.hi) for spec in OPS[op].attrs[:3]] == [(value, value) for value in
                                                                  dataclasses.astuple(window)]
    layer = torch.nn.MaxPool2d(window.kernel_size, window.stride, window.padding)
    sides = range(2, 14)
    torch_sides = [layer(torch.zeros(1, 1, side, side)).shape[-1] for side in sides]
    np.testing.assert_array_equal([window.out(side) for side in sides], torch_sides)
    other = ops.Window(window.kernel_size, window.stride + 1, window.padding)  # the control
    assert [other.out(side) for side in sides] != torch_sides


def test_op_for_names_an_unknown_op():
    node = Node("layer", "conv3d", ("input",), (4, 8, 8))
    with pytest.raises(UserError, match=r"node 'layer': unknown op 'conv3d' \(known: add, conv_bn, conv_lif,"):
        op_for(node)
    assert op_for(dataclasses.replace(node, op="conv_lif")) is OPS["conv_lif"]  # the control


def test_ops_are_found_by_discovery(tmp_path, monkeypatch):
    """A module of the ops package is an op: one Op subclass named as the module, found without a table;
    a module whose class is named otherwise, or that defines none, is refused naming the file."""
    package = tmp_path / "extra_ops"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shared.py").write_text("X = 1\n")
    (package / "double.py").write_text("from hqflow.ops.base import Op\n\nclass Double(Op):\n    name = 'double'\n"
                                       "    arity = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = ops.discover("extra_ops", [str(package)], shared=("shared",))
    assert list(found) == ["double"] and type(found["double"]).__name__ == "Double"
    (package / "misnamed.py").write_text("from hqflow.ops.base import Op\n\nclass Other(Op):\n    name = 'other'\n")
    with pytest.raises(ValueError, match=r"misnamed.py: an op module defines one Op subclass whose name is the "
                                         r"module's, 'misnamed'; found Other \(name 'other'\)"):
        ops.discover("extra_ops", [str(package)], shared=("shared",))
    (package / "misnamed.py").unlink()
    with pytest.raises(ValueError, match=r"shared.py: .* found none"):
        ops.discover("extra_ops", [str(package)])  # the control: shared is no op
    assert set(OPS) == {path.stem for path in Path(ops.__file__).parent.glob("*.py")} - {"__init__", "base", "common"}


def test_every_op_executes_itself():
    """The simulator has no table: each op carries its execution, its own execute or its neurons (Op.neurons,
    which the base class's execute fires); the base class without either refuses."""
    from hqflow.ops.base import Op

    for op in OPS.values():
        assert type(op).execute is not Op.execute or type(op).neurons is not Op.neurons, op.name
    assert type(OPS["lif"]).neurons is not Op.neurons and type(OPS["lif"]).execute is Op.execute  # fired by the base
    with pytest.raises(NotImplementedError):
        Op().execute(None, None)


def _small_graph(time_steps: int = 3) -> DeployGraph:
    """input [2, 6, 6] -> conv_lif [4, 6, 6] -> maxpool [4, 3, 3] -> add (pool + pool) -> tokens -> head [3],
    built by hand without any figure: complete() fills them in."""
    rng = np.random.default_rng(0)
    codes = {"w_int": rng.integers(0, 16, (4, 2, 3, 3)).astype(np.uint8)}
    lif = {"bias_int": rng.integers(-50, 50, 4), "thr_int": rng.integers(1, 2**12, 4), "sign": np.int8([1, -1, 1, 0])}
    head = {"w_sign": rng.choice(np.int8([-1, 1]), (3, 4)), "w_shift": rng.integers(0, 3, (3, 4)).astype(np.uint8),
            "bias_int": rng.integers(-1000, 1000, 3)}
    nodes = (Node("input", "input", (), (2, 6, 6), {"max_count": 7}),
             Node("conv", "conv_lif", ("input",), (4, 6, 6),
                  {"format": "uniform-4", "zero_point": 8, "frac_bits": 3 + time_steps, "bias_frac_bits": 3}),
             Node("pool", "maxpool", ("conv",), (4, 3, 3)),
             Node("sum", "add", ("pool", "pool"), (4, 3, 3)),
             Node("tokens", "tokens", ("sum",), (9, 4)),
             Node("head", "head", ("tokens",), (3,), {"format": "po2-3", "bias_frac_bits": 2, "num_tokens": 9}))
    tensors = {**{f"conv/{k}": v for k, v in {**codes, **lif}.items()}, **{f"head/{k}": v for k, v in head.items()}}
    return DeployGraph(nodes, tensors, time_steps, 3, {})


def test_complete_fills_in_what_the_ops_compute():
    bare = _small_graph()
    with pytest.raises(UserError, match="node 'input': value_max missing; the op computes 7"):
        validate(bare)  # the control: a bare graph has no figures
    graph = complete(bare)
    validate(graph)
    value_max = {node.name: node.value_max for node in graph.nodes}
    assert {k: v for k, v in value_max.items() if k != "head"} == {"input": 7, "conv": 1, "pool": 1, "sum": 2,
                                                                     "tokens": 2}
    conv, head = graph.node("conv"), graph.node("head")
    assert conv.attrs["x_max"] == 7 and (conv.attrs["kernel_size"], conv.attrs["padding"]) == (3, 1)
    w_eff = graph.w_eff(conv)
    bound = numerics.acc_bound(7, w_eff)
    assert conv.attrs["acc_bits"] == numerics.bits_for(-bound, bound)
    consts = numerics.LifConsts(*(graph.tensor("conv", f) for f in ("bias_int", "thr_int", "sign")), 6, 3)
    assert conv.attrs["v_bits"] == numerics.membrane_bits(-bound, bound, consts)
    # the head sums 9 tokens of values up to 2 over 3 steps
    assert head.attrs["x_max"] == 2 * 9 * 3
    head_bound = numerics.acc_bound(54, graph.w_eff(head)) << 2
    bias = graph.tensor("head", "bias_int")
    lo, hi = -head_bound + int(bias.min()), head_bound + int(bias.max())
    assert head.attrs["logit_bits"] == numerics.bits_for(lo, hi) and head.value_max == max(-lo, hi)


def test_the_simulator_stays_within_the_stored_value_max():
    from hqflow.sim.run import run

    graph = complete(_small_graph())
    frames = np.full((2, 3, 2, 6, 6), 7, np.int16)
    _, trace = run(graph, frames, trace=True)
    for node in graph.nodes:
        assert int(np.abs(trace[node.name]).max()) <= node.value_max, node.name
    assert int(trace["sum"].max()) == 2  # the bound is reached: it is the largest value, not a loose one


def test_a_stale_figure_is_refused():
    graph = complete(_small_graph())
    nodes = list(graph.nodes)
    nodes[3] = dataclasses.replace(nodes[3], value_max=3)  # sum: 1 + 1
    with pytest.raises(UserError, match="node 'sum': value_max 3; the op computes 2 .*: a stale or edited figure"):
        validate(dataclasses.replace(graph, nodes=tuple(nodes)))
    head = graph.nodes[-1]
    nodes = [*graph.nodes[:-1], dataclasses.replace(head, attrs={**head.attrs, "logit_bits": 64})]
    with pytest.raises(UserError, match="node 'head': attrs.logit_bits 64; the op computes"):
        validate(dataclasses.replace(graph, nodes=tuple(nodes)))


def test_wider_widths_are_kept_narrower_refused():
    graph = complete(_small_graph())
    conv = graph.node("conv")
    wide = make_node("conv_lif", "conv", [graph.nodes[0]], conv.shape, graph.time_steps,
                     {**conv.attrs, "acc_bits": 40}, graph.node_tensors("conv"))
    assert wide.attrs["acc_bits"] == 40
    validate(dataclasses.replace(graph, nodes=(graph.nodes[0], wide, *graph.nodes[2:])))
    narrow = dataclasses.replace(conv, attrs={**conv.attrs, "acc_bits": 3})
    with pytest.raises(UserError, match="node 'conv': attrs.acc_bits 3 cannot hold the accumulator range"):
        validate(dataclasses.replace(graph, nodes=(graph.nodes[0], narrow, *graph.nodes[2:])))


def test_the_saved_graph_stores_the_figures(tmp_path):
    import json

    from hqflow.ir import load_graph

    graph = complete(_small_graph())
    graph = dataclasses.replace(graph, meta={"dataset": "digits-dvs", "model": {"img_size": 6}})
    graph.save(tmp_path)
    doc = json.loads((tmp_path / "graph.json").read_text())
    assert all(isinstance(node["value_max"], int) for node in doc["nodes"])
    assert doc["nodes"][-1]["attrs"]["logit_bits"] == graph.nodes[-1].attrs["logit_bits"]
    loaded = load_graph(tmp_path)
    assert [n.value_max for n in loaded.nodes] == [n.value_max for n in graph.nodes]


def test_ops_need_only_numpy_and_the_core():
    import subprocess
    import sys

    code = ("import sys, hqflow.ops, hqflow.ir, hqflow.topology\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or "
            "m.startswith(('hqflow.search', 'hqflow.export', 'hqflow.sim'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert ops.INPUT_OP in OPS and ops.OUTPUT_OP in OPS
