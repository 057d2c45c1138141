"""The hardware report (`hqflow hwreport`) and the sweep's FPGA columns, on tiny fabricated runs."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from hqflow import fpga
from hqflow.cli import main
from hqflow.config import Config, ModelConfig, config_from_dict
from hqflow.cost import layer_shapes, load_energy_table
from hqflow.devices import fit_table
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search.hwreport import design_resources, load_cycles, make_hwreport
from hqflow.search.report import cost_figures, plan_summaries
from hqflow.topology import spikformer

TINY = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)
T = 2
NAMES = [s.name for s in layer_shapes(TINY, T)]
FORMATS = ["uniform-2", "po2-2", "uniform-4", "fp32", "po2z-4"]
PLAN_FORMATS = {n: Candidate.parse(FORMATS[i % len(FORMATS)]) for i, n in enumerate(NAMES)}
PNG = b"\x89PNG\r\n\x1a\n"


def _no_uram(d: dict) -> dict:
    """A Resources dict without its UltraRAM (the sequential model's layers never use it)."""
    assert d.pop("uram") == 0
    return d


def _metrics(folder, acc):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.1}) + "\n"
                                          + json.dumps({"epoch": 2, "test_acc": acc}) + "\n")


def make_run(tmp_path, qat=True):
    """A search folder: config.yaml, plan.json (mixed formats), metrics; qat/ and an fp32 run by source.json."""
    cfg = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                      "pools": [True, True, False, False], "num_classes": 10},
                            "data": {"time_steps": T}, "train": {"batch_size": 16}})
    run, fp32 = tmp_path / "l0.5", tmp_path / "fp32"
    _metrics(fp32, 0.9)
    _metrics(run, 0.8)
    if qat:
        _metrics(run / "qat", 0.85)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (run / "source.json").write_text(json.dumps({"init": str(fp32)}))
    QuantPlan(tuple(LayerPlan(n, PLAN_FORMATS[n]) for n in NAMES), tuple(map(Candidate.parse, FORMATS)),
              0.5).save(run / "plan.json")
    return cfg, run


def test_numbers_are_the_apis(tmp_path):
    cfg, run = make_run(tmp_path)
    r = make_hwreport(run)
    out = run / "report"
    assert {p.name for p in out.iterdir()} == {"hwreport.md", "hwreport.json", "hwreport.png"}
    assert (out / "hwreport.png").read_bytes()[:8] == PNG and (out / "hwreport.png").stat().st_size > 20_000
    saved = json.loads((out / "hwreport.json").read_text())
    assert saved == {k: v for k, v in r.items() if k != "markdown"}
    assert (out / "hwreport.md").read_text() == r["markdown"]

    # resources: hqflow.fpga's, with each layer's input width from the topology
    table = fpga.load_fpga_table()
    x_bits = fpga.layer_input_bits(spikformer(TINY), T)
    assert (x_bits["sps.conv0"], x_bits["sps.conv1"], x_bits["blocks.0.attn.q"]) == (15, 1, 2)  # events, spikes, a sum
    expected = fpga.plan_resources(layer_shapes(TINY, T), PLAN_FORMATS, table, fpga.DEFAULT_LANES, x_bits)
    assert [row["name"] for row in r["layers"]] == NAMES
    for row in r["layers"]:
        assert {k: row[k] for k in ("lut", "ff", "dsp", "bram")} == _no_uram(expected[row["name"]].to_dict())
        assert row["format"] == PLAN_FORMATS[row["name"]].name and row["bits"] == PLAN_FORMATS[row["name"]].bits
    design = fpga.total(expected)
    assert {k: r["total"][k] for k in ("lut", "ff", "dsp", "bram")} == _no_uram(design.to_dict())
    assert r["fit"] == fit_table(design)
    every_fp32 = dict.fromkeys(NAMES, Candidate.parse("fp32"))
    assert r["total"]["fp32_resources"] == fpga.total(
        fpga.plan_resources(layer_shapes(TINY, T), every_fp32, table, fpga.DEFAULT_LANES, x_bits)).to_dict()
    assert r["total"]["fp32_resources"]["bram"] > r["total"]["bram"]  # 32-bit weights take more ROM

    # 45 nm: search.report's figures
    summaries = plan_summaries(TINY, T, PLAN_FORMATS, load_energy_table())
    fig = cost_figures(summaries)
    assert r["total"]["energy_pct"] == fig["energy"]["pct"] and r["total"]["avg_weight_bits"] == fig["avg_weight_bits"]
    assert [row["energy_pct"] for row in r["layers"]] == [row["energy_pct"] for row in fig["layers"]]
    assert sum(row["energy_nj"] for row in r["layers"]) == pytest.approx(1000 * fig["energy"]["uj"], rel=1e-12)
    assert sum(row["storage_kib"] for row in r["layers"]) == pytest.approx(fig["storage"]["kib"], rel=1e-12)

    assert r["accuracy"] == {"fp32": 0.9, "quantized": 0.85, "quantized_source": "qat",
                             "drop_points": pytest.approx(5.0)}
    assert r["target"] == {"part": "xc7a100tcsg324-1", "family": "xc7", "device": "Artix-7 100T", "clock_mhz": 100.0}
    assert "cycles" not in r["layers"][0] and r["cycles"] is None
    text = r["markdown"]
    assert "| LUT (count) | FF (count) | DSP (count) | BRAM36 (count) |" in text
    assert f"| head | {PLAN_FORMATS['head'].name} |" in text and "| Artix-7 100T (xc7a100t, xc7) |" in text


