"""Event data sets as frames `[T, 2, H, W]`: the embedded `digits-dvs` set and tonic loaders.

Frames. `events_to_frames` turns an event stream (fields x, y, t in microseconds, p) into
int16 event counts `[T, 2, H, W]`, channel 0 = OFF (p = 0 or -1), channel 1 = ON. Binning is
ours, not tonic's `ToFrame(n_time_bins=T)`: tonic uses `window = (t_last - t0) // T` and bins
`[t0 + k*window, t0 + (k+1)*window)`, so it drops every event at or after `t0 + T*window`
(at least those at the last timestamp), returns an empty stream as float64 in a transposed
shape, and needs p in {0, 1}. Here T equal bins of width `(t_last - t0 + 1) / T` us cover
`[t0, t_last]` and every event lands in exactly one of them:

    bin = (t - t0) * T // (t_last - t0 + 1)          (integer arithmetic, t0 = min t)

The first event is in bin 0, the last in bin T-1 (unless the stream spans fewer than T us,
which leaves bins empty). An empty stream gives zeros; p may be bool, 0/1 or -1/+1; counts
saturate at 32767.
Downsampling from the sensor (H, W) to `size x size` scales each coordinate on its own,
`y * size // H`, `x * size // W` (a non-square sensor is squeezed to a square). An event
outside the sensor is an error: a wrong sensor size or swapped x/y should not pass silently.

Data sets (`DATASETS`), each with a train and a test split:

- `digits-dvs`: the 1,797 8x8 handwritten digits that scikit-learn ships (10 classes), seen by
  an emulated event camera (see `digits_dvs_events`); nothing to download. The split is a
  fixed stratified 80/20 (1,438 / 359), the same for every `seed`: the seed changes the
  recordings (saccade jitter, pixel mismatch, noise), never which digits are held out.
- `dvs128-gesture`, `cifar10-dvs`, `n-caltech101`: read through tonic from a local
  `data_root`, lazily, one recording per `__getitem__`. DVS128 Gesture has an official split;
  CIFAR10-DVS and N-Caltech101 get a fixed stratified 90/10 split (the Spikformer protocol
  for CIFAR10-DVS) over the recordings sorted by path. tonic starts a download whenever its
  files look incomplete; we check the layout first and instantiate tonic's classes through
  subclasses whose `download()` raises `UserError`, so no call ever reaches the network.
  A folder that does not have tonic's layout, an empty class folder or a recording that cannot
  be read is a `UserError` naming the folder or file and the layout expected.

Frame cache (tonic data sets). Binning a real-size set takes minutes (CIFAR10-DVS: 10,000
recordings), so the first `load_dataset` of a (data set, split, T, size) bins every recording
once into one int16 .npy file [N, T, 2, size, size] under `cache_dir()`, and later loads open it
with `np.load(mmap_mode="r")`: one file is replaced atomically as a whole and read at any index,
and the operating system pages it in, so the cache need not fit in memory (CIFAR10-DVS at T 16,
128x128: 5.2 GB). The file name carries a key over the data set, split, T, size, FRAMES_VERSION,
the data root's resolved path and the split's recording list; a file of the wrong shape or
dtype, or one that does not parse, is rebuilt with a message, never used. `HQFLOW_CACHE=<dir>`
moves the cache, `HQFLOW_CACHE=off` reads the recordings at every access instead. digits-dvs is
not cached on disk: it is generated in about 1.5 s (tiny config) and kept per process.
"""

from __future__ import annotations

import os
from pathlib import Path

from hqflow.data.cache import CACHE_ENV, FRAMES_VERSION, cache_dir
from hqflow.data.digits import digits_dvs_events, digits_frames, digits_labels
from hqflow.data.frames import EVENT_DTYPE, FrameDataset, events_to_frames
from hqflow.data.tonic_sets import load_tonic
from hqflow.errors import UserError

DATASETS: tuple[str, ...] = ("digits-dvs", "dvs128-gesture", "cifar10-dvs", "n-caltech101")
SPLITS = ("train", "test")

__all__ = ["CACHE_ENV", "DATASETS", "EVENT_DTYPE", "FRAMES_VERSION", "SPLITS", "FrameDataset", "cache_dir",
           "data_root_for", "digits_dvs_events", "events_to_frames", "load_dataset"]


def data_root_for(given: str | os.PathLike | None, recorded: str | None, where: str) -> tuple[str | None, str]:
    """The data root a command on a run or an export reads: `given` (--data-root) when there is one, else
    the one the run recorded (`recorded`, found in `where`: a config.yaml or graph.json). Returns (root,
    a phrase saying which, for the command to print); UserError when the recorded folder no longer exists."""
    if given is not None:
        return str(given), f"{given} (--data-root)"
    if recorded is None:
        return None, "none recorded"
    if not Path(recorded).is_dir():
        raise UserError(f"{where}: data.data_root {recorded!r} no longer exists; pass --data-root with the data "
                        "set's folder")
    return str(recorded), f"{recorded} (recorded in {where})"


def load_dataset(
    name: str,
    split: str,
    time_steps: int,
    size: int,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
) -> FrameDataset:
    """The `split` ("train" or "test") of data set `name` as frames [T = time_steps, 2, size, size].

    digits-dvs is generated here (camera canvas = size; `seed` picks the recordings) and cached
    per (split, time_steps, size, seed) in this process; the others are read from `data_root`
    (a missing or incomplete folder raises `UserError` naming the layout tonic expects) and
    ignore `seed`.
    """
    if name not in DATASETS:
        raise UserError(f"dataset {name!r}: unknown; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UserError(f"split {split!r}: unknown; choose one of {', '.join(SPLITS)}")
    if time_steps < 1 or size < 1:
        raise UserError(f"time_steps = {time_steps}, size = {size}: both need to be at least 1")
    if name == "digits-dvs":
        frames = digits_frames(split, time_steps, size, seed)
        labels = digits_labels(split)
        classes = tuple(str(d) for d in range(10))
        return FrameDataset(name, split, classes, labels, frames.shape[1:], _frames=frames)
    return load_tonic(name, split, time_steps, size, data_root)
