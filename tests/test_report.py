"""Figures, cost figures, input rates and the report of a search, on tiny hand-made inputs."""

import json

import numpy as np
import pytest
import torch
import yaml

from hqflow.config import Config, ModelConfig, config_from_dict
from hqflow.cost import layer_shapes, load_energy_table
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search import supernet
from hqflow.search.model import Spikformer
from hqflow.search.plots import (
    pareto_front,
    pick_layers,
    plot_cost_split,
    plot_pareto,
    plot_search,
    plot_weight_histograms,
)
from hqflow.search.report import cost_figures, make_report, measure_input_rates, plan_summaries

TINY = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)
T = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
U2, U4, FP32 = Candidate.parse("uniform-2"), Candidate.parse("uniform-4"), Candidate.parse("fp32")
NAMES = [s.name for s in layer_shapes(TINY, T)]


def assert_png(path, min_bytes=15_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes, f"{path.name}: {len(data)} bytes, expected a real figure"


def write_search_log(folder, steps=80):
    """A synthetic search: probabilities drift from uniform towards one format per layer."""
    cfg = Config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    k = len(cfg.search.candidates)
    rng = np.random.default_rng(0)
    lines = []
    for step in range(steps):
        probs = {}
        for i, name in enumerate(NAMES):
            logits = np.zeros(k)
            logits[i % k] = 4 * step / steps
            p = np.exp(logits) / np.exp(logits).sum()
            probs[name] = [round(float(v), 5) for v in p]
        lines.append(json.dumps({"step": step, "epoch": 1 + step // 20, "tau": 5 * (0.02 ** (step / (steps - 1))),
                                 "weight_ce": 2.3 - step / steps + 0.1 * rng.random(),
                                 "alpha_ce": 2.4 - step / steps + 0.1 * rng.random(),
                                 "energy_pct": 100 - 80 * step / steps, "probabilities": probs}))
    (folder / "search_log.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "search_log.jsonl"


def test_plot_search(tmp_path):
    log = write_search_log(tmp_path / "search")
    plot_search(log, tmp_path / "probabilities.png")
    assert_png(tmp_path / "probabilities.png", 40_000)
    plot_search(log, tmp_path / "two.png", layers=["sps.conv1", "head"])
    assert_png(tmp_path / "two.png")
    with pytest.raises(UserError, match="blocks.7.attn.q"):
        plot_search(log, tmp_path / "bad.png", layers=["blocks.7.attn.q"])
    assert not (tmp_path / "bad.png").exists()


def test_pick_layers_spreads_over_the_model():
    assert pick_layers(NAMES) == ["sps.conv0", "sps.rpe", "blocks.0.attn.q", "blocks.0.attn.v",
                                  "blocks.0.mlp.fc1", "head"]
    # two more: the first and last of the others, in model order
    assert pick_layers(NAMES, 8) == ["sps.conv0", "sps.conv1", "sps.rpe", "blocks.0.attn.q", "blocks.0.attn.v",
                                     "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "head"]


def test_other_plots(tmp_path):
    table = load_energy_table()
    summaries = plan_summaries(TINY, T, dict.fromkeys(NAMES, U2) | {"head": FP32}, table)
    plot_cost_split(summaries["fp32"], summaries["plan"], tmp_path / "split.png")
    assert_png(tmp_path / "split.png")
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (64, 16)).astype(np.float32)
    pairs = {"blocks.0.attn.q": (w, np.round(w / 0.05).clip(-2, 1) * 0.05), "head": (w, w)}
    plot_weight_histograms(pairs, tmp_path / "weights.png", {"blocks.0.attn.q": "uniform-2", "head": "fp32"})
    assert_png(tmp_path / "weights.png")
    points = [{"lambda": lam, "accuracy": acc, "energy_pct": e, "avg_weight_bits": b}
              for lam, acc, e, b in [(0.1, 0.9, 30, 6), (0.5, 0.88, 10, 3), (1, 0.8, 12, 3.5), (2, 0.7, 4, 2)]]
    plot_pareto(points, tmp_path / "pareto.png", {"accuracy": 0.92, "energy_pct": 100.0})
    assert_png(tmp_path / "pareto.png")


def test_pareto_front():
    pts = [{"lambda": i, "energy_pct": e, "accuracy": a}
           for i, (e, a) in enumerate([(50, 0.90), (10, 0.85), (12, 0.80), (5, 0.70), (10, 0.84), (60, 0.90)])]
    assert [p["lambda"] for p in pareto_front(pts)] == [3, 1, 0]


def test_cost_figures_all_uniform2():
    """Every layer uniform-2: 2.0 bits, 16x, storage 6.25 %; energy by hand from the 45 nm table."""
    table = load_energy_table()
    fig = cost_figures(plan_summaries(TINY, T, dict.fromkeys(NAMES, U2), table))
    assert fig["avg_weight_bits"] == 2.0
    assert fig["compression_x"] == 16.0
    assert fig["storage"]["pct"] == pytest.approx(6.25, abs=1e-12)
    assert fig["storage"]["x"] == pytest.approx(16.0, abs=1e-12)
    # by hand: D 16 -> channels 2, 2, 4, 8, 16; 16x16 px, pools after stages 0 and 1 -> 4x4 = 16 tokens
    convs = [(2, 2, 256), (2, 4, 64), (4, 8, 16), (8, 16, 16), (16, 16, 16)]  # c_in, c_out, positions
    linears = [(16, 16, 16)] * 4 + [(16, 64, 16), (64, 16, 16), (16, 10, 1)]
    params = [ci * co * 9 for ci, co, _ in convs] + [ci * co for ci, co, _ in linears]
    macs = [T * n * p for (_, _, n), p in zip(convs + linears, params)]
    e_u2 = sum(macs) * (3.1 * (2 / 32) ** 2 + 0.1) + sum(params) * 2 * 20.3125
    e_fp32 = sum(macs) * (3.7 + 0.9) + sum(params) * 32 * 20.3125
    assert fig["energy"]["pct"] == pytest.approx(100 * e_u2 / e_fp32, rel=1e-12)
    assert fig["energy"]["uj"] == pytest.approx(e_u2 * 1e-6, rel=1e-12)
    assert [r["macs"] for r in fig["layers"]] == macs
    assert sum(fig["storage"]["pct_by_group"].values()) == pytest.approx(6.25)
    assert sum(fig["energy"]["share_by_group"].values()) == pytest.approx(100)
    # q, k, v, proj have one shape and one format: a quarter each
    for part in ("energy", "storage"):
        assert fig["attention_shares"][part] == pytest.approx(dict.fromkeys(("q", "k", "v", "proj"), 25.0))
    assert fig["energy"]["pct_by_group"]["head"] == pytest.approx(
        100 * (T * 160 * (3.1 / 256 + 0.1) + 160 * 2 * 20.3125) / e_fp32)


def test_cost_figures_mixed_and_sparse():
    table = load_energy_table()
    formats = dict.fromkeys(NAMES, U4) | {"head": FP32}
    p = {s.name: s.params for s in layer_shapes(TINY, T)}
    fig = cost_figures(plan_summaries(TINY, T, formats, table, dict.fromkeys(NAMES, 1.0)), dict.fromkeys(NAMES, 1.0))
    total = sum(p.values())
    assert fig["avg_weight_bits"] == pytest.approx(((total - p["head"]) * 4 + p["head"] * 32) / total, rel=1e-12)
    assert fig["energy_sparse"]["pct"] == pytest.approx(fig["energy"]["pct"], rel=1e-12)  # rate 1: every MAC
    assert fig["energy_sparse"]["pct_of_dense_fp32"] == pytest.approx(fig["energy"]["pct"], rel=1e-12)
    half = cost_figures(plan_summaries(TINY, T, formats, table, dict.fromkeys(NAMES, 0.5)), dict.fromkeys(NAMES, 0.5))
    plan, ref = half["energy_sparse"]["uj"], half["energy_sparse"]["fp32_uj"]
    mem = (total - p["head"]) * 4 * 20.3125e-6 + p["head"] * 32 * 20.3125e-6
    assert plan - mem == pytest.approx((fig["energy"]["uj"] - mem) / 2, rel=1e-12)  # compute halves, memory stays
    assert half["energy_sparse"]["pct"] == pytest.approx(100 * plan / ref, rel=1e-12)
    assert {r["input_rate"] for r in half["layers"]} == {0.5}


def test_measure_input_rates():
    torch.manual_seed(0)
    model = Spikformer(TINY)
    dense = [(torch.rand(3, T, 2, 16, 16) + 0.01, torch.zeros(3))]
    rates = measure_input_rates(model, dense)
    assert list(rates) == NAMES
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert rates["sps.conv0"] == 1.0
    x = torch.zeros(2, T, 2, 16, 16)
    x.view(-1)[torch.randperm(x.numel())[:301]] = 3.0
    assert measure_input_rates(model, [(x, None)] * 3)["sps.conv0"] == 301 / x.numel()
    # only max_batches batches count: a dense batch after the first is ignored
    assert measure_input_rates(model, [(x, None), dense[0]], max_batches=1)["sps.conv0"] == 301 / x.numel()


def test_missing_search_folder(tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        make_report(tmp_path / "nowhere", progress=False)


def test_make_report(tmp_path):
    """A hand-made search folder: a uniform-2 plan finetuned (QAT), an fp32 run found by source.json."""
    cfg = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                      "pools": [True, True, False, False], "num_classes": 10},
                            "data": {"time_steps": T}, "train": {"batch_size": 16}})
    search, fp32 = tmp_path / "l0.5", tmp_path / "fp32"
    for folder, acc in ((fp32, 0.9), (search / "qat", 0.85)):
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.1}) + "\n"
                                              + json.dumps({"epoch": 2, "test_acc": acc}) + "\n")
    (search / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (search / "source.json").write_text(json.dumps({"init": str(fp32)}))
    plan = QuantPlan(tuple(LayerPlan(n, U2) for n in NAMES), (FP32, U2), 0.5)
    plan.save(search / "plan.json")
    model = supernet.apply_formats(Spikformer(cfg.model), plan.formats())
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()},
               search / "qat" / "checkpoint.pt")

    r = make_report(search, progress=False)
    out = search / "report"
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "cost_split.png", "weights.png"}
    assert_png(out / "cost_split.png")
    assert_png(out / "weights.png")
    saved = json.loads((out / "report.json").read_text())
    assert saved == {k: v for k, v in r.items() if k != "markdown"}
    assert r["accuracy"] == {"fp32": 0.9, "quantized": 0.85, "quantized_source": "qat",
                             "drop_points": pytest.approx(5.0)}
    assert (r["avg_weight_bits"], r["compression_x"]) == (2.0, 16.0)
    assert r["storage"]["pct"] == pytest.approx(6.25)
    assert r["fp32_dir"] == str(fp32)
    assert all(0.0 <= row["input_rate"] <= 1.0 for row in r["layers"])
    assert r["energy_sparse"]["pct_of_dense_fp32"] <= r["energy"]["pct"]
    text = (out / "report.md").read_text()
    assert "| blocks.0.attn.q | uniform-2 |" in text and "16.0x" in text
    assert r["selection"] is None  # a QAT run without selection.json: its last epoch

    # `hqflow report`: a QAT run's selection in the accuracy table, its integer model's metrics as a section
    selection = {"kept": "QAT epoch 2", "epoch": 2, "val_acc": 0.5, "val_loss": 1.0, "test_acc": 0.8,
                 "searched": {"epoch": 0, "val_acc": 0.4, "val_loss": 1.5, "test_acc": 0.7},
                 "best_qat_epoch": {"epoch": 2, "val_acc": 0.5, "val_loss": 1.0, "test_acc": 0.8}}
    (search / "qat" / "selection.json").write_text(json.dumps(selection))
    from hqflow.export.metrics import report

    r = report(search)
    assert r["accuracy"]["quantized"] == 0.8 and r["accuracy"]["quantized_source"] == "qat, kept: QAT epoch 2"
    text = (out / "report.md").read_text()
    assert "| searched weights (QAT epoch 0): validation / test accuracy | | 40.00 % / 70.00 % |  |" in text
    assert "| best QAT epoch (2): validation / test accuracy | | 50.00 % / 80.00 % | kept |" in text
    measured = json.loads((out / "metrics.json").read_text())
    assert measured == r["metrics"] and measured["hqflow"]["samples"] == 359  # the whole test split
    assert "## NeuroBench metrics of the integer model" in text and "| sps.conv0 |" in text