def test_lanes_part_and_accuracy_without_qat(tmp_path):
    _, run = make_run(tmp_path, qat=False)
    one = make_hwreport(run, tmp_path / "one", lanes=1, part="xczu7ev-ffvc1156-2-e", clock_mhz=250)
    eight = make_hwreport(run, tmp_path / "eight")
    assert one["total"]["lut"] < eight["total"]["lut"]  # fewer lanes, less logic
    assert one["target"] == {"part": "xczu7ev-ffvc1156-2-e", "family": "xcup", "device": "Zynq UltraScale+ ZU7EV",
                             "clock_mhz": 250}
    assert any("calibrated for the xc7 family" in n for n in one["notes"])
    assert one["accuracy"]["quantized"] == 0.8 and one["accuracy"]["quantized_source"] == "search, before finetune"
    other = make_hwreport(run, tmp_path / "other", part="xc7a200tfbg484-2")  # xc7, not in the table
    assert other["target"]["device"] is None and any("not in the device table" in n for n in other["notes"])
    with pytest.raises(UserError, match="--part 'ep4ce22': not a Xilinx part"):
        make_hwreport(run, tmp_path / "bad", part="ep4ce22")


def test_cycles(tmp_path):
    _, run = make_run(tmp_path)
    nodes = {n: {"cycles_per_inference": 1000 * (i + 1), "per_step": [1]} for i, n in enumerate(NAMES[:-1])}
    nodes["blocks.0.attn.attn"] = {"cycles_per_inference": 77}
    total = sum(v["cycles_per_inference"] for v in nodes.values()) + 123
    path = tmp_path / "cycles.json"
    path.write_text(json.dumps({"clock_mhz": 125.0, "part": "xczu7ev-ffvc1156-2-e", "nodes": nodes,
                                "total_cycles": total}))
    r = make_hwreport(run, cycles=path)
    assert r["target"]["clock_mhz"] == 125.0 and r["target"]["part"] == "xczu7ev-ffvc1156-2-e"
    rows = {row["name"]: row for row in r["layers"]}
    assert rows["sps.conv0"]["cycles"] == 1000 and rows["sps.conv0"]["latency_us"] == 8.0  # 1000 / 125 MHz
    assert rows["head"]["cycles"] is None and any("no cycles for layer(s) head" in n for n in r["notes"])
    assert r["total"]["cycles"] == total
    assert r["total"]["latency_ms"] == pytest.approx(total / 125e3)
    assert r["total"]["inferences_per_s"] == pytest.approx(125e6 / total)
    assert r["total"]["weighted_layer_cycles"] == sum(1000 * (i + 1) for i in range(len(NAMES) - 1))
    assert f"| {total:,} |" in r["markdown"]
    assert (run / "report" / "hwreport.png").stat().st_size > 20_000
    # another clock: the same cycles, the latency scales
    r2 = make_hwreport(run, cycles=path, clock_mhz=250)
    assert r2["total"]["latency_ms"] == pytest.approx(r["total"]["latency_ms"] / 2)
    assert any("simulated for 125 MHz" in n for n in r2["notes"])


BAD_CYCLES = [
    ("[1]", "expected a JSON object"),
    ('{"clock_mhz": 100, "part": "x", "nodes": {}}', "lacks key(s) total_cycles"),
    ('{"clock_mhz": 0, "part": "x", "nodes": {}, "total_cycles": 1}', "clock_mhz: expected a finite number > 0, got 0"),
    ('{"clock_mhz": NaN, "part": "x", "nodes": {}, "total_cycles": 1}', "NaN is not a number JSON allows"),
    ('{"clock_mhz": 100, "part": 7, "nodes": {}, "total_cycles": 1}', "part: expected a part name string, got 7"),
    ('{"clock_mhz": 100, "part": "x", "nodes": [], "total_cycles": 1}', "nodes: expected an object"),
    ('{"clock_mhz": 100, "part": "x", "nodes": {"head": {}}, "total_cycles": 1}', "nodes.head: expected an object with"),
    ('{"clock_mhz": 100, "part": "x", "nodes": {"head": {"cycles_per_inference": -3}}, "total_cycles": 1}',
     "nodes.head.cycles_per_inference: expected a number of cycles >= 0, got -3"),
    ('{"clock_mhz": 100, "part": "x", "nodes": {}, "total_cycles": -1.5}', "total_cycles: expected a number of cycles >= 0, got -1.5"),
    ('{"clock_mhz": 100, "part": "x", "nodes": {}', "not valid JSON at line 1"),
]


