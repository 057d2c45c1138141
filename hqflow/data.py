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

import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hqflow.errors import UserError

DATASETS: tuple[str, ...] = ("digits-dvs", "dvs128-gesture", "cifar10-dvs", "n-caltech101")
SPLITS = ("train", "test")
SPLIT_SEED = 0  # fixes every train/test split; independent of the `seed` argument
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
FRAMES_VERSION = 1  # of the frames a recording gives: bump it whenever binning or reading changes
CACHE_ENV = "HQFLOW_CACHE"  # a folder for the frame cache, or "off"


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
        frames = _digits_frames(split, time_steps, size, seed)
        labels = _digits()[1][_digits_split(split)]
        classes = tuple(str(d) for d in range(10))
        return FrameDataset(name, split, classes, labels, frames.shape[1:], _frames=frames)
    return _load_tonic(name, split, time_steps, size, data_root)


# --- digits-dvs: an emulated event camera over scikit-learn's 8x8 digits --------------------

DIGIT_FILL = 2 / 3  # the digit's 8 px span this fraction of the canvas side
SACCADE_AMPLITUDE = 1 / 8  # triangle size, fraction of the canvas side
TRIANGLE = np.array([(0.5, -0.5), (-0.5, 0.0), (0.5, 0.5)])  # saccade vertices (dy, dx), amplitudes
VERTEX_JITTER = 0.15  # per-sample uniform jitter of each vertex coordinate, amplitudes
DURATION_US = 300_000  # three 100 ms saccades
SUBSTEPS = 90  # simulation steps per recording (3.3 ms); events carry their step's time
THRESHOLD = 0.2  # log-intensity change per event
THRESHOLD_MISMATCH = 0.02  # std of the per-pixel threshold
LOG_EPS = 0.1  # intensity I in [0, 1] is seen as log(I + LOG_EPS)
NOISE_HZ = 0.5  # background events per pixel per second
DIGITS_TEST_FRACTION = 0.2


def digits_dvs_events(index: int, canvas: int, seed: int = 0) -> np.ndarray:
    """Event stream of digit `index` (0..1796 in scikit-learn's order) on a canvas x canvas sensor.

    The digit (ink 0..16 -> intensity 0..1, bright on dark), bilinearly upsampled to
    DIGIT_FILL of the canvas, moves along three straight saccades forming a triangle
    (N-MNIST's motion) of side ~canvas/8 px, over 300 ms in 90 steps. A pixel emits one event
    per THRESHOLD (0.2, per-pixel std 0.02) of change in log(I + 0.1) since its last event,
    its reference moving by one threshold per event; references start at a random phase.
    Background noise: 0.5 Hz per pixel. Jitter, mismatch and noise come from
    `np.random.default_rng([seed, index])`: the stream is a function of (index, canvas, seed).

    Returns a structured array [N] (x, y int16 px; t int64 us in [0, 300000]; p bool, True = ON),
    sorted by t; about 3,400 events at canvas 24. Generating and binning all 1,797 digits
    (canvas 24, T = 4: `load_dataset` of both splits) takes about 1.5 s on one CPU core
    (canvas 32: 2.3 s, canvas 64: 8.5 s), plus about 1 s to import scikit-learn once.
    """
    if not 0 <= index < len(_digits()[1]):
        raise UserError(f"digits-dvs index {index}: out of range 0..{len(_digits()[1]) - 1}")
    if canvas < 8 or seed < 0:
        raise UserError(f"digits-dvs canvas = {canvas}, seed = {seed}: need canvas >= 8, seed >= 0")
    events = _emulate(np.array([index]), canvas, seed)[0]
    return events[np.argsort(events["t"], kind="stable")]


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: intensity float64 [1797, 8, 8] in [0, 1], labels int64 [1797]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target.astype(np.int64)


