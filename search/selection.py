"""The validation split, and what a QAT run keeps: the searched weights it starts from, or its best epoch,
chosen by the accuracy on the validation split. The split is carved from the training data (seeded,
stratified by class, recorded in every run as validation.json) and held out of every stage: the fp32
training, the search (its weight and alpha steps share the rest) and QAT, so that no stage has fitted the
samples that choose. The test split never chooses; it is reported beside.

    validation_split(labels [N], fraction, seed) -> (training indices, validation indices)
    stage_split(run folder, resume, labels, data config, seed) -> the same for a stage (an older run
        resumed without validation.json goes on without the split)
    Kept(epoch, val_acc, val_loss, test_acc)        epoch 0: the searched weights
    Selection.offer(kept, model): a strictly higher validation accuracy replaces what is kept (a tie keeps
    the earlier: the searched weights before any epoch)
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hqflow.config import DataConfig
from hqflow.search.loaders import subset

VALIDATION = "validation.json"  # the split, in the run folder
SELECTION = "selection.json"  # what the run kept, beside the searched weights' figures
VALIDATION_SEED_OFFSET = 29  # the split draws its own generator, apart from the shuffles'


def validation_split(labels: np.ndarray, fraction: float, seed: int,
                     pool: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Of the samples `pool` (default all; indices into `labels`), per class round(fraction * n) seeded
    members (at least one of a class with two or more) for validation; the rest train. Sorted index lists."""
    rng = np.random.default_rng(seed + VALIDATION_SEED_OFFSET)
    pool = np.arange(len(labels)) if pool is None else np.asarray(pool)
    labels = np.asarray(labels)[pool]
    held = np.zeros(len(pool), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held[rng.permutation(members)[:count]] = True
    return sorted(pool[~held].tolist()), sorted(pool[held].tolist())


def stage_split(out: Path, resume: bool, labels: np.ndarray, data: DataConfig,
                seed: int) -> tuple[list[int], list[int]]:
    """(the indices a stage trains on, the validation split held out of it) of the training split `labels`:
    of the samples a run may train on (data.max_train_samples > 0: a seeded subset), data.val_fraction per
    class held out. A run resumed in `out` without validation.json (begun before the split existed) keeps
    training on all of them (no validation split)."""
    pool = subset(len(labels), data.max_train_samples, seed)
    if resume and not (out / VALIDATION).is_file():
        return pool, []
    return validation_split(labels, data.val_fraction, seed, pool)


def split_record(labels: np.ndarray, fraction: float, seed: int, validation: list[int]) -> dict[str, Any]:
    """validation.json: the rule and the indices (into the training split) it held out, per class counts."""
    classes, counts = np.unique(np.asarray(labels)[validation], return_counts=True)
    return {"fraction": fraction, "seed": seed, "stratified": True, "samples": len(validation),
            "per_class": {int(c): int(n) for c, n in zip(classes, counts)}, "indices": validation}


@dataclass(frozen=True)
class Kept:
    epoch: int  # 0: the searched weights, before any QAT epoch
    val_acc: float
    val_loss: float
    test_acc: float


class Selection:
    """The best of the searched weights and the epochs so far, by validation accuracy, with a copy of its
    weights."""

    def __init__(self, searched: Kept, model: nn.Module):
        self.searched, self.kept = searched, searched
        self.weights = copy.deepcopy(model.state_dict())

    def offer(self, candidate: Kept, model: nn.Module) -> None:
        """`model` after an epoch, whose figures are `candidate`'s."""
        if candidate.val_acc > self.kept.val_acc:
            self.kept, self.weights = candidate, copy.deepcopy(model.state_dict())

    def state(self) -> dict[str, Any]:
        return {"searched": dataclasses.asdict(self.searched), "kept": dataclasses.asdict(self.kept),
                "weights": self.weights}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Selection:
        selection = cls.__new__(cls)
        selection.searched, selection.kept = Kept(**state["searched"]), Kept(**state["kept"])
        selection.weights = state["weights"]
        return selection

    def record(self, best_qat: Kept | None) -> dict[str, Any]:
        """selection.json: what was kept, the searched weights' figures and the best QAT epoch's."""
        return {"kept": "searched weights" if self.kept.epoch == 0 else f"QAT epoch {self.kept.epoch}",
                **dataclasses.asdict(self.kept), "searched": dataclasses.asdict(self.searched),
                "best_qat_epoch": None if best_qat is None else dataclasses.asdict(best_qat),
                "chosen_by": "validation accuracy (validation.json); the test split never chooses"}
