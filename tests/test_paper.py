"""`hqflow paper` (search/paper.py): the pipeline end to end on fabricated DVS128 Gesture folders, its
resumption, its projection's arithmetic; the paper's schedule keys (warmup start, the search's weight
schedule, the alpha sample) and the paper configs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import apply_overrides, load_config
from hqflow.errors import UserError
from hqflow.search import paper
from hqflow.search.trainer import lr_factor

from conftest import CONFIGS
from data_folders import make_gesture_root

# the paper config of DVS128 Gesture, shrunk: 32 of the 110 fabricated training samples (29 for the
# weights, 3 for the alphas), batch 16, T 2, 16x16 frames, one epoch of each stage
TINY = ["model.img_size=16", "model.embed_dim=16", "model.num_heads=2", "model.depth=1",
        "model.pools=[true, true, false, false]", "data.time_steps=2", "data.max_train_samples=32",
        "train.epochs=1", "train.warmup_epochs=0", "search.epochs=1", "search.weight_warmup_epochs=0",
        "finetune.epochs=1"]
GESTURE = CONFIGS / "paper-dvs128-gesture.yaml"


@pytest.fixture(autouse=True)
def frame_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HQFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "paper-frame-cache"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_gesture_root(tmp_path_factory.mktemp("gesture"), splits=("Train", "Test"))


def tiny_cfg(data_root: Path | None, *more: str):
    cfg = apply_overrides(load_config(GESTURE), TINY + list(more))
    return cfg if data_root is None else cfg.replace("data", data_root=str(data_root))


def _export(run, out, target, tb_samples, data_root):
    from hqflow.export.lower import export

    export(run, out, target, False, tb_samples, min(2, tb_samples), data_root)


def _run(cfg, out, lines=None, **kw):
    kw.setdefault("lambdas", (0.5, 2.0))
    kw.setdefault("target", "numpy")
    kw.setdefault("measure_steps", 1)
    return paper.run_paper(cfg, out, exporter=_export, progress=False,
                           echo=(lines.append if lines is not None else lambda s: None), **kw)


def test_pipeline_end_to_end_then_a_rerun_only_reports(data_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    result = _run(tiny_cfg(data_root), out)
    summary = json.loads((out / "paper.json").read_text())
    assert [p["lambda"] for p in summary["points"]] == [0.5, 2.0]
    assert all(p["accuracy_source"] == "qat" for p in summary["points"])
    assert summary["chosen"]["lambda"] in (0.5, 2.0) and summary["exported_run"].endswith("qat")
    assert (out / "export" / "graph.json").is_file() and (out / "paper.md").is_file()
    for lam in ("0.5", "2"):
        assert (out / "sweep" / f"lambda_{lam}" / "report" / "report.json").is_file()
        assert not (out / "sweep" / f"lambda_{lam}" / "qat" / "INCOMPLETE").exists()
    assert not [s for s in result.stages if s.done]  # all was to do
    assert result.seconds is not None
    # a rerun: no training, no measuring, no export; the summary again
    stamp = (out / "export" / "graph.json").stat().st_mtime_ns

    def forbidden(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr("hqflow.search.trainer.train", forbidden)
    monkeypatch.setattr("hqflow.search.sweep.sweep", forbidden)
    monkeypatch.setattr(paper, "measure_step_seconds", forbidden)
    lines = []
    again = paper.run_paper(tiny_cfg(data_root), out, lambdas=(0.5, 2.0), target="numpy", progress=False,
                            exporter=forbidden, echo=lines.append)
    assert all(s.done for s in again.stages) and again.seconds is None
    assert "projected total: 0.0 s" in "\n".join(lines) and "| yes |" in lines[-1]
    assert (out / "export" / "graph.json").stat().st_mtime_ns == stamp
    # other settings on the same folder are refused, naming what differs
    with pytest.raises(UserError, match=r"other settings \(lambdas differ\)"):
        _run(tiny_cfg(data_root), out, lambdas=(0.5,))
    with pytest.raises(UserError, match=r"search.alpha_sample differ"):
        _run(tiny_cfg(data_root, "search.alpha_sample=soft"), out)


def test_interrupted_pipeline_resumes(data_root, tmp_path, monkeypatch):
    """An exception inside the sweep (the second lambda's search) and one between stages (the reports):
    each rerun keeps what was finished and continues."""
    from hqflow.search import quant_search, report

    out = tmp_path / "out"
    real_search, real_report = quant_search.run_search, report.make_report
    calls = []

    def search_failing_second(cfg, folder, *a, **k):
        calls.append(Path(folder).name)
        if len(calls) == 2:
            raise RuntimeError("injected")
        return real_search(cfg, folder, *a, **k)

    monkeypatch.setattr(quant_search, "run_search", search_failing_second)
    with pytest.raises(RuntimeError, match="injected"):
        _run(tiny_cfg(data_root), out, finetune_epochs=0)
    assert (out / "fp32" / "checkpoint.pt").is_file() and (out / "sweep" / "INCOMPLETE").is_file()
    assert (out / "sweep" / "lambda_0.5" / "plan.json").is_file() and not (out / "sweep" / "lambda_2").exists()

    def report_failing(*a, **k):
        raise RuntimeError("injected between stages")

    monkeypatch.setattr(report, "make_report", report_failing)
    lines = []
    with pytest.raises(RuntimeError, match="between stages"):
        _run(tiny_cfg(data_root), out, lines, finetune_epochs=0)
    table = "\n".join(lines)
    assert "fp32 training" in table and table.count(" done ") == 2  # fp32 and lambda 0.5's search
    assert calls == ["lambda_0.5", "lambda_2", "lambda_2"]  # only the missing lambda searched again
    assert not (out / "sweep" / "INCOMPLETE").exists()

    monkeypatch.setattr(report, "make_report", real_report)
    _run(tiny_cfg(data_root), out, finetune_epochs=0)
    summary = json.loads((out / "paper.json").read_text())
    assert summary["exported_run"].endswith("fixed")  # no QAT: the searched weights with the plan fixed
    assert all(p["accuracy_source"] == "search, before finetune" for p in summary["points"])
    assert calls == ["lambda_0.5", "lambda_2", "lambda_2"]


def test_projection_is_measured_seconds_times_counted_steps(data_root, tmp_path):
    """A stubbed clock: each kind's timed steps take a known time; every row is steps x its kind's
    seconds + eval batches x the eval seconds, and the counts follow the config and the data set."""
    ticks = iter([0.0, 2.0, 10.0, 16.0, 20.0, 23.0, 30.0, 30.5])  # train, search, qat, eval: 2 steps each
    lines = []
    result = _run(tiny_cfg(data_root), tmp_path / "out", lines, dry_run=True, measure_steps=2,
                  timer=lambda: next(ticks))
    assert result.seconds == {"train": 1.0, "search": 3.0, "qat": 1.5, "eval": 0.25}
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    # 32 training samples less the validation split (7: one of each class with two or more) = 25, batch 16:
    # 2 steps; the search's weights get 25 - round(2.5) = 23: 2 steps;
    # 110 test samples: 7 batches per epoch; a report measures rates on 4 batches
    expected = {"fp32 training": (2, 7, 1.0), "search lambda 0.5": (2, 7, 3.0), "QAT lambda 0.5": (2, 7, 1.5),
                "search lambda 2": (2, 7, 3.0), "QAT lambda 2": (2, 7, 1.5), "report lambda 0.5": (0, 4, 0.0),
                "report lambda 2": (0, 4, 0.0)}
    rows = {r["stage"]: r for r in result.rows}
    for name, (steps, batches, step_seconds) in expected.items():
        assert (rows[name]["steps"], rows[name]["eval_batches"]) == (steps, batches), name
        assert rows[name]["seconds"] == steps * step_seconds + batches * 0.25, name
    assert rows["export of the chosen plan"]["seconds"] is None
    total = sum(r["seconds"] or 0 for r in result.rows)
    assert total == 2 * 1.0 + 2 * (2 * 3.0) + 2 * (2 * 1.5) + 5 * 7 * 0.25 + 2 * 4 * 0.25  # 30.75 s
    assert f"projected total: {paper.format_duration(total)}" in "\n".join(lines)


def test_dry_run_without_data_uses_the_published_sizes(tmp_path):
    cfg = apply_overrides(load_config(CONFIGS / "paper-cifar10-dvs.yaml"), TINY[:6])  # the paper's epochs
    ticks = iter(float(i) for i in range(100))
    lines = []
    result = _run(cfg, tmp_path / "out", lines, dry_run=True, timer=lambda: next(ticks), finetune_epochs=0)
    rows = {r["stage"]: r for r in result.rows}
    # 9,000 training samples less the validation split (900) held out of every stage; the search's alpha
    # steps take a tenth of the 8,100 left
    assert rows["fp32 training"]["steps"] == 106 * math.ceil(8100 / 16)
    assert rows["search lambda 0.5"]["steps"] == 510 * math.ceil((8100 - 810) / 16)
    assert rows["fp32 training"]["eval_batches"] == 106 * math.ceil(1000 / 16)
    assert "QAT lambda 0.5" not in rows and "published split sizes" in lines[0]
    with pytest.raises(UserError, match="no data root was given"):
        _run(cfg, tmp_path / "out")  # the real run needs the data


def test_steps_per_rank_under_torchrun():
    cfg = tiny_cfg(None)
    stages = {s.name: s for s in paper.plan_stages(cfg, Path("/nonexistent"), 110, 110, [1.0], 1, world=2)}
    # 32 samples less round(3.2) held out (no labels given) = 29 over 2 ranks: 15 each, one batch; test: rank 0
    # takes 55 samples, 4 batches
    assert (stages["fp32 training"].steps, stages["fp32 training"].eval_batches) == (1, 4)
    assert paper.torchrun_argv(2, ["train"])[-4:] == ["--nproc_per_node=2", "-m", "hqflow.cli", "train"]


def test_choose_rule():
    points = [{"lambda": 0.1, "accuracy": 0.95, "energy_pct": 9.0}, {"lambda": 1.0, "accuracy": 0.945, "energy_pct": 5.0},
              {"lambda": 4.0, "accuracy": 0.90, "energy_pct": 3.0}]
    assert paper.choose(points, 0.952)["lambda"] == 1.0  # 0.7 points below: within 1
    assert paper.choose(points, 0.952, max_drop=0.5)["lambda"] == 0.1
    assert paper.choose(points, 0.99)["lambda"] == 0.1  # none within 1 point: the most accurate
    assert paper.choose(points, None)["lambda"] == 0.1


# ----------------------------------------------------------------------------- the schedule keys


def test_warmup_start_lr_and_default_bit_identity():
    old = [(s + 1) / 10 for s in range(10)]  # the warmup before warmup_start_lr existed
    new = [lr_factor(s, 100, 10, 0.01) for s in range(10)]
    assert new == old and all(a.hex() == b.hex() for a, b in zip(new, old))
    ramp = [lr_factor(s, 100, 10, 0.01, 0.1) for s in range(-1, 10)]  # 1e-4 -> 1e-3 as ratios of 1e-3
    np.testing.assert_allclose(ramp, np.linspace(0.1, 1.0, 11), rtol=0, atol=1e-15)
    assert lr_factor(99, 100, 10, 0.01, 0.1) == pytest.approx(0.01, abs=1e-3)
    assert lr_factor(10, 100, 10, 0.01, 0.1) == 1.0


def test_search_weight_schedule_and_soft_alpha_sample(monkeypatch, tmp_path):
    import torch

    from hqflow.config import config_from_dict
    from hqflow.search import quant_search, supernet

    cfg = config_from_dict({
        "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]},
        "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 48, "val_fraction": 0.25},
        "train": {"batch_size": 12, "epochs": 1},
        "search": {"epochs": 2, "weight_lr": 1e-3, "weight_schedule": "cosine", "weight_warmup_epochs": 1,
                   "weight_warmup_start_lr": 1e-4, "weight_min_lr": 1e-5, "alpha_sample": "soft"}})
    seen, lrs = [], []
    real_sampling, real_step = supernet.set_sampling, torch.optim.AdamW.step
    monkeypatch.setattr(supernet, "set_sampling", lambda m, tau, hard, learn_alpha=True: (
        seen.append((hard, learn_alpha)), real_sampling(m, tau, hard, learn_alpha))[1])

    def step(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    quant_search.run_search(cfg, tmp_path / "s", progress=False)
    assert set(seen) == {(False, True), (False, False)}  # soft for the alpha step and the weight step
    # 36 weight samples, batch 12: 3 steps per epoch, 6 in all; warmup over the first 3 from 1e-4
    expected = [1e-3 * lr_factor(s, 6, 3, 1e-2, 1e-1) for s in range(6)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[0] == pytest.approx(1e-4 + 0.9e-3 / 3) and lrs[2] == pytest.approx(1e-3)
    assert lrs[5] < lrs[4] < lrs[3] == 1e-3  # the cosine starts at weight_lr and decays


@pytest.mark.parametrize("name", ["dvs128-gesture", "cifar10-dvs", "n-caltech101"])
def test_paper_configs(name):
    cfg = load_config(CONFIGS / f"paper-{name}.yaml")
    assert cfg.data.dataset == name and cfg.model.num_classes == 0 and cfg.data.time_steps == 16
    assert (cfg.model.img_size, cfg.model.embed_dim, cfg.model.num_heads, cfg.model.depth) == (128, 256, 16, 2)
    assert cfg.model == dataclasses.replace(load_config(CONFIGS / "paper.yaml").model, attn_scale=cfg.model.attn_scale)
    t, s = cfg.train, cfg.search
    assert (t.warmup_start_lr, t.lr, t.min_lr) == (1e-4, 1e-3, 1e-5)
    assert (s.weight_schedule, s.weight_warmup_start_lr, s.weight_lr, s.weight_min_lr) == ("cosine", 1e-4, 1e-3, 1e-5)
    assert s.epochs == 510 and s.alpha_sample == "hard"


def test_cli_dry_run(data_root, tmp_path):
    args = ["paper", "--config", str(GESTURE), "--data-root", str(data_root), "-o", str(tmp_path / "o"),
            "--dry-run", "--measure-steps", "1", "--lambdas", "1"] + [a for item in TINY for a in ("--set", item)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "projected total:" in result.output and "measured seconds per step" in result.output
    assert not (tmp_path / "o").exists()