def _stratified_split(labels: np.ndarray, test_fraction: float, split: str) -> np.ndarray:
    """Sorted indices of `split`: per class, round(test_fraction * n) fixed random members are test."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test[rng.permutation(members)[: round(test_fraction * len(members))]] = True
    return np.flatnonzero(test if split == "test" else ~test)


def _digits_split(split: str) -> np.ndarray:
    return _stratified_split(_digits()[1], DIGITS_TEST_FRACTION, split)


@functools.lru_cache(maxsize=4)
def _digits_frames(split: str, time_steps: int, size: int, seed: int) -> np.ndarray:
    """Frames of a digits-dvs split, read-only int16 [N, T, 2, size, size] (canvas = size)."""
    if size < 8 or seed < 0:
        raise UserError(f"digits-dvs size = {size}, seed = {seed}: need size >= 8, seed >= 0")
    indices = _digits_split(split)
    chunk = max(1, 2**18 // size**2)  # samples emulated together: ~0.25 M pixels of state
    frames = np.empty((len(indices), time_steps, 2, size, size), np.int16)
    for start in range(0, len(indices), chunk):
        streams = _emulate(indices[start : start + chunk], size, seed)
        for i, events in enumerate(streams, start):
            frames[i] = events_to_frames(events, (size, size), time_steps)
    frames.flags.writeable = False
    return frames


def _emulate(indices: np.ndarray, canvas: int, seed: int) -> list[np.ndarray]:
    """Event streams of the digits `indices`, simulated together; each stream in no set order."""
    n, c = len(indices), canvas
    ink = _digits()[0][indices].astype(np.float32)
    steps = np.arange(SUBSTEPS + 1)
    knots = np.linspace(0, SUBSTEPS, 4)  # step at each triangle vertex
    path = np.empty((n, SUBSTEPS + 1, 2))  # digit offset (dy, dx) px at each step
    theta = np.empty((n, c, c), np.float32)
    phase = np.empty((n, c, c), np.float32)
    noise = []
    for k, index in enumerate(indices):
        rng = np.random.default_rng([seed, int(index)])
        vertices = TRIANGLE + rng.uniform(-VERTEX_JITTER, VERTEX_JITTER, (3, 2))
        vertices = SACCADE_AMPLITUDE * c * np.vstack([vertices, vertices[:1]])
        path[k] = np.stack([np.interp(steps, knots, vertices[:, a]) for a in (0, 1)], axis=1)
        theta[k] = THRESHOLD + THRESHOLD_MISMATCH * rng.standard_normal((c, c))
        phase[k] = rng.uniform(-0.5, 0.5, (c, c))
        m = rng.poisson(NOISE_HZ * c * c * DURATION_US * 1e-6)
        noise.append(rng.integers((0, 0, 0, 0), (c, c, DURATION_US, 2), (m, 4)))  # x, y, t, p

    ref = np.log(_render(ink, path[:, 0], c) + LOG_EPS) + phase * theta
    parts = []  # (sample, x, y, t, p, count) per step, then the noise
    for step in range(1, SUBSTEPS + 1):
        change = np.log(_render(ink, path[:, step], c) + LOG_EPS) - ref
        s, y, x = np.nonzero(np.abs(change) >= theta)
        change, th = change[s, y, x], theta[s, y, x]
        count = (np.abs(change) / th).astype(np.int64)
        ref[s, y, x] += np.sign(change) * count * th
        parts.append((s, x, y, np.full(len(s), step * DURATION_US // SUBSTEPS), change > 0, count))
    for k, ev in enumerate(noise):
        ones = np.ones(len(ev), np.int64)
        parts.append((k * ones, ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3] > 0, ones))

    s, x, y, t, p, count = (np.concatenate(column) for column in zip(*parts))
    order = np.argsort(s.astype(np.uint16), kind="stable")  # group by sample (a radix sort)
    count = count[order]
    events = np.empty(count.sum(), EVENT_DTYPE)
    for name, column in zip("xytp", (x, y, t, p)):
        events[name] = np.repeat(column[order], count)
    bounds = np.searchsorted(np.repeat(s[order], count), np.arange(n + 1))
    return [events[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _render(ink: np.ndarray, offset: np.ndarray, canvas: int) -> np.ndarray:
    """Bilinear view of digits [n, 8, 8] (zero outside) shifted by offset [n, 2] px -> [n, C, C]."""
    scale = DIGIT_FILL * canvas / 8  # canvas px per digit px
    centres = np.arange(canvas) + 0.5 - canvas / 2  # pixel centres from the canvas centre, px
    u = (centres - offset[:, :, None]) / scale + 3.5  # [n, 2, C] digit coordinates of pixel centres
    hat = np.maximum(0, 1 - np.abs(u[..., None] - np.arange(8))).astype(np.float32)  # [n, 2, C, 8]
    return hat[:, 0] @ ink @ hat[:, 1].transpose(0, 2, 1)


# --- public data sets through tonic, from a local folder, never downloaded ------------------


class _Tonic(NamedTuple):
    """Where tonic expects a data set: <data_root>/<cls>/<archive> and <cls>/<folder>/**/*<suffix>."""

    cls: str  # tonic class name, also the folder under data_root
    archive: str  # tonic wants this file present (it never checks its content)
    folder: str  # where the extracted recordings lie
    suffix: str
    min_files: int  # tonic downloads when fewer are found
    sensor_hw: tuple[int, int]
    source: str  # where to get the data, in words


TONIC_TEST_FRACTION = 0.1  # CIFAR10-DVS and N-Caltech101 have no official split
_TONIC = {
    "dvs128-gesture": _Tonic(
        "DVSGesture", "ibmGesture{Split}.tar.gz", "ibmGesture{Split}", ".npy", 100, (128, 128),
        "tonic's preprocessed DVS128 Gesture archives (ibmGestureTrain.tar.gz, "
        "ibmGestureTest.tar.gz; recordings from IBM's DVS128 Gesture research page), "
        "extracted next to the archives",
    ),
    "cifar10-dvs": _Tonic(
        "CIFAR10DVS", "CIFAR10DVS.zip", "", ".aedat4", 1000, (128, 128),
        "the CIFAR10-DVS archive as tonic's CIFAR10DVS documents it (Li et al. 2017), with each "
        "class's .aedat4 files extracted into <class>/ next to the archive",
    ),
    "n-caltech101": _Tonic(
        "NCALTECH101", "N-Caltech101-archive.zip", "Caltech101", ".bin", 8709, (180, 240),
        "the N-Caltech101 archive from the data set's page (Orchard et al. 2015), with "
        "Caltech101.zip extracted into Caltech101/<class>/",
    ),
}


def _load_tonic(name, split, time_steps, size, data_root) -> FrameDataset:
    spec = _TONIC[name]
    archive, folder = (f.format(Split=split.capitalize()) for f in (spec.archive, spec.folder))
    layout = (
        f"{name} expects <data_root>/{spec.cls}/{archive} and at least {spec.min_files} "
        f"*{spec.suffix} files under <data_root>/{spec.cls}/{folder}"
    )
    if data_root is None:
        raise UserError(f"{layout}, but no data root was given; get {spec.source}")
    if Path(data_root).exists() and not Path(data_root).is_dir():
        raise UserError(f"data root {data_root}: a file, not a folder; {layout}; get {spec.source}")
    if not Path(data_root).is_dir():
        raise UserError(f"data root {data_root}: no such folder; {layout}; get {spec.source}")
    root = Path(data_root) / spec.cls
    try:
        files = sorted((root / folder).rglob("*" + spec.suffix)) if root.is_dir() else []
    except OSError as err:
        raise UserError(f"{root}: cannot list the recordings ({err.strerror or err}); {layout}") from None
    has_archive = (root / archive).is_file()
    if len(files) < spec.min_files or not has_archive:
        raise UserError(
            f"{root}: found {len(files)} *{spec.suffix} files and {'the' if has_archive else 'no'} "
            f"archive {archive}; {layout}; get {spec.source}"
        )
    _check_layout(name, root / folder, files)

    import tonic.datasets

    if name == "dvs128-gesture":
        ds = _offline(tonic.datasets.DVSGesture)(save_to=str(data_root), train=split == "train")
        classes = tuple(tonic.datasets.DVSGesture.classes)
    elif name == "cifar10-dvs":
        index_of = tonic.datasets.CIFAR10DVS.classes  # class name -> label
        classes = tuple(sorted(index_of, key=index_of.get))
        ds = _offline(tonic.datasets.CIFAR10DVS)(save_to=str(data_root))
    else:
        ds = _offline(tonic.datasets.NCALTECH101)(save_to=str(data_root))
        classes = tuple(sorted(set(ds.targets)))  # tonic's targets are the folder names
    # tonic lists files in file-system order: sort by path so indices and splits are stable.
    order = np.array(sorted(range(len(ds.data)), key=ds.data.__getitem__), dtype=np.int64)
    targets = [ds.targets[i] for i in order]
    labels = np.array([classes.index(t) if isinstance(t, str) else t for t in targets], np.int64)
    if name != "dvs128-gesture":
        keep = _stratified_split(labels, TONIC_TEST_FRACTION, split)
        order, labels = order[keep], labels[keep]
    crop = name == "n-caltech101"
    read = functools.partial(_tonic_frames, name, ds, order, spec.sensor_hw, time_steps, size, crop)
    shape = (time_steps, 2, size, size)
    recordings = [os.path.relpath(ds.data[k], root) for k in order]
    frames = _cached_frames(name, split, shape, root, recordings, read)
    if frames is not None:
        return FrameDataset(name, split, classes, labels, shape, _frames=frames)
    return FrameDataset(name, split, classes, labels, shape, _read=read)


_RECORDING = {  # what a recording file holds, for error messages
    "dvs128-gesture": "a NumPy array [N, 4] of (x, y, p, t ms), as in tonic's preprocessed archives",
    "cifar10-dvs": "an AEDAT 4 event stream",
    "n-caltech101": "N-Caltech101's 40-bit binary events (5 bytes each)",
}


def _check_layout(name: str, folder: Path, files: list[Path]) -> None:
    """Refuse, naming the folder or file, what tonic would misread or crash on in `folder`."""
    if name == "dvs128-gesture":
        expected = f"{folder}/user<NN>_<lighting>/<label 0-10>.npy"
        for path in sorted(p for p in folder.rglob("*") if p.is_dir()):
            user, sep, _ = path.relative_to(folder).parts[0].partition("_")
            if not (sep and user.startswith("user") and user[4:].isdigit()):
                raise UserError(f"{path}: not a user<NN>_<lighting> folder; dvs128-gesture expects {expected}")
        for f in files:
            if f.parent == folder or f.parent.parent != folder:
                raise UserError(f"{f}: not in a user folder; dvs128-gesture expects {expected}")
            if not (f.stem.isdigit() and int(f.stem) <= 10):
                raise UserError(f"{f}: file name is not a label 0-10; dvs128-gesture expects {expected}")
        return
    if name == "cifar10-dvs":
        import tonic.datasets

        classes = tuple(tonic.datasets.CIFAR10DVS.classes)
        expected = f"{folder}/<class>/*.aedat4 with the classes {', '.join(classes)}"
        for f in files:
            if f.parent.name not in classes:
                raise UserError(
                    f"{f}: folder {f.parent.name!r} is not a class; expected one of {', '.join(classes)}"
                )
    else:
        classes = tuple(sorted({f.parent.name for f in files if f.parent != folder}))
        expected = f"{folder}/<class>/*.bin, one folder per class"
        for f in files:
            if f.parent.parent != folder:
                raise UserError(f"{f}: not directly in a class folder; n-caltech101 expects {expected}")
        classes += tuple(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    suffix = _TONIC[name].suffix
    for c in classes:
        if not any((folder / c).glob("*" + suffix)):
            raise UserError(f"{folder / c}: class folder missing or without *{suffix} recordings; "
                            f"{name} expects {expected}")


def _tonic_frames(name, ds, order, sensor_hw, time_steps, size, crop, i) -> np.ndarray:
    """Frames of item i: tonic reads recording order[i]; N-Caltech101 is cropped to the sensor."""
    path = ds.data[order[i]]
    try:
        events, _ = ds[order[i]]
        if crop:  # recordings vary in size (tonic shifted them to x, y >= 0)
            events = events[(events["x"] < sensor_hw[1]) & (events["y"] < sensor_hw[0])]
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a broken file makes the reader raise
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path}: not a readable {name} recording ({type(err).__name__}: {first}); "
                        f"expected {_RECORDING[name]}") from None
    try:
        return events_to_frames(events, sensor_hw, time_steps, size)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


# --- the frame cache ------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Folder of the frame cache: $HQFLOW_CACHE, None if it is "off", else ~/.cache/hqflow/frames
    (under $XDG_CACHE_HOME when set): per user, never the data root, which is often read-only."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hqflow" / "frames"


def _cached_frames(name, split, shape, root, recordings, read) -> np.ndarray | None:
    """Frames of every recording, int16 [N, *shape] memory-mapped from the cache (built on first
    use from `read(i)`); None when the cache is off."""
    folder = cache_dir()
    if folder is None:
        return None
    key = json.dumps([name, split, shape, FRAMES_VERSION, str(Path(root).resolve()), recordings])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    t, _, h, w = shape
    path = folder / f"{name}-{split}-T{t}-{h}x{w}-v{FRAMES_VERSION}-{digest}.npy"
    full = (len(recordings), *shape)
    if path.exists():
        frames, problem = _open_cache(path, full)
        if frames is not None:
            return frames
        print(f"hqflow: frame cache {path} {problem}; rebuilding it", file=sys.stderr)
    _build_cache(path, full, read, f"{name} {split}")
    frames, problem = _open_cache(path, full)
    if frames is None:
        raise UserError(f"{path}: the frame cache just written {problem}; set {CACHE_ENV}=off to read without it")
    return frames


def _open_cache(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """(the memory-mapped array, "") if `path` holds int16 `shape`, else (None, what is wrong)."""
    try:
        frames = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a truncated or overwritten file, any way it fails
        return None, f"is unreadable ({type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]})"
    if not isinstance(frames, np.ndarray) or frames.dtype != np.int16 or frames.shape != shape:
        return None, f"holds {getattr(frames, 'dtype', '?')} {getattr(frames, 'shape', '?')}, expected int16 {shape}"
    return frames, ""


def _build_cache(path: Path, shape: tuple[int, ...], read: Callable[[int], np.ndarray], what: str) -> None:
    """Bin every recording into `path` through a temporary file beside it, moved into place when
    complete (a killed build leaves no cache file; its temporary file is removed by the next build)."""
    nbytes = int(np.prod(shape)) * 2
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed build
            pid = stale.name[len(path.name) + 2 : -len(".tmp")]
            if not (pid.isdigit() and _alive(int(pid))):
                stale.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
    except OSError as err:
        raise UserError(f"frame cache folder {path.parent}: {err.strerror or err}; set {CACHE_ENV}=<a writable "
                        f"folder>, or {CACHE_ENV}=off to read the recordings at every epoch") from None
    if nbytes > free:
        raise UserError(f"frame cache folder {path.parent}: {_size(free)} free, the {what} frames need "
                        f"{_size(nbytes)}; set {CACHE_ENV}=<another folder>, or {CACHE_ENV}=off")
    print(f"hqflow: binning {what} once ({shape[0]} recordings -> int16 {list(shape)}, {_size(nbytes)}) into "
          f"{path} ({CACHE_ENV}=<dir> moves the cache, {CACHE_ENV}=off disables it)", file=sys.stderr)
    from tqdm.auto import tqdm

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=shape)
        for i in tqdm(range(shape[0]), desc=f"binning {what}", leave=False, disable=None):
            out[i] = read(i)
        out.flush()
        del out
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"frame cache {path}: cannot write ({err.strerror or err}); set {CACHE_ENV}=<another "
                        f"folder>, or {CACHE_ENV}=off") from None
    finally:
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


@functools.cache
def _offline(base: type) -> type:
    """tonic data set class of the same name (tonic keys its folder on it) that never downloads."""

    def download(self):
        raise UserError(
            f"{self.location_on_system}: tonic found the data incomplete and wanted to download "
            f"{self.filename}; hqflow never downloads, put the extracted data set there"
        )

    return type(base.__name__, (base,), {"download": download})
