"""Nothing half-written: a run killed (SIGKILL) or failing at any instant leaves its last complete
epoch (resumable, marked INCOMPLETE) or nothing, and `--resume` ends where an uninterrupted run ends.

The kill comes from the test hook HQFLOW_TEST_KILL_AT_STEP (`trainer.kill_step`): the CLI process
SIGKILLs itself right after optimizer step N, in the middle of an epoch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.io import INCOMPLETE, require_complete, staging_path
from hqflow.search.quant_search import run_finetune as finetune
from hqflow.search.quant_search import run_search as search
from hqflow.search.trainer import KILL_ENV, train

# 64 training samples: 48 for the weights, 16 for the alphas; batch 16: 3 search steps per epoch,
# 4 finetune steps per epoch; 3 epochs each
TINY = {
    "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False],
              "num_classes": 10},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 64, "val_fraction": 0.25},
    "train": {"batch_size": 16, "seed": 5, "epochs": 2, "warmup_epochs": 0},
    "search": {"epochs": 3, "hw_lambda": 1.0, "alpha_lr": 0.05},
    "finetune": {"epochs": 3, "warmup_epochs": 0},
}
SEARCH_KILL_STEP = 4  # epoch 2 of 3, its second step
FINETUNE_KILL_STEP = 5  # epoch 2 of 3, its second step


def _cli(args: list[str], kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop(KILL_ENV, None)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    return subprocess.run([sys.executable, "-m", "hqflow.cli", *args, "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)


def _killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -9, (result.returncode, result.stderr[-2000:])


def _same_run(resumed: Path, full: Path, log: str | None = None) -> None:
    """Every tensor of the final checkpoint equal; plan.json equal; metrics equal but for seconds."""
    a = torch.load(resumed / "checkpoint.pt", weights_only=True)
    b = torch.load(full / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] and set(a["model"]) == set(b["model"])
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (resumed / "plan.json").exists() == (full / "plan.json").exists()
    if (full / "plan.json").exists():
        assert json.loads((resumed / "plan.json").read_text()) == json.loads((full / "plan.json").read_text())

    def metrics(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert metrics(resumed) == metrics(full)
    if log is not None:
        assert (resumed / log).read_text() == (full / log).read_text()
    for run in (resumed, full):
        assert not (run / INCOMPLETE).exists()
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return root


@pytest.fixture(scope="module")
def full_search(tiny):
    out = tiny / "full_search"
    search(config_from_dict(TINY), out, progress=False)
    return out


def test_search_killed_mid_epoch_resumes_to_the_same_plan_and_weights(tiny, full_search):
    cut = tiny / "cut_search"
    _killed(_cli(["search", "--config", str(tiny / "tiny.yaml"), "-o", str(cut)], SEARCH_KILL_STEP))
    state = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1  # killed in epoch 2: epoch 1 is the folder's last complete epoch
    marker = json.loads((cut / INCOMPLETE).read_text())
    assert marker["epochs_done"] == 1 and marker["epochs"] == 3 and "--resume" in marker["resume"]
    lines = [json.loads(line) for line in (cut / "search_log.jsonl").read_text().splitlines()]
    assert {r["epoch"] for r in lines} == {1}
    with pytest.raises(UserError, match="incomplete run.*1 of 3 epochs.*--resume"):
        finetune(cut / "plan.json", tiny / "never", progress=False)
    assert not (tiny / "never").exists()
    # what a kill between the log's append and the checkpoint, or inside a write, leaves behind
    with open(cut / "search_log.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "epoch": 2}) + "\n" + '{"step": 4, "ep')
    (cut / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half")
    search(config_from_dict(TINY), cut, resume=True, progress=False)
    _same_run(cut, full_search, "search_log.jsonl")


def test_finetune_killed_mid_epoch_resumes_to_the_same_weights(tiny, full_search):
    full, cut = full_search / "qat", tiny / "cut_qat"
    finetune(full_search / "plan.json", full, progress=False)
    _killed(_cli(["finetune", "--plan", str(full_search / "plan.json"), "-o", str(cut)], FINETUNE_KILL_STEP))
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert (cut / INCOMPLETE).is_file()
    with pytest.raises(UserError, match="incomplete run"):
        require_complete(cut / "checkpoint.pt", "the run")
    finetune(full_search / "plan.json", cut, resume=True, progress=False)
    _same_run(cut, full)


def test_a_fresh_run_that_fails_leaves_nothing(tiny, monkeypatch):
    import hqflow.search.trainer as trainer

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    cfg = config_from_dict(TINY)
    out = tiny / "failed"
    monkeypatch.setattr(trainer, "evaluate", boom)  # the end of the first epoch
    with pytest.raises(RuntimeError, match="injected"):
        train(cfg, out, progress=False)
    assert not out.exists() and not staging_path(out).exists()
    monkeypatch.undo()
    with pytest.raises(UserError, match="no-such-set"):  # a bad data set fails before anything is written
        train(cfg.replace("data", dataset="no-such-set"), out, progress=False)
    assert not out.exists() and not staging_path(out).exists()


def test_force_keeps_the_previous_result_until_the_new_run_has_an_epoch(tiny, full_search, monkeypatch):
    import hqflow.search.quant_search as mod

    before = (full_search / "checkpoint.pt").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(mod, "plan_of", boom)  # the end of the first epoch, before its checkpoint
    with pytest.raises(RuntimeError, match="injected"):
        search(config_from_dict(TINY), full_search, force=True, progress=False)
    assert (full_search / "checkpoint.pt").read_bytes() == before
    assert not staging_path(full_search).exists() and not (full_search / INCOMPLETE).exists()


@pytest.mark.slow
def test_a_run_killed_in_its_first_epoch_leaves_no_folder(tiny):
    out = tiny / "killed_early"
    args = ["train", "--config", str(tiny / "tiny.yaml"), "-o", str(out)]
    _killed(_cli(args, 1))
    assert not out.exists() and staging_path(out).is_dir()  # the hidden staging folder, never `out`
    with pytest.raises(UserError, match="nothing to resume.*start afresh"):
        train(config_from_dict(TINY), out, resume=True, progress=False)
    result = _cli(args)  # a fresh run clears the leftover and completes
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "checkpoint.pt").is_file() and not staging_path(out).exists() and not (out / INCOMPLETE).exists()


def test_sweep_killed_midway_keeps_finished_lambdas_and_resumes(tmp_path, monkeypatch):
    """sweep with a stand-in search that fails at the second lambda; resume searches only the rest."""
    from hqflow.config import Config
    from hqflow.numerics import Candidate
    from hqflow.plan import LayerPlan, QuantPlan
    from hqflow.search import quant_search as searching
    from hqflow.search.sweep import sweep
    from hqflow.topology import spikformer

    fp32 = tmp_path / "fp32"
    fp32.mkdir()
    (fp32 / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.9}) + "\n")
    calls, fail_at = [], [1.0]

    def fake_search(cfg, out, init=None, force=False, progress=True, resume=False, **devices):
        lam = cfg.search.hw_lambda
        calls.append(lam)
        if lam in fail_at:
            raise RuntimeError("injected failure")
        out.mkdir(parents=True)
        summary = {"energy_pct": 20 / (1 + lam), "storage_pct": 10 / (1 + lam), "avg_weight_bits": 4 / (1 + lam)}
        u2 = Candidate.parse("uniform-2")  # every layer: the sweep estimates each plan's FPGA resources
        layers = tuple(LayerPlan(layer.name, u2) for layer in spikformer(cfg.model).layers)
        QuantPlan(layers, (u2,), lam, summary).save(out / "plan.json")
        (out / "checkpoint.pt").write_bytes(b"stand-in")
        (out / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.8 - lam / 10}) + "\n")
        return [searching.SearchEpoch(1, 0.1, 1.0, 1.0, 50.0, 0.8 - lam / 10, 0, 0, 1.0)]

    monkeypatch.setattr(searching, "run_search", fake_search)
    out = tmp_path / "sweep"
    with pytest.raises(RuntimeError, match="injected"):
        sweep(Config(), fp32, [0.5, 1.0, 3.0], out, progress=False)
    assert (out / INCOMPLETE).is_file() and (out / "lambda_0.5" / "plan.json").is_file()
    assert [p["lambda"] for p in json.loads((out / "sweep.json").read_text())["points"]] == [0.5]
    with pytest.raises(UserError, match="exists"):
        sweep(Config(), fp32, [0.5, 1.0, 3.0], out, progress=False)
    fail_at.clear()
    calls.clear()
    points = sweep(Config(), fp32, [0.5, 1.0, 3.0], out, progress=False, resume=True)
    assert calls == [1.0, 3.0]  # lambda 0.5 was complete: read, not searched again
    assert [p["accuracy"] for p in points] == pytest.approx([0.75, 0.7, 0.5])
    assert not (out / INCOMPLETE).exists()
    # a fresh sweep that fails before anything is finished leaves no folder
    fail_at.append(0.5)
    with pytest.raises(RuntimeError):
        sweep(Config(), fp32, [0.5], tmp_path / "nothing", progress=False)
    assert not (tmp_path / "nothing").exists()
