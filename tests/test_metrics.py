"""hqflow metrics (sim/metrics.py): NeuroBench's definitions counted by brute force on small layers, the
whole-model figures against the simulator's own trace, the command on a run and on an export, and the data
root a run recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.data import data_root_for, load_dataset
from hqflow.errors import UserError
from hqflow.export.lower import lower
from hqflow.ops import OPS, common
from hqflow.sim.metrics import metrics, static_metrics
from hqflow.sim.run import batches, run

from conftest import mixed_format_model

CFG = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                  "pools": [True, True, False, False], "num_classes": 10},
                        "data": {"dataset": "digits-dvs", "time_steps": 3}})


def _sparse(rng, shape, high, zero=0.5):
    return np.where(rng.random(shape) < zero, 0, rng.integers(-high, high + 1, shape)).astype(np.int64)


def test_conv_synops_by_brute_force():
    """Effective: every (output, tap) whose input and weight are both non-zero; dense: every tap inside the
    image (zero padding adds none), (3H - 2)(3W - 2) per channel pair for a 3x3 window."""
    rng = np.random.default_rng(0)
    x, w = np.abs(_sparse(rng, (2, 3, 2, 5, 4), 1)), _sparse(rng, (3, 2, 3, 3), 5)  # [T, B, C, H, W], [O, C, 3, 3]
    steps, batch, channels, height, width = x.shape
    effective = 0
    for t, b, o, c, i, j, di, dj in np.ndindex(steps, batch, 3, channels, height, width, 3, 3):
        y, z = i + di - 1, j + dj - 1
        if 0 <= y < height and 0 <= z < width and x[t, b, c, y, z] and w[o, c, di, dj]:
            effective += 1
    ops = common.conv_synops("c", x, w, padding=1)
    assert (ops.effective, ops.accumulate) == (effective, True)
    assert ops.dense == steps * batch * 3 * channels * (3 * height - 2) * (3 * width - 2)
    assert not common.conv_synops("c", 2 * x, w, padding=1).accumulate  # a count of 2 is a MAC's input


def test_linear_synops_by_brute_force():
    rng = np.random.default_rng(1)
    x, w = _sparse(rng, (2, 3, 4, 6), 3), _sparse(rng, (5, 6), 7)  # [T, B, N, C], [O, C]
    effective = sum(1 for index in np.ndindex(*x.shape) for o in range(5) if x[index] and w[o, index[-1]])
    ops = common.linear_synops("l", x, w)
    assert (ops.effective, ops.dense, ops.accumulate) == (effective, x.size * 5, False)


@pytest.fixture(scope="module")
def graph_and_data():
    graph = lower(mixed_format_model(0, CFG, beta=(0.5, 1.5)).eval(), CFG)
    frames = load_dataset("digits-dvs", "test", 3, 16)
    return graph, frames


def test_model_metrics_agree_with_the_simulator(graph_and_data):
    """The metrics' own run equals the simulator's: the accuracy, and every spiking node's spikes (the
    activation sparsity, each LIF being one node here); membrane updates between one per neuron and one per
    neuron and step; the dense synaptic operations of a linear layer T N C O per sample."""
    graph, frames = graph_and_data
    result = metrics(graph, batches(frames, 8, 20))
    nb, hq = result["neurobench"], result["hqflow"]
    spikes = outputs = correct = 0
    for x, labels in batches(frames, 8, 20):
        logits, trace = run(graph, x, trace=True)
        correct += int((logits.argmax(axis=1) == labels).sum())
        for node in graph.nodes:
            if OPS[node.op].spiking:
                spikes, outputs = spikes + int(trace[node.name].sum()), outputs + trace[node.name].size
    assert hq["samples"] == 20 and nb["classification_accuracy"] == correct / 20
    assert nb["activation_sparsity"] == pytest.approx(1 - spikes / outputs, abs=1e-12)
    neurons = outputs // graph.time_steps // 20
    assert neurons <= nb["membrane_updates"] <= neurons * graph.time_steps
    fc1 = graph.node("blocks.0.mlp.fc1")
    tokens, channels = graph.node(fc1.inputs[0]).shape
    layer = hq["synaptic_operations_by_layer"]["blocks.0.mlp.fc1"]
    assert layer["Dense"] == graph.time_steps * tokens * channels * fc1.shape[1]
    assert layer["Effective_MACs"] + layer["Effective_ACs"] <= layer["Dense"]
    attention = {name for name, entry in hq["synaptic_operations_by_layer"].items() if not entry["neurobench"]}
    assert attention == {"blocks.0.attn.attn.kv", "blocks.0.attn.attn.qkv"}
    total = hq["synaptic_operations_all"]
    assert total["Dense"] > nb["synaptic_operations"]["Dense"]
    assert set(nb) == {"footprint", "connection_sparsity", "activation_sparsity", "synaptic_operations",
                       "membrane_updates", "classification_accuracy"}


def test_footprint_counts_the_deployed_widths(graph_and_data):
    graph, _ = graph_and_data
    static = static_metrics(graph)
    weights = sum(graph.w_eff(n).size for n in graph.nodes if "format" in n.attrs)
    assert static["parameter_count"] == weights and static["footprint_fp32"] == 4 * weights
    assert static["footprint"] < static["footprint_fp32"]  # mixed formats of 2 to 8 bits and one fp32 layer
    head = graph.node("head")
    bits = graph.w_eff(head).size * 32 + graph.tensor("head", "bias_int").size * int(
        np.ceil(np.log2(np.abs(graph.tensor("head", "bias_int")).max() + 1)) + 1)
    assert head.attrs["format"] == "fp32" and static["footprint_by_layer"]["head"] == bits / 8


def test_metrics_command_on_a_run_and_an_export(tmp_path):
    from test_rtl_cli import make_run

    run_dir = make_run(tmp_path / "run")
    out = tmp_path / "m.json"
    result = CliRunner().invoke(main, ["metrics", str(run_dir), "--limit", "6", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "data root none recorded" in result.output and "synaptic_operations  Dense" in result.output
    saved = json.loads(out.read_text())
    assert saved["hqflow"]["samples"] == 6 and saved["hqflow"]["source"] == str(run_dir)
    exported = tmp_path / "export"
    assert CliRunner().invoke(main, ["export", str(run_dir), "-o", str(exported)]).exit_code == 0
    again = CliRunner().invoke(main, ["metrics", str(exported), "--limit", "6"])
    assert again.exit_code == 0 and again.output.splitlines()[1:] == result.output.splitlines()[1:-1]
    bad = CliRunner().invoke(main, ["metrics", str(tmp_path)])
    assert bad.exit_code == 2 and "neither an export folder (graph.json) nor a run" in bad.output
    (run_dir / "INCOMPLETE").write_text(json.dumps({"epochs_done": 0, "epochs": 1}))
    unfinished = CliRunner().invoke(main, ["metrics", str(run_dir)])
    assert unfinished.exit_code == 2 and "is an incomplete run (0 of 1 epochs done)" in unfinished.output


def test_the_data_root_a_run_recorded(tmp_path):
    assert data_root_for(None, None, "c.yaml") == (None, "none recorded")
    assert data_root_for(tmp_path, "/elsewhere", "c.yaml") == (str(tmp_path), f"{tmp_path} (--data-root)")
    assert data_root_for(None, str(tmp_path), "c.yaml") == (str(tmp_path), f"{tmp_path} (recorded in c.yaml)")
    with pytest.raises(UserError, match=r"c.yaml: data.data_root '/gone' no longer exists; pass --data-root"):
        data_root_for(None, "/gone", "c.yaml")


def test_commands_read_the_data_root_a_run_recorded(tmp_path, monkeypatch):
    """A DVS128 Gesture run (fabricated folder) recorded its data root: export (its test vectors), sim and
    metrics read it without --data-root and say so; once the folder is gone, each stops with one line."""
    import torch

    from hqflow.config import config_from_dict as make_config
    from hqflow.search.model import Spikformer

    from data_folders import make_gesture_root

    monkeypatch.setenv("HQFLOW_CACHE", str(tmp_path / "cache"))
    root = make_gesture_root(tmp_path / "data", splits=("Train", "Test"))
    cfg = make_config({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "num_classes": 11,
                                 "pools": [True, True, False, False]},
                       "data": {"dataset": "dvs128-gesture", "time_steps": 2, "data_root": str(root)}})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"config": cfg.to_dict(), "model": Spikformer(cfg.model).state_dict()}, run_dir / "checkpoint.pt")
    exported = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--target", "hls", "--tb-samples", "2",
                                       "-o", str(exported)])
    assert result.exit_code == 0, result.output
    assert f"test vectors from data root {root} (recorded in {run_dir}: config)" in result.output
    sim = CliRunner().invoke(main, ["sim", str(exported), "--limit", "4"])
    assert sim.exit_code == 0 and f"data root {root} (recorded in {exported / 'graph.json'})" in sim.output
    metrics_run = CliRunner().invoke(main, ["metrics", str(exported), "--limit", "4"])
    assert metrics_run.exit_code == 0 and "(recorded in" in metrics_run.output
    root.rename(tmp_path / "moved")
    gone = CliRunner().invoke(main, ["sim", str(exported)])
    assert gone.exit_code == 2 and gone.output.count("\n") == 1
    assert f"data.data_root '{root}' no longer exists; pass --data-root" in gone.output
    again = CliRunner().invoke(main, ["sim", str(exported), "--limit", "4", "--data-root", str(tmp_path / "moved")])
    assert again.exit_code == 0 and "(--data-root)" in again.output