def test_sweep_collects_points(tmp_path, monkeypatch):
    """sweep with the search and QAT replaced by stand-ins: folders, sweep.json, pareto.png."""
    from hqflow.search import quant_search as searching
    from hqflow.search.sweep import sweep

    fp32 = tmp_path / "fp32"
    fp32.mkdir()
    (fp32 / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.9}) + "\n")
    calls = []
    SWEEP_CFG = Config().replace("model", **{f: getattr(TINY, f) for f in ("img_size", "embed_dim", "num_heads",
                                                                          "depth", "pools", "num_classes")})

    def fake_search(cfg, out, init=None, force=False, progress=True, **devices):
        lam = cfg.search.hw_lambda
        calls.append((lam, out.name, init))
        out.mkdir(parents=True)
        summary = {"energy_pct": 20 / (1 + lam), "storage_pct": 10 / (1 + lam), "avg_weight_bits": 4 / (1 + lam)}
        QuantPlan(tuple(LayerPlan(n, U2) for n in NAMES), (U2,), lam, summary).save(out / "plan.json")
        return [searching.SearchEpoch(1, 0.1, 1.0, 1.0, 50.0, 0.8 - lam / 10, 0, 0, 1.0)]

    def fake_finetune(plan_path, out, force=False, progress=True, epochs=None, **devices):
        lam = json.loads(plan_path.read_text())["hw_lambda"]
        return [type("M", (), {"test_acc": 0.85 - lam / 10 if lam != 1 else 0.5})()]

    monkeypatch.setattr(searching, "run_search", fake_search)
    monkeypatch.setattr(searching, "run_finetune", fake_finetune)
    points = sweep(SWEEP_CFG, fp32, [0.5, 1.0, 3.0], tmp_path / "sweep", progress=False)
    assert calls == [(0.5, "lambda_0.5", fp32), (1.0, "lambda_1", fp32), (3.0, "lambda_3", fp32)]
    assert [p["accuracy"] for p in points] == pytest.approx([0.75, 0.7, 0.5])
    assert {p["accuracy_source"] for p in points} == {"search, before finetune"}
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["fp32"]["accuracy"] == 0.9 and saved["points"] == points
    assert_png(tmp_path / "sweep" / "pareto.png")

    points = sweep(SWEEP_CFG, fp32, [0.5, 1.0, 3.0], tmp_path / "qat", finetune_epochs=2, progress=False)
    assert [p["accuracy"] for p in points] == pytest.approx([0.8, 0.5, 0.55])
    assert [p["pareto"] for p in points] == [True, False, True]  # lambda 1 is beaten by lambda 3
    with pytest.raises(UserError, match="repeat"):
        sweep(SWEEP_CFG, fp32, [0.5, 0.5], tmp_path / "again", progress=False)
