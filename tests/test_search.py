"""A short search on a subset: probabilities move, the plan is valid, resume is exact; QAT runs."""

import json

import pytest
import torch

from hqflow.config import config_from_dict
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.plan import load_plan, plan_from_dict, uniform_plan
from hqflow.search.quant_search import run_finetune as finetune
from hqflow.search.quant_search import run_search as search
from hqflow.search.quant_search import temperature

SMALL = {
    "model": {"img_size": 16, "embed_dim": 32, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 300, "val_fraction": 0.2},
    "train": {"batch_size": 32, "seed": 3},
    "search": {"epochs": 2, "hw_lambda": 2.0, "alpha_lr": 0.2},  # 16 steps on the 300 samples
    "finetune": {"epochs": 1},
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "s"
    history = search(config_from_dict(SMALL), out, progress=False)
    return out, history


def test_search_moves_probabilities_and_writes_a_valid_plan(searched):
    out, history = searched
    assert len(history) == 2
    for name in ("plan.json", "checkpoint.pt", "search_log.jsonl", "metrics.jsonl", "probabilities.png", "config.yaml"):
        assert (out / name).is_file(), name
    plan = load_plan(out / "plan.json")
    assert [lp.name for lp in plan.layers][:2] == ["sps.conv0", "sps.conv1"] and plan.layers[-1].name == "head"
    first = json.loads((out / "search_log.jsonl").read_text().splitlines()[0])
    assert first["probabilities"]["sps.conv0"] == pytest.approx([0.2] * 5, abs=0.08)  # after one alpha step
    moved = [max(lp.probabilities.values()) for lp in plan.layers]
    assert max(moved) > 0.3  # started at 0.2 each
    # a strong hardware weight drives the expected energy down
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert log[-1]["energy_pct"] < log[0]["energy_pct"]
    assert plan.summary["avg_weight_bits"] < 32


def test_search_resume_equals_uninterrupted(searched, tmp_path, monkeypatch):
    """Interrupt the search in epoch 2 (after its steps, before its checkpoint), resume: the weights,
    the plan, the search log and the metrics (but for seconds) equal the uninterrupted run's."""
    out, _ = searched
    import hqflow.search.quant_search as mod

    real, calls = mod.plan_of, []

    def plan_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the end of epoch 2: its log lines are in memory, its checkpoint not written
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "plan_of", plan_then_stop)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        search(config_from_dict(SMALL), cut, progress=False)
    monkeypatch.setattr(mod, "plan_of", real)
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert (cut / "INCOMPLETE").is_file() and not (out / "INCOMPLETE").exists()
    search(config_from_dict(SMALL), cut, resume=True, progress=False)
    assert not (cut / "INCOMPLETE").exists()
    full = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)["model"]
    assert set(full) == set(resumed)
    for k in full:
        assert torch.equal(resumed[k], full[k]), k
    assert json.loads((cut / "plan.json").read_text()) == json.loads((out / "plan.json").read_text())
    assert (cut / "search_log.jsonl").read_text() == (out / "search_log.jsonl").read_text()

    def metrics(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert metrics(cut) == metrics(out) and len(metrics(out)) == 2


def test_finetune_with_hand_edited_plan(searched, tmp_path):
    out, _ = searched
    raw = json.loads((out / "plan.json").read_text())
    for entry in raw["layers"].values():
        entry.update(format="uniform-4", scheme="uniform", bits=4, zero_level=False)
    edited = tmp_path / "plan.json"
    edited.write_text(json.dumps(raw))
    history = finetune(edited, tmp_path / "qat", init=out, progress=False)
    assert len(history) == 1 and 0.0 <= history[0].test_acc <= 1.0
    from hqflow.search.checkpoint import load_checkpoint

    _, model, state = load_checkpoint(tmp_path / "qat")
    assert state["plan"]["layers"]["head"]["format"] == "uniform-4"
    assert model.head.candidates == (Candidate("uniform", 4),)
    # what it kept, chosen on the validation split (validation.json), is what its checkpoint holds
    split = json.loads((tmp_path / "qat" / "validation.json").read_text())
    kept = json.loads((tmp_path / "qat" / "selection.json").read_text())
    assert split["samples"] == sum(split["per_class"].values()) == len(split["indices"])
    assert abs(split["samples"] - 60) <= 10 and split["seed"] == 3  # 0.2 of the 300 samples, rounded per class
    from hqflow.search.loaders import subset

    assert set(split["indices"]) < set(subset(1438, 300, 3))  # carved from the samples the run may train on
    assert kept["val_acc"] == max(kept["searched"]["val_acc"], history[0].val_acc)
    assert kept["kept"] == ("searched weights" if kept["epoch"] == 0 else "QAT epoch 1")
    from hqflow.search.trainer import evaluate_run

    assert evaluate_run(tmp_path / "qat", progress=False).accuracy == pytest.approx(kept["test_acc"], abs=1e-12)


def test_the_validation_split_is_stratified_seeded_and_disjoint():
    import numpy as np

    from hqflow.search.selection import validation_split

    labels = np.repeat(np.arange(4), [10, 20, 1, 9])
    train, val = validation_split(labels, 0.1, seed=3)
    assert sorted(train + val) == list(range(40)) and not set(train) & set(val)
    assert [int((labels[val] == c).sum()) for c in range(4)] == [1, 2, 0, 1]  # a class of one stays in training
    assert validation_split(labels, 0.1, seed=3) == (train, val) != validation_split(labels, 0.1, seed=4)


def test_plan_validation_errors(searched, tmp_path):
    out, _ = searched
    raw = json.loads((out / "plan.json").read_text())
    names = list(raw["layers"])

    def fails(mutate, match):
        bad = json.loads(json.dumps(raw))
        mutate(bad)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(UserError, match=match):
            finetune(path, tmp_path / "never", init=out, progress=False)
        assert not (tmp_path / "never").exists()

    fails(lambda p: p["layers"].pop("head"), "no format for layer.*head")
    fails(lambda p: p["layers"].__setitem__("blocks.9.attn.q", {"format": "fp32"}), "blocks.9.attn.q not in the model")
    fails(lambda p: p["layers"]["head"].update(format="int-4"), r"layers\.head\.format.*int-4")
    fails(lambda p: p["layers"]["head"].update(format="uniform-9"), r"layers\.head\.format.*9")
    fails(lambda p: p["layers"]["sps.conv0"].update(bits=3), r"layers\.sps\.conv0\.bits: 3 contradicts")
    fails(lambda p: p.update(schema_version=7), "schema_version 7")
    with pytest.raises(UserError, match="missing.json: not found; expected a plan"):
        load_plan(tmp_path / "missing.json")
    assert plan_from_dict(uniform_plan(names, Candidate("po2", 2)).to_dict(), "x").formats()["head"].name == "po2-2"


def test_temperature_schedule():
    assert temperature(0, 100, 5.0, 0.1) == pytest.approx(5.0)
    assert temperature(99, 100, 5.0, 0.1) == pytest.approx(0.1)
    assert temperature(50, 100, 5.0, 0.1) < temperature(49, 100, 5.0, 0.1)


def test_the_validation_split_is_held_out_of_every_stage(tmp_path, monkeypatch):
    """fp32 training, the search (weight and alpha steps) and QAT record the same validation split and
    draw none of their training batches from it; QAT evaluates on exactly it."""
    import hqflow.search.quant_search as qs
    import hqflow.search.trainer as trainer

    drawn = []  # (train?, indices) of every loader over the training split

    def recording(real):
        def make_loader(frames, batch_size, seed, train, *args, indices=None, **kw):
            if frames.split == "train":
                drawn.append((train, tuple(indices)))
            return real(frames, batch_size, seed, train, *args, indices=indices, **kw)
        return make_loader

    monkeypatch.setattr(trainer, "make_loader", recording(trainer.make_loader))
    monkeypatch.setattr(qs, "make_loader", recording(qs.make_loader))
    cfg = config_from_dict({**SMALL, "data": {**SMALL["data"], "max_train_samples": 64},
                            "train": {**SMALL["train"], "epochs": 1}, "search": {**SMALL["search"], "epochs": 1}})
    trainer.train(cfg, tmp_path / "fp32", progress=False)
    search(cfg, tmp_path / "s", init=tmp_path / "fp32", progress=False)
    finetune(tmp_path / "s" / "plan.json", tmp_path / "qat", progress=False)
    splits = [json.loads((tmp_path / run / "validation.json").read_text()) for run in ("fp32", "s", "qat")]
    assert splits[0] == splits[1] == splits[2] and splits[0]["samples"] > 0
    held = set(splits[0]["indices"])
    trained = [set(indices) for train, indices in drawn if train]
    assert len(trained) == 4  # fp32, the search's weights and alphas, QAT
    assert all(not indices & held for indices in trained)
    assert [set(indices) for train, indices in drawn if not train] == [held]  # QAT's validation loader
