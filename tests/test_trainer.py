"""fp32 training: it learns, it is repeatable, it resumes, and it guards its outputs."""

import json

import pytest
import torch

from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.io import atomic_write
from hqflow.search.model import Spikformer
from hqflow.search.checkpoint import load_checkpoint, load_weights
from hqflow.search.loaders import EpochShuffle
from hqflow.search.trainer import evaluate_run, lr_factor, train

SMALL = {
    "model": {"img_size": 16, "embed_dim": 48, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 1000},
    "train": {"epochs": 5, "batch_size": 32, "lr": 0.01, "warmup_epochs": 0, "weight_decay": 0.01, "seed": 1},
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fp32"
    history = train(config_from_dict(SMALL), out, progress=False)
    return out, history


def test_short_run_learns(small_run):
    out, history = small_run
    assert len(history) == 5
    assert history[-1].train_loss < history[0].train_loss - 0.2
    assert history[-1].test_acc > 0.25  # 10 classes: chance is 0.1; 5 short epochs reached 0.38
    assert {"config.yaml", "checkpoint.pt", "metrics.jsonl", "curves.png"} <= {p.name for p in out.iterdir()}
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4, 5]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_evaluate_matches_training_log(small_run):
    out, history = small_run
    result = evaluate_run(out, progress=False)
    assert result.accuracy == pytest.approx(history[-1].test_acc, abs=1e-12)


def test_resume_continues_identically(small_run, tmp_path, monkeypatch):
    """Interrupt a run after epoch 2, resume it: the weights equal the uninterrupted run's."""
    import hqflow.search.trainer as trainer

    out, _ = small_run
    save = trainer._save_epoch

    def save_then_interrupt(run_dir, cfg, model, optimizer, schedule, history, extra_state):
        save(run_dir, cfg, model, optimizer, schedule, history, extra_state)
        if history[-1].epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_epoch", save_then_interrupt)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(config_from_dict(SMALL), cut, progress=False)
    monkeypatch.setattr(trainer, "_save_epoch", save)
    history = train(config_from_dict(SMALL), cut, resume=True, progress=False)
    assert [m.epoch for m in history] == [1, 2, 3, 4, 5]
    full = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)["model"]
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0)


def test_output_folder_guard(small_run):
    out, _ = small_run
    with pytest.raises(UserError, match="exists; pass --force"):
        train(config_from_dict(SMALL), out, progress=False)
    with pytest.raises(UserError, match="nothing to resume"):
        train(config_from_dict(SMALL), out.parent / "empty", resume=True, progress=False)


def test_checkpoint_from_another_config_names_shapes(small_run):
    out, _ = small_run
    _, _, state = load_checkpoint(out)
    other = Spikformer(config_from_dict({"model": {**SMALL["model"], "embed_dim": 64, "num_classes": 10}}).model)
    with pytest.raises(UserError, match=r"shapes differ: sps\.conv0\.weight: checkpoint \(6, 2, 3, 3\) vs model \(8, 2, 3, 3\)"):
        load_weights(other, state["model"], "ckpt")


def test_epoch_shuffle_depends_on_seed_and_epoch_only():
    a, b = EpochShuffle(10, seed=3), EpochShuffle(10, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(3)
    assert list(a) != list(b)
    shards = [list(EpochShuffle(10, 3, rank=r, world=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards) and set(sum(shards, [])) == set(range(10))
    evaluation = [list(EpochShuffle(10, 3, rank=r, world=3, shuffle=False)) for r in range(3)]
    assert sorted(sum(evaluation, [])) == list(range(10))  # every sample once, no padding


def test_lr_schedule_shape():
    f = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.01, abs=1e-3)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def boom(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.json", boom)
    assert list(tmp_path.iterdir()) == []


def test_runs_under_torchrun_with_two_processes(tmp_path):
    """The same CLI command under torchrun: two ranks (gloo), rank 0 writes, one summary line."""
    import shutil
    import subprocess
    import sys

    import yaml

    torchrun = shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed next to this python")
    cfg = tmp_path / "c.yaml"
    small = {**SMALL, "data": {**SMALL["data"], "max_train_samples": 128}, "train": {**SMALL["train"], "epochs": 1}}
    cfg.write_text(yaml.safe_dump(small))
    out = tmp_path / "ddp"
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hqflow.cli", "train",
                             "--config", str(cfg), "-o", str(out), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("test accuracy") == 1  # only rank 0 prints
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert (out / "checkpoint.pt").is_file()
