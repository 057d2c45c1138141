"""`hqflow figures` (the paper's Fig. 3 and Fig. 5) and `hqflow table` (Table 1) on tiny fabricated runs."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import config_from_dict
from hqflow.cost import layer_shapes
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search import supernet
from hqflow.search.figures import default_layer, make_figures, measure_firing_rates
from hqflow.search.model import Spikformer
from hqflow.search.plots import total_loss
from hqflow.search.table import collect, to_csv, to_markdown

T = 2
CFG = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                  "pools": [True, True, False, False], "num_classes": 10},
                        "data": {"time_steps": T}, "train": {"batch_size": 8}})
NAMES = [s.name for s in layer_shapes(CFG.model, T)]
CANDS = ("fp32", "po2-2", "uniform-2", "uniform-4")
PNG = b"\x89PNG\r\n\x1a\n"


def _png(path, min_bytes=10_000):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, path


def fake_search(folder, lam: float, formats: dict[str, str], acc: float, summary: dict, steps: int = 30):
    """A finished search folder with a finished QAT run: config, plan (with `summary`), search log,
    metrics, QAT checkpoint of the plan's model (random weights)."""
    cfg = CFG.replace("search", hw_lambda=lam, candidates=CANDS)
    (folder / "qat").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    plan = QuantPlan(tuple(LayerPlan(n, Candidate.parse(formats.get(n, "uniform-4"))) for n in NAMES),
                     tuple(Candidate.parse(c) for c in CANDS), lam, summary)
    plan.save(folder / "plan.json")
    lines = []
    for step in range(steps):
        probs = {n: [0.25] * 4 for n in NAMES}
        probs["blocks.0.attn.q"] = list(np.round(np.exp([0, step / 10, 0, 0]) / np.exp([0, step / 10, 0, 0]).sum(), 5))
        lines.append(json.dumps({"step": step, "epoch": 1, "tau": 1.0, "weight_ce": 2.0, "alpha_ce": 2.0 - step / steps,
                                 "energy_pct": 50.0 - step, "probabilities": probs}))
    (folder / "search_log.jsonl").write_text("\n".join(lines) + "\n")
    for f, a in ((folder, 0.1), (folder / "qat", acc)):
        (f / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": a}) + "\n")
    torch.manual_seed(0)
    model = supernet.apply_formats(Spikformer(cfg.model), plan.formats())
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()},
               folder / "qat" / "checkpoint.pt")
    shutil.copy(folder / "qat" / "checkpoint.pt", folder / "checkpoint.pt")
    return folder


