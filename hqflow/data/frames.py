"""Event streams -> frames [T, 2, H, W] (hqflow's binning), one split of a data set, stratified splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hqflow.errors import UserError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
SPLIT_SEED = 0  # fixes every train/test split; independent of the `seed` argument


def events_to_frames(
    events: np.ndarray, sensor_hw: tuple[int, int], time_steps: int, size: int | None = None
) -> np.ndarray:
    """Count events into T equal time bins: structured [N] (x, y, t us, p) -> int16 [T, 2, S, S].

    `sensor_hw` is the sensor's (H, W) in pixels; every event must lie inside it. `size` is the
    output side S (None keeps the sensor resolution: [T, 2, H, W]). Channel 0 counts OFF events
    (p False, 0 or -1), channel 1 ON events (p True or 1). t must be integer (microseconds);
    it need not be sorted. See the module docstring for the binning rule.
    """
    missing = {"x", "y", "t", "p"} - set(events.dtype.names or ())
    if missing:
        raise UserError(f"events: missing field(s) {sorted(missing)} (fields: {events.dtype.names})")
    if time_steps < 1:
        raise UserError(f"time_steps = {time_steps}: need at least 1")
    if size is not None and size < 1:
        raise UserError(f"size = {size}: need at least 1")
    h, w = sensor_hw
    out_h, out_w = (h, w) if size is None else (size, size)
    if len(events) == 0:
        return np.zeros((time_steps, 2, out_h, out_w), np.int16)

    x, y, p, t = (events[k] for k in ("x", "y", "p", "t"))
    outside = (x < 0) | (x >= w) | (y < 0) | (y >= h)
    if outside.any():
        i = np.flatnonzero(outside)[0]
        raise UserError(f"event {i}: (x, y) = ({x[i]}, {y[i]}) lies outside the {h}x{w} (H x W) sensor")
    if p.dtype != bool:
        bad = ~np.isin(p, (-1, 0, 1))
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise UserError(f"event {i}: polarity p = {p[i]}; expected bool, 0/1 or -1/+1")
    if not np.issubdtype(t.dtype, np.integer):
        raise UserError(f"events: t has dtype {t.dtype}; expected integer microseconds")

    t = t.astype(np.int64)  # also unsigned (CIFAR10-DVS: uint64), whose difference NumPy makes float
    dt = t - t.min()  # us since the first event
    time_bin = dt * time_steps // (int(dt.max()) + 1)
    on = (p > 0).astype(np.int64)
    yy = y.astype(np.int64) * out_h // h
    xx = x.astype(np.int64) * out_w // w
    flat = ((time_bin * 2 + on) * out_h + yy) * out_w + xx
    counts = np.bincount(flat, minlength=time_steps * 2 * out_h * out_w)
    counts = np.minimum(counts, np.iinfo(np.int16).max).astype(np.int16)
    return counts.reshape(time_steps, 2, out_h, out_w)


@dataclass(frozen=True, eq=False)
class FrameDataset(Sequence):
    """One split of a data set: item i is (frames int16 [T, 2, H, W], label int).

    Frames live in memory (`frames_array()`, digits-dvs) or are read from disk per item.
    """

    name: str
    split: str
    classes: tuple[str, ...]
    labels: np.ndarray  # int64 [N], indices into `classes`
    frame_shape: tuple[int, int, int, int]  # (T, 2, H, W)
    _frames: np.ndarray | None = field(default=None, repr=False)  # read-only int16 [N, T, 2, H, W]
    _read: Callable[[int], np.ndarray] | None = field(default=None, repr=False)  # i -> frames

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i) -> tuple[np.ndarray, int]:
        label = int(self.labels[i])  # raises IndexError past the end, which ends iteration
        frames = self._frames[i].copy() if self._frames is not None else self._read(i)
        return frames, label

    def frames_array(self) -> np.ndarray:
        """All frames, read-only int16 [N, T, 2, H, W]: digits-dvs in memory, a cached tonic set
        memory-mapped; an uncached tonic set (HQFLOW_CACHE=off) has none."""
        if self._frames is None:
            raise ValueError(f"{self.name} is read from disk one item at a time; index it instead")
        return self._frames


def stratified_split(labels: np.ndarray, test_fraction: float, split: str) -> np.ndarray:
    """Sorted indices of `split`: per class, round(test_fraction * n) fixed random members are test."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test[rng.permutation(members)[: round(test_fraction * len(members))]] = True
    return np.flatnonzero(test if split == "test" else ~test)
