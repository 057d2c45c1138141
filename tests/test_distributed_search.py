"""search and finetune under `torchrun --nproc_per_node 2` (gloo, CPU): data-parallel, the same
parameters on every rank after every step, one writer, and a killed distributed search resumes.

Each rank dumps a hash of its parameters (and of torch's RNG state, and of the batch it trained on)
after every optimizer step and of its whole state dict after every epoch (the test hook
HQFLOW_TEST_STEP_HASH, `distributed.record_step`): parameters and RNG must agree line by line,
batches must not (the negative control: the ranks trained on different shards).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from hqflow.io import INCOMPLETE
from hqflow.search.distributed import STEP_HASH_ENV
from hqflow.search.trainer import KILL_ENV

# 64 training samples: 48 for the weights, 16 for the alphas; batch 16 per rank: 2 search steps per
# epoch on each of 2 ranks (24 weight samples each), 3 epochs; finetune: 2 steps per epoch
TINY = {
    "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False],
              "num_classes": 10},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 64, "val_fraction": 0.25},
    "train": {"batch_size": 16, "seed": 5, "epochs": 1, "warmup_epochs": 0},
    "search": {"epochs": 3, "hw_lambda": 1.0, "alpha_lr": 0.05},
    "finetune": {"epochs": 1, "warmup_epochs": 0},
}
STEPS_PER_EPOCH = 2
KILL_STEP = 3  # epoch 2 of 3, its second step

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed next to this python")


def _torchrun(args: list[str], hashes: Path | None = None, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop(KILL_ENV, None)
    env.pop(STEP_HASH_ENV, None)
    if hashes is not None:
        env[STEP_HASH_ENV] = str(hashes)
    if kill_at is not None:
        env[KILL_ENV] = str(kill_at)
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "hqflow.cli", *args,
                           "--device", "cpu", "--quiet"], env=env, capture_output=True, text=True, timeout=300)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def _records(hashes: Path, rank: int) -> list[dict[str, str]]:
    """rank<r>.txt as [{kind, step, params, rng, batch?}]."""
    rows = []
    for line in (hashes / f"rank{rank}.txt").read_text().splitlines():
        kind, step, *fields = line.split()
        rows.append({"kind": kind, "step": step, **dict(f.split("=") for f in fields)})
    return rows


def _same_on_both_ranks(hashes: Path, steps: int, epochs: int) -> None:
    r0, r1 = _records(hashes, 0), _records(hashes, 1)
    assert [(r["kind"], r["step"]) for r in r0] == [(r["kind"], r["step"]) for r in r1]
    assert sum(r["kind"] == "step" for r in r0) == steps and sum(r["kind"] == "epoch" for r in r0) == epochs
    for a, b in zip(r0, r1):
        assert a["params"] == b["params"], f"parameters differ across ranks after {a['kind']} {a['step']}"
        assert a["rng"] == b["rng"], f"RNG (Gumbel noise) differs across ranks after {a['kind']} {a['step']}"
        if a["kind"] == "step":
            assert a["batch"] != b["batch"], f"both ranks trained on the same batch at step {a['step']}"
    params = [r["params"] for r in r0 if r["kind"] == "step"]
    assert len(set(params)) == len(params)  # the hash sees every step's update (it can fail)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return root


@pytest.fixture(scope="module")
def full_search(root):
    """An uninterrupted two-process search, with its step hashes."""
    out, hashes = root / "search", root / "search_hashes"
    result = _torchrun(["search", "--config", str(root / "tiny.yaml"), "-o", str(out)], hashes)
    _ok(result)
    return out, hashes, result


def test_search_under_torchrun_keeps_every_rank_identical_and_writes_once(full_search):
    out, hashes, result = full_search
    epochs = TINY["search"]["epochs"]
    _same_on_both_ranks(hashes, epochs * STEPS_PER_EPOCH, epochs)
    assert result.stdout.count("derived plan test accuracy") == 1  # rank 0 prints, rank 1 does not
    # one writer: one log line per step (two writers would append two), one metrics line per epoch
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(epochs * STEPS_PER_EPOCH))
    assert len((out / "metrics.jsonl").read_text().splitlines()) == epochs
    plan = json.loads((out / "plan.json").read_text())
    assert plan["layers"] and not (out / INCOMPLETE).exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    # the checkpoint holds the alphas every rank had after the last step: the plan is their argmax
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())
    for name, layer in plan["layers"].items():
        probs = state["model"][f"{name}.alpha"].softmax(0)
        assert layer["format"] == state["candidates"][int(probs.argmax())], name


def test_finetune_under_torchrun_keeps_every_rank_identical(root, full_search):
    search_dir = full_search[0]
    out, hashes = root / "qat", root / "qat_hashes"
    result = _torchrun(["finetune", "--plan", str(search_dir / "plan.json"), "-o", str(out)], hashes)
    _ok(result)
    _same_on_both_ranks(hashes, TINY["finetune"]["epochs"] * STEPS_PER_EPOCH, TINY["finetune"]["epochs"])
    assert result.stdout.count(": kept the ") == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == TINY["finetune"]["epochs"]
    assert "plan" in torch.load(out / "checkpoint.pt", weights_only=True)


@pytest.mark.slow
def test_killed_distributed_search_resumes_to_the_same_run(root, full_search):
    full = full_search[0]
    cut = root / "cut"
    args = ["search", "--config", str(root / "tiny.yaml"), "-o", str(cut)]
    killed = _torchrun(args, kill_at=KILL_STEP)
    assert killed.returncode != 0
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert json.loads((cut / INCOMPLETE).read_text())["epochs_done"] == 1
    _ok(_torchrun(["search", "--resume", "-o", str(cut)]))
    a = torch.load(cut / "checkpoint.pt", weights_only=True)
    b = torch.load(full / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == TINY["search"]["epochs"]
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (cut / "plan.json").read_text() == (full / "plan.json").read_text()
    assert (cut / "search_log.jsonl").read_text() == (full / "search_log.jsonl").read_text()
    assert not (cut / INCOMPLETE).exists()
