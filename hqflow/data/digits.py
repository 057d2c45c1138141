"""digits-dvs: scikit-learn's 8x8 digits seen by an emulated event camera (see the package docstring)."""

from __future__ import annotations

import functools

import numpy as np

from hqflow.errors import UserError
from hqflow.data.frames import EVENT_DTYPE, events_to_frames, stratified_split

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


def digits_split(split: str) -> np.ndarray:
    """Sorted indices of `split` into scikit-learn's 1,797 digits (a fixed stratified 80/20)."""
    return stratified_split(_digits()[1], DIGITS_TEST_FRACTION, split)


def digits_labels(split: str) -> np.ndarray:
    """Labels int64 [N] of `split`, in the order of `digits_frames`."""
    return _digits()[1][digits_split(split)]


@functools.lru_cache(maxsize=4)
def digits_frames(split: str, time_steps: int, size: int, seed: int) -> np.ndarray:
    """Frames of a digits-dvs split, read-only int16 [N, T, 2, size, size] (canvas = size)."""
    if size < 8 or seed < 0:
        raise UserError(f"digits-dvs size = {size}, seed = {seed}: need size >= 8, seed >= 0")
    indices = digits_split(split)
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