@pytest.mark.parametrize("text, expect", BAD_CYCLES)
def test_bad_cycles_file(tmp_path, text, expect):
    path = tmp_path / "cycles.json"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_cycles(path)
    assert str(err.value).startswith(str(path)) and expect in str(err.value) and "\n" not in str(err.value)


def test_cycles_control(tmp_path):
    path = tmp_path / "cycles.json"
    path.write_text('{"clock_mhz": 100, "part": "x", "nodes": {"head": {"cycles_per_inference": 3}}, "total_cycles": 9}')
    assert load_cycles(path) == {"clock_mhz": 100.0, "part": "x", "nodes": {"head": 3}, "total_cycles": 9}


def test_out_folder_and_report_files_kept(tmp_path):
    """hwreport writes beside `hqflow report`'s files, refuses a foreign folder, and report keeps its files."""
    cfg, run = make_run(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("keep")
    with pytest.raises(UserError, match="not a report folder"):
        make_hwreport(run, foreign)
    assert [p.name for p in foreign.iterdir()] == ["x.txt"]

    from hqflow.search import supernet
    from hqflow.search.model import Spikformer
    from hqflow.search.report import make_report

    plan = QuantPlan(tuple(LayerPlan(n, PLAN_FORMATS[n]) for n in NAMES), tuple(map(Candidate.parse, FORMATS)), 0.5)
    model = supernet.apply_formats(Spikformer(cfg.model), plan.formats())
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()},
               run / "qat" / "checkpoint.pt")
    make_hwreport(run)
    before = (run / "report" / "hwreport.json").read_bytes()
    make_report(run, progress=False)  # builds the folder aside and swaps it in: hwreport's files carried over
    names = {p.name for p in (run / "report").iterdir()}
    assert {"report.json", "hwreport.json", "hwreport.md", "hwreport.png"} <= names
    assert (run / "report" / "hwreport.json").read_bytes() == before
    make_hwreport(run, lanes=4)  # and hwreport into a report folder
    assert "report.json" in {p.name for p in (run / "report").iterdir()}


def test_cli(tmp_path):
    _, run = make_run(tmp_path)
    result = CliRunner().invoke(main, ["hwreport", str(run), "--lanes", "4", "--part", "xcku5p-ffvb676-2-e"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# Hardware report: {run}") and "Kintex UltraScale+ KU5P" in result.output
    assert json.loads((run / "report" / "hwreport.json").read_text())["resource_model"]["lanes"] == 4


def test_sweep_adds_fpga_columns(tmp_path, monkeypatch):
    """sweep with stand-ins for the search: every point carries its plan's estimate; pareto_fpga.png."""
    from hqflow.search import quant_search as searching
    from hqflow.search.sweep import sweep

    fp32 = tmp_path / "fp32"
    _metrics(fp32, 0.9)
    plans = {0.5: "uniform-4", 1.0: "po2-2", 3.0: "uniform-2"}

    def fake_search(cfg, out, init=None, force=False, progress=True, **devices):
        lam = cfg.search.hw_lambda
        out.mkdir(parents=True)
        summary = {"energy_pct": 20 / (1 + lam), "storage_pct": 10 / (1 + lam), "avg_weight_bits": 4 / (1 + lam)}
        fmt = Candidate.parse(plans[lam])
        QuantPlan(tuple(LayerPlan(n, fmt) for n in NAMES), (fmt,), lam, summary).save(out / "plan.json")
        return [searching.SearchEpoch(1, 0.1, 1.0, 1.0, 50.0, 0.8 - lam / 10, 0, 0, 1.0)]

    monkeypatch.setattr(searching, "run_search", fake_search)
    cfg = Config().replace("model", img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False),
                           num_classes=10).replace("data", time_steps=T)
    points = sweep(cfg, fp32, [0.5, 1.0, 3.0], tmp_path / "sweep", progress=False)
    table = fpga.load_fpga_table()
    for p in points:
        res = design_resources(TINY, T, dict.fromkeys(NAMES, Candidate.parse(plans[p["lambda"]])), table)
        assert {k: p[k] for k in ("lut", "ff", "dsp", "bram")} == _no_uram(fpga.total(res).to_dict())
        assert {"lambda", "accuracy", "accuracy_source", "energy_pct", "storage_pct", "avg_weight_bits", "dir",
                "pareto", "pareto_lut", "pareto_dsp"} <= set(p)
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["points"] == points
    every = design_resources(TINY, T, dict.fromkeys(NAMES, Candidate.parse("fp32")), table)
    assert {k: saved["fp32"][k] for k in ("lut", "dsp")} == {k: fpga.total(every).to_dict()[k] for k in ("lut", "dsp")}
    for name in ("pareto.png", "pareto_fpga.png"):
        data = (tmp_path / "sweep" / name).read_bytes()
        assert data[:8] == PNG and len(data) > 20_000
    # the LUT front: a point is on it iff no other point has <= LUT and higher accuracy
    for p in points:
        beaten = any(q is not p and q["lut"] <= p["lut"] and q["accuracy"] > p["accuracy"] for q in points)
        assert p["pareto_lut"] is not beaten