SUMMARY = {"energy_pct": 7.5, "storage_pct": 6.25, "avg_weight_bits": 2.5, "energy_table": "45nm"}
QKV = {"blocks.0.attn.q": "po2-2", "blocks.0.attn.k": "uniform-2", "blocks.0.attn.v": "uniform-4",
       "blocks.0.attn.proj": "fp32"}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A sweep of two lambdas (sweep.json, lambda_<l>/ folders) and an fp32 reference."""
    root = tmp_path_factory.mktemp("figures") / "sweep"
    fake_search(root / "lambda_0.5", 0.5, QKV, 0.8, SUMMARY)
    fake_search(root / "lambda_2", 2.0, dict.fromkeys(QKV, "uniform-2"), 0.7,
                {"energy_pct": 3.0, "storage_pct": 6.0, "avg_weight_bits": 2.0})
    points = [{"lambda": 0.5, "accuracy": 0.8, "accuracy_source": "qat", "dir": "elsewhere"},
              {"lambda": 2.0, "accuracy": 0.7, "accuracy_source": "qat", "dir": "elsewhere"}]
    (root / "sweep.json").write_text(json.dumps({"schema_version": 1, "points": points,
                                                 "fp32": {"accuracy": 0.9, "dir": "fp32"}}))
    return root


def test_default_layer():
    assert default_layer(["blocks.0.attn.q", "blocks.1.attn.q", "head"])[0] == "blocks.1.attn.q"
    layer, note = default_layer(["sps.conv0", "blocks.0.attn.q", "blocks.0.attn.k", "head"])
    assert layer == "blocks.0.attn.q" and "no second block" in note


def test_total_loss_is_ce_plus_lambda_energy():
    records = [{"alpha_ce": 1.5, "energy_pct": 40.0}, {"alpha_ce": 1.0, "energy_pct": 20.0, "fpga_pct": 10.0}]
    np.testing.assert_allclose(total_loss(records, 0.5), [1.5 + 0.2, 1.0 + 0.05])  # fpga cost when searched with it
    np.testing.assert_allclose(total_loss(records, 0.0), [1.5, 1.0])


def test_firing_rates_are_the_lif_outputs(sweep_dir):
    """The hooks' count equals the mean of the q / k / v / proj steps' outputs (the LIF spikes)."""
    from hqflow.search.checkpoint import load_checkpoint

    _, model, _ = load_checkpoint(sweep_dir / "lambda_0.5" / "qat")
    torch.manual_seed(1)
    for m in model.modules():  # random BN shifts: every part fires, each at its own rate
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.bias.data.uniform_(0.0, 1.5)
    x = (torch.rand(3, T, 2, 16, 16) < 0.3).float() * 2
    counts = measure_firing_rates(model, [(x, None)])
    assert set(counts) == {f"blocks.0.attn.{p}" for p in ("q", "k", "v", "proj")}
    with torch.no_grad():
        for name, (spikes, total) in counts.items():
            out = model.run(x, until=name)
            assert total == out.numel() and spikes == int(out.sum())
    assert len({s for s, _ in counts.values()}) > 1  # the parts differ: not one copied number


def test_figures_of_a_search(sweep_dir, tmp_path):
    run = sweep_dir / "lambda_0.5"
    r = make_figures(run, out_dir=tmp_path / "f")
    out = tmp_path / "f"
    assert sorted(p.name for p in out.iterdir()) == sorted(r["files"] + ["figures.json"])
    assert set(r["files"]) == {"fig3_search.png", "fig5_weights.png", "fig5_formats.png",
                               "fig5_format_shares.png", "fig5_firing_rates.png"}
    for name in r["files"]:
        _png(out / name)
    saved = json.loads((out / "figures.json").read_text())
    assert saved == {k: v for k, v in r.items() if k != "out"}
    assert r["formats"]["λ=0.5"] == {n: QKV.get(n, "uniform-4") for n in NAMES}
    assert r["format_counts"] == {"q": {"po2-2": 1}, "k": {"uniform-2": 1}, "v": {"uniform-4": 1}, "proj": {"fp32": 1}}
    assert r["fig3_layer"] == "blocks.0.attn.q" and "no second block" in r["fig3_note"]
    assert r["models"] == {"λ=0.5": "QAT checkpoint"}
    rates = r["firing_rates"]["block 0"]
    assert set(rates) == {"q", "k", "v", "proj"} and all(0 <= v <= 1 for v in rates.values())
    # another layer; an unknown one is refused and leaves nothing
    r2 = make_figures(run, out_dir=tmp_path / "g", layer="head")
    assert r2["fig3_layer"] == "head" and r2["fig3_note"] == ""
    with pytest.raises(UserError, match="--layer: no layer blocks.3.attn.q"):
        make_figures(run, out_dir=tmp_path / "h", layer="blocks.3.attn.q")
    assert not (tmp_path / "h").exists()
    # an existing folder that is not a figures folder is kept
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not a figures folder"):
        make_figures(run, out_dir=tmp_path / "keep")


def test_figures_of_a_sweep_cli(sweep_dir):
    result = CliRunner().invoke(main, ["figures", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    out = sweep_dir / "figures"
    r = json.loads((out / "figures.json").read_text())
    assert set(r["files"]) == {"fig3_search_lambda_0.5.png", "fig3_search_lambda_2.png", "fig5_weights_lambda_0.5.png",
                               "fig5_weights_lambda_2.png", "fig5_formats.png", "fig5_format_shares.png",
                               "fig5_firing_rates.png"}
    for name in r["files"]:
        _png(out / name)
    assert list(r["formats"]) == ["λ=0.5", "λ=2"] and list(r["firing_rates"]) == ["λ=0.5", "λ=2"]
    assert r["format_counts"]["q"] == {"po2-2": 1, "uniform-2": 1}  # over the two lambdas
    assert r["format_counts"]["proj"] == {"fp32": 1, "uniform-2": 1}
    assert str(out) in result.output and "Fig. 3 layer: blocks.0.attn.q" in result.output


def test_table_numbers_are_the_plans(sweep_dir, tmp_path):
    single = fake_search(tmp_path / "other", 1.0, {}, 0.75, {"energy_pct": 5.0, "storage_pct": 12.5,
                                                            "avg_weight_bits": 4.0})
    rows = collect([sweep_dir, single])
    assert [r["lambda"] for r in rows] == ["fp32", 0.5, 1.0, 2.0]
    plans = {0.5: SUMMARY, 1.0: {"energy_pct": 5.0, "storage_pct": 12.5, "avg_weight_bits": 4.0},
             2.0: {"energy_pct": 3.0, "storage_pct": 6.0, "avg_weight_bits": 2.0}}
    for r in rows[1:]:
        p = plans[r["lambda"]]
        assert (r["energy_pct"], r["storage_pct"], r["bits"]) == (p["energy_pct"], p["storage_pct"], p["avg_weight_bits"])
        assert r["compression"] == 32 / p["avg_weight_bits"]
    assert [r["accuracy"] for r in rows] == pytest.approx([90.0, 80.0, 75.0, 70.0])
    assert [r["source"] for r in rows] == ["fp32 run", "qat", "qat", "qat"]
    # the plan's record names the table; a plan without one: the config's (unset: the default, 45nm)
    assert [r["energy_table"] for r in rows] == ["45nm"] * 4
    assert rows[0] | {"lambda": 0} != rows[1] | {"lambda": 0}  # negative control: rows differ
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [float(p["energy_pct"]) for p in parsed] == [r["energy_pct"] for r in rows]
    assert [p["lambda"] for p in parsed] == ["fp32", "0.5", "1", "2"]
    md = to_markdown(rows)
    assert "| digits-dvs | 0.5 | 80.00 | 2.50 | 12.80x | 7.50 | 6.25 | 45nm | qat |" in md
    # the command: markdown printed, .md and .csv written
    result = CliRunner().invoke(main, ["table", str(sweep_dir), str(single), "-o", str(tmp_path / "t1.md")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t1.md").read_text() == md and (tmp_path / "t1.csv").read_text() == to_csv(rows)
    assert result.output.startswith(md)
    result = CliRunner().invoke(main, ["table", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert (sweep_dir / "table.csv").is_file() and (sweep_dir / "table.md").is_file()
