"""Tests of hqflow.data: binning and the embedded digits-dvs set (the offline tonic loaders: test_data_sets.py;
the frame cache: test_data_cache.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow.data import digits
from hqflow.data import EVENT_DTYPE, digits_dvs_events, events_to_frames, load_dataset
from hqflow.errors import UserError

from conftest import SHARED_DATA
from data_folders import make_events
from data_folders import frame_cache  # noqa: F401  (autouse: every test bins into a cache of its own)

NMNIST_SAMPLE = SHARED_DATA / "sample_nmnist.bin"


def random_events(rng, n, sensor_hw, t_max) -> np.ndarray:
    h, w = sensor_hw
    t = np.sort(rng.integers(0, t_max, n))
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.integers(0, 2, n) > 0)


def pixel_totals(events, sensor_hw) -> np.ndarray:
    """Counts per (polarity, y, x) over all time, int64 [2, H, W], by direct accumulation."""
    totals = np.zeros((2, *sensor_hw), np.int64)
    np.add.at(totals, (events["p"].astype(int), events["y"], events["x"]), 1)
    return totals


# --- events_to_frames ----------------------------------------------------------------------


def test_hand_made_events_land_in_expected_bins():
    # sensor H=4, W=6; T=3 over t in [0, 29]: width 10 us -> bins [0,10), [10,20), [20,30)
    events = make_events(x=[0, 5, 5, 2, 2], y=[0, 3, 3, 1, 1], t=[0, 10, 19, 20, 29], p=[1, 0, 0, 1, 0])
    frames = events_to_frames(events, (4, 6), 3)
    expected = np.zeros((3, 2, 4, 6), np.int16)
    expected[0, 1, 0, 0] = 1
    expected[1, 0, 3, 5] = 2
    expected[2, 1, 1, 2] = 1
    expected[2, 0, 1, 2] = 1
    assert frames.dtype == np.int16
    np.testing.assert_array_equal(frames, expected)


def test_bins_have_equal_width():
    rng = np.random.default_rng(1)
    for time_steps, per_bin in [(1, 7), (4, 25), (16, 3)]:
        t = rng.permutation(time_steps * per_bin) + 1000  # one event per us, unsorted
        events = make_events(np.zeros_like(t), np.zeros_like(t), t, np.ones_like(t))
        per_step = events_to_frames(events, (1, 1), time_steps).sum(axis=(1, 2, 3))
        np.testing.assert_array_equal(per_step, np.full(time_steps, per_bin))
        t = np.arange(len(t) + 1)  # one more: bins differ by at most one event
        events = make_events(np.zeros_like(t), np.zeros_like(t), t, np.ones_like(t))
        per_step = events_to_frames(events, (1, 1), time_steps).sum(axis=(1, 2, 3))
        assert per_step.sum() == len(t) and per_step.max() - per_step.min() <= 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(0, 10**7), st.booleans()),
        min_size=1,
        max_size=200,
    ),
    st.integers(1, 20),
)
def test_every_event_counted_once(rows, time_steps):
    x, y, t, p = map(np.array, zip(*rows))
    events = make_events(x, y, t, p)
    frames = events_to_frames(events, (3, 5), time_steps)
    assert frames.shape == (time_steps, 2, 3, 5)
    np.testing.assert_array_equal(frames.sum(axis=0), pixel_totals(events, (3, 5)))
    first, last = events[t == t.min()], events[t == t.max()]
    assert (frames[0] >= pixel_totals(first, (3, 5))).all()
    if t.max() - t.min() + 1 >= time_steps:  # a shorter stream leaves some bins empty
        assert (frames[-1] >= pixel_totals(last, (3, 5))).all()


def test_empty_stream_gives_zeros():
    frames = events_to_frames(np.empty(0, EVENT_DTYPE), (128, 128), 5, size=32)
    assert frames.dtype == np.int16
    np.testing.assert_array_equal(frames, np.zeros((5, 2, 32, 32), np.int16))


def test_polarity_encodings_agree():
    x, y, t, on = [1, 2, 3, 0], [0, 1, 2, 2], [0, 5, 9, 12], np.array([True, False, True, False])
    frames = events_to_frames(make_events(x, y, t, on), (3, 4), 2)
    for p in (on.astype(int), 2 * on - 1):
        np.testing.assert_array_equal(frames, events_to_frames(make_events(x, y, t, p, int), (3, 4), 2))
    assert frames[:, 0].sum() == 2 and frames[:, 1].sum() == 2
    with pytest.raises(UserError, match="polarity p = 2"):
        events_to_frames(make_events(x, y, t, [0, 1, 2, 1], int), (3, 4), 2)


def test_downsampling_scales_each_axis():
    # sensor H=4, W=8 to 2x2: y // 2, x // 4
    events = make_events(x=[0, 3, 4, 7, 7], y=[0, 1, 2, 3, 0], t=[0, 0, 0, 0, 0], p=[1, 1, 1, 1, 0])
    frames = events_to_frames(events, (4, 8), 1, size=2)
    np.testing.assert_array_equal(frames[0, 1], [[2, 0], [0, 2]])
    np.testing.assert_array_equal(frames[0, 0], [[0, 1], [0, 0]])


def test_counts_saturate_at_int16_max():
    n = 40_000
    frames = events_to_frames(make_events(np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n)), (1, 1), 1)
    assert frames.dtype == np.int16 and frames[0, 1, 0, 0] == 32767


def test_bad_events_are_rejected():
    with pytest.raises(UserError, match=r"\(x, y\) = \(6, 0\) lies outside the 4x6"):
        events_to_frames(make_events([0, 6], [0, 0], [0, 1], [1, 1]), (4, 6), 2)
    with pytest.raises(UserError, match="missing field"):
        events_to_frames(np.zeros(3, [("x", int), ("y", int), ("t", int)]), (4, 6), 2)
    with pytest.raises(UserError, match="integer microseconds"):
        float_t = [("x", int), ("y", int), ("t", float), ("p", bool)]
        events_to_frames(make_events([0], [0], [0], [1]).astype(float_t), (4, 6), 2)
    with pytest.raises(UserError, match="time_steps = 0"):
        events_to_frames(make_events([0], [0], [0], [1]), (4, 6), 0)


def tonic_frames(events, sensor_hw, time_steps) -> np.ndarray:
    from tonic.transforms import ToFrame

    return ToFrame(sensor_size=(sensor_hw[1], sensor_hw[0], 2), n_time_bins=time_steps)(events)


def test_agrees_with_tonic_where_the_bins_coincide():
    # t0 = 0, t_last = T * w: tonic's window is w; ours is w + 1/T, and every event strictly
    # inside (k w, (k+1) w) is in bin k for both. tonic drops the event at t_last; ours keeps it.
    rng = np.random.default_rng(2)
    sensor, time_steps, w = (10, 12), 5, 1000
    k, u = rng.integers(0, time_steps, 500), rng.integers(1, w, 500)
    t = np.sort(np.concatenate([[0], k * w + u, [time_steps * w]]))
    n = len(t)
    events = make_events(rng.integers(0, 12, n), rng.integers(0, 10, n), t, rng.integers(0, 2, n) > 0)
    ours, theirs = events_to_frames(events, sensor, time_steps), tonic_frames(events, sensor, time_steps)
    last = events[-1]
    theirs[time_steps - 1, int(last["p"]), last["y"], last["x"]] += 1
    np.testing.assert_array_equal(ours, theirs)


def test_tonic_drops_only_the_tail():
    rng = np.random.default_rng(3)
    sensor = (8, 9)
    for time_steps in (3, 7, 16):
        events = random_events(rng, 2000, sensor, 10**6)
        t0, t_last = events["t"][0], events["t"][-1]
        dropped = events[events["t"] >= t0 + time_steps * ((t_last - t0) // time_steps)]
        ours, theirs = events_to_frames(events, sensor, time_steps), tonic_frames(events, sensor, time_steps)
        assert ours.sum() == len(events)
        assert len(dropped) >= 1 and theirs.sum() == len(events) - len(dropped)
        np.testing.assert_array_equal(ours.sum(axis=0), theirs.sum(axis=0) + pixel_totals(dropped, sensor))


@pytest.mark.skipif(not NMNIST_SAMPLE.is_file(), reason=f"shared N-MNIST sample not found at {NMNIST_SAMPLE}")
def test_real_nmnist_recording():
    from tonic.io import read_mnist_file

    xytp = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    events = read_mnist_file(str(NMNIST_SAMPLE), dtype=xytp)
    frames = events_to_frames(events, (34, 34), 8)
    assert frames.shape == (8, 2, 34, 34) and frames.dtype == np.int16
    assert frames.sum() == len(events) > 0
    assert frames[:, 0].sum() > 0 and frames[:, 1].sum() > 0
    assert (frames.sum(axis=(1, 2, 3)) > 0).all()


# --- digits-dvs ------------------------------------------------------------------------------


def test_digits_frames_shape_dtype_and_labels():
    ds = load_dataset("digits-dvs", "train", time_steps=4, size=16)
    frames, label = ds[0]
    assert ds.frame_shape == (4, 2, 16, 16) and frames.shape == ds.frame_shape
    assert frames.dtype == np.int16 and isinstance(label, int)
    assert ds.frames_array().shape == (len(ds), 4, 2, 16, 16)
    assert ds.classes == tuple("0123456789")
    assert ds.labels.dtype == np.int64 and set(ds.labels) == set(range(10))
    np.testing.assert_array_equal(ds[-1][0], ds.frames_array()[-1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_digits_split_is_fixed_disjoint_and_stratified():
    from sklearn.datasets import load_digits

    target = load_digits().target
    train, test = digits.digits_split("train"), digits.digits_split("test")
    assert len(train) + len(test) == 1797
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    np.testing.assert_array_equal(load_dataset("digits-dvs", "test", 4, 16).labels, target[test])
    per_class, held_out = np.bincount(target), np.bincount(target[test], minlength=10)
    assert (np.abs(held_out - 0.2 * per_class) <= 0.5).all()
    np.testing.assert_array_equal(digits.digits_split("test"), test)


def test_digits_are_deterministic_per_seed():
    np.testing.assert_array_equal(digits_dvs_events(5, 16, seed=0), digits_dvs_events(5, 16, seed=0))
    assert not np.array_equal(digits_dvs_events(5, 16, seed=0), digits_dvs_events(5, 16, seed=1))
    first = load_dataset("digits-dvs", "test", 4, 16, seed=0).frames_array().copy()
    digits.digits_frames.cache_clear()
    np.testing.assert_array_equal(load_dataset("digits-dvs", "test", 4, 16, seed=0).frames_array(), first)
    assert not np.array_equal(load_dataset("digits-dvs", "test", 4, 16, seed=1).frames_array(), first)


def test_digits_dataset_frames_are_the_binned_streams():
    ds = load_dataset("digits-dvs", "test", 4, 16)
    for i in (0, 17, len(ds) - 1):
        index = int(digits.digits_split("test")[i])
        np.testing.assert_array_equal(ds[i][0], events_to_frames(digits_dvs_events(index, 16), (16, 16), 4))


def test_digits_every_bin_sees_moving_edges_of_both_polarities():
    frames = load_dataset("digits-dvs", "test", 4, 16).frames_array()
    per_bin = frames.sum(axis=(3, 4), dtype=np.int64)  # [N, T, 2]
    assert per_bin.min() >= 50  # noise alone gives about 1 event per bin and polarity


def test_digits_event_stream_format():
    events = digits_dvs_events(0, 24, seed=3)
    assert events.dtype == EVENT_DTYPE and len(events) > 1000
    assert (np.diff(events["t"]) >= 0).all()
    assert events["t"].min() >= 0 and events["t"].max() <= digits.DURATION_US
    assert events["x"].max() < 24 and events["y"].max() < 24 and events["x"].min() >= 0
    assert events["p"].any() and (~events["p"]).any()
    with pytest.raises(UserError, match="index 1797"):
        digits_dvs_events(1797, 24)
    with pytest.raises(UserError, match="canvas = 4"):
        digits_dvs_events(0, 4)
