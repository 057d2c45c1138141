"""The data side of training: a data set's splits as torch batches, shuffled per epoch, sharded per rank.

    load_splits(cfg)          -> cfg with model.num_classes resolved, train split, test split
    make_loader(frames, ...)  -> batches of (frames [B, T, 2, H, W] float32, labels [B] int64)

The shuffle order of epoch e depends only on (seed, e) (`epoch_seed`), so `--resume` continues an
interrupted run exactly and every rank of a distributed run agrees on the permutation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from hqflow.config import Config
from hqflow.data import FrameDataset, load_dataset
from hqflow.errors import UserError
from hqflow.search.distributed import rank_and_world

EPOCH_SEED_STRIDE = 100_003  # a prime larger than any epoch count: (seed, epoch) -> distinct generator seeds


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of epoch `epoch` of a run seeded `seed` (shuffles and augmentation)."""
    return seed * EPOCH_SEED_STRIDE + epoch


class _TorchFrames(Dataset):
    """A FrameDataset (or the samples `indices` of it) as float tensors: frames [T, 2, H, W], label."""

    def __init__(self, frames: FrameDataset, indices: list[int] | None = None):
        self.frames = frames
        self.indices = list(range(len(frames))) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.frames[self.indices[i]]
        return torch.from_numpy(np.asarray(x, dtype=np.float32)), int(y)


class EpochShuffle(Sampler[int]):
    """Permutation of epoch e drawn from (seed, e) alone, sharded over `world` ranks.

    Training (shuffle=True): every rank sees `ceil(n / world)` indices (the permutation wraps
    around to fill the last shard), as DistributedSampler does, so that all ranks take the same
    number of steps. Evaluation (shuffle=False): rank r takes indices r, r + world, ... with no
    padding, so every sample is counted once. With world = 1 it is a plain seeded shuffle.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.n, self.world))
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.rank, self.n, self.world))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: len(self) * self.world - self.n]
        return iter(order[self.rank :: self.world])


def subset(n: int, max_samples: int, seed: int, pool: list[int] | None = None) -> list[int]:
    """The samples a run trains on: `pool` (default all n), or a seeded subset of max_samples of them (> 0)."""
    pool = list(range(n)) if pool is None else pool
    if 0 < max_samples < len(pool):
        g = torch.Generator().manual_seed(seed)
        return sorted(pool[i] for i in torch.randperm(len(pool), generator=g)[:max_samples].tolist())
    return pool


def make_loader(frames: FrameDataset, batch_size: int, seed: int, train: bool, num_workers: int = 0,
                max_samples: int = 0, indices: list[int] | None = None) -> DataLoader:
    """Batches of (frames [B, T, 2, H, W] float, labels [B]) of the samples `indices` (default all);
    `max_samples` > 0 keeps a seeded subset of them."""
    if 0 < max_samples < len(frames if indices is None else indices):
        indices = subset(len(frames), max_samples, seed, indices)
    data = _TorchFrames(frames, indices)
    rank, world = rank_and_world()
    sampler = EpochShuffle(len(data), seed, rank, world, shuffle=train)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=False)


def load_split(cfg: Config, split: str) -> FrameDataset:
    """The configured data set's split as frames [T, 2, img_size, img_size].

    `model.num_classes` must be the data set's class count, or 0 (the data set's: see `load_splits`).
    """
    frames = load_dataset(cfg.data.dataset, split, time_steps=cfg.data.time_steps,
                          size=cfg.model.img_size, data_root=cfg.data.data_root, seed=cfg.train.seed)
    k, found = cfg.model.num_classes, len(frames.classes)
    if k < 0 or k not in (0, found):
        raise UserError(f"model.num_classes: {k}, but data set '{cfg.data.dataset}' has {found} classes "
                        f"(set it to {found}, or leave it out or 0 to take the data set's)")
    return frames


def load_splits(cfg: Config) -> tuple[Config, FrameDataset, FrameDataset]:
    """(cfg, train split, test split), with `model.num_classes` 0 replaced by the data set's class count.

    Call it before building a model or writing config.yaml, so that both hold the resolved number.
    """
    train_set, test_set = load_split(cfg, "train"), load_split(cfg, "test")
    if cfg.model.num_classes == 0:
        cfg = cfg.replace("model", num_classes=len(train_set.classes))
    return cfg, train_set, test_set


def random_shift(frames: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each sample of [B, T, C, H, W] by up to +-max_shift pixels (zero fill), same for all T."""
    if max_shift == 0:
        return frames
    b, _, _, h, w = frames.shape
    pad = nn.functional.pad(frames, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).tolist()
    return torch.stack([pad[i, ..., dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
