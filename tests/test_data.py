"""Tests of hqflow.data: binning, the embedded digits-dvs set and the offline tonic loaders."""

import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow import data
from hqflow.data import cache, digits, tonic_sets
from hqflow.data import frames as data_frames
from hqflow.data import DATASETS, EVENT_DTYPE, digits_dvs_events, events_to_frames, load_dataset
from hqflow.errors import UserError

from conftest import SHARED_DATA

NMNIST_SAMPLE = SHARED_DATA / "sample_nmnist.bin"


def make_events(x, y, t, p, p_dtype=bool) -> np.ndarray:
    events = np.empty(len(t), [("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", p_dtype)])
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


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


# --- tonic loaders on fabricated folders -----------------------------------------------------


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if anything in tonic tries to reach the network."""
    import urllib.request

    import tonic.dataset
    import tonic.download_utils

    def fail(*args, **kwargs):
        pytest.fail(f"a download was attempted: {args}")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", fail)
    monkeypatch.setattr(tonic.download_utils, "download_and_extract_archive", fail)
    monkeypatch.setattr(tonic.download_utils, "download_url", fail)
    monkeypatch.setattr(urllib.request, "urlopen", fail)


def gesture_events(label: int) -> np.ndarray:
    """A recording in tonic's DVS Gesture .npy form: int64 [4, (x, y, p, t ms)]."""
    y = 2 * label
    return np.array([[label, y, 1, 0], [label, y, 1, 5], [label + 1, y, 0, 10], [3, 4, 0, 20]])


def make_gesture_root(root: Path, users: int = 10, archive: bool = True, splits=("Train",)) -> Path:
    for split in splits:
        base = root / "DVSGesture" / f"ibmGesture{split}"
        for user in range(1, users + 1):
            folder = base / f"user{user:02d}_{'fluorescent' if user % 2 else 'led'}"
            folder.mkdir(parents=True)
            for label in range(11):
                np.save(folder / f"{label}.npy", gesture_events(label))
        if archive:
            (root / "DVSGesture" / f"ibmGesture{split}.tar.gz").touch()
    return root


@pytest.fixture(autouse=True)
def frame_cache(tmp_path, monkeypatch) -> Path:
    """Every test bins into its own frame cache folder, never the user's."""
    folder = tmp_path / "frame-cache"
    monkeypatch.setenv("HQFLOW_CACHE", str(folder))
    return folder


@pytest.mark.parametrize("cache", ["on", "off"])
def test_dvs128_gesture_from_local_folder(tmp_path, no_download, monkeypatch, cache):
    if cache == "off":
        monkeypatch.setenv("HQFLOW_CACHE", "off")
    root = make_gesture_root(tmp_path)
    ds = load_dataset("dvs128-gesture", "train", time_steps=2, size=128, data_root=root)
    assert len(ds) == 110 and len(ds.classes) == 11 and ds.classes[0] == "Hand clapping"
    np.testing.assert_array_equal(np.bincount(ds.labels), np.full(11, 10))
    i = int(np.flatnonzero(ds.labels == 3)[0])
    frames, label = ds[i]
    # t = 0, 5, 10, 20 ms -> us; span 20001 us, T = 2: bins 0, 0, 0, 1
    expected = np.zeros((2, 2, 128, 128), np.int16)
    expected[0, 1, 6, 3], expected[0, 0, 6, 4], expected[1, 0, 4, 3] = 2, 1, 1
    assert label == 3
    np.testing.assert_array_equal(frames, expected)
    if cache == "off":
        with pytest.raises(ValueError, match="index it"):
            ds.frames_array()
    else:
        np.testing.assert_array_equal(ds.frames_array()[i], expected)


def test_dvs128_gesture_incomplete_folders(tmp_path, no_download):
    with pytest.raises(UserError, match=r"found 0 \*\.npy files and no archive ibmGestureTest\.tar\.gz"):
        load_dataset("dvs128-gesture", "test", 4, 32, data_root=make_gesture_root(tmp_path))
    few = make_gesture_root(tmp_path / "few", users=5)
    with pytest.raises(UserError, match=r"found 55 \*\.npy files and the archive.*at least 100"):
        load_dataset("dvs128-gesture", "train", 4, 32, data_root=few)
    no_archive = make_gesture_root(tmp_path / "no_archive", archive=False)
    with pytest.raises(UserError, match=r"found 110 \*\.npy files and no archive ibmGestureTrain\.tar\.gz"):
        load_dataset("dvs128-gesture", "train", 4, 32, data_root=no_archive)


def caltech_bin(events) -> bytes:
    """N-Caltech101's 40-bit events: x, y, then p (bit 7) and a 23-bit time stamp in us."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 255, t & 255])
    return bytes(out)


# (x, y, p, t us): two events fall outside the fixed 180 x 240 sensor and are cropped
CALTECH_EVENTS = [
    (0, 0, 1, 0), (3, 5, 0, 100), (3, 5, 0, 200), (250, 10, 1, 300), (10, 179, 1, 400), (5, 200, 0, 500)
]
CALTECH_CLASSES = ("BACKGROUND_Google", "accordion", "airplanes")


@pytest.fixture(scope="module")
def caltech_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("caltech")
    base = root / "NCALTECH101"
    recording = root / "recording.bin"
    recording.write_bytes(caltech_bin(CALTECH_EVENTS))
    for c in CALTECH_CLASSES:
        (base / "Caltech101" / c).mkdir(parents=True)
        for k in range(8709 // 3):
            (base / "Caltech101" / c / f"image_{k + 1:04d}.bin").symlink_to(recording)
    (base / "N-Caltech101-archive.zip").touch()
    return root


def test_n_caltech101_from_local_folder(caltech_root, no_download):
    train = load_dataset("n-caltech101", "train", time_steps=2, size=60, data_root=caltech_root)
    test = load_dataset("n-caltech101", "test", time_steps=2, size=60, data_root=caltech_root)
    assert train.classes == CALTECH_CLASSES
    assert len(train) + len(test) == 8709
    np.testing.assert_array_equal(np.bincount(test.labels), [290, 290, 290])
    frames, label = test[0]
    # kept: (0,0,ON,0) (3,5,OFF,100) (3,5,OFF,200) (10,179,ON,400); span 401 us; y*60//180, x*60//240
    expected = np.zeros((2, 2, 60, 60), np.int16)
    expected[0, 1, 0, 0], expected[0, 0, 1, 0], expected[1, 1, 59, 2] = 1, 2, 1
    assert label == 0
    np.testing.assert_array_equal(frames, expected)


def test_stratified_split_is_disjoint_and_fixed():
    labels = np.repeat(np.arange(4), [10, 31, 1, 100])
    train, test = (data_frames.stratified_split(labels, 0.1, s) for s in ("train", "test"))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=4), [1, 3, 0, 10])
    np.testing.assert_array_equal(data_frames.stratified_split(labels, 0.1, "test"), test)


def aedat4_bytes(events) -> bytes:
    """An uncompressed AEDAT 4 file with one 128x128 event stream: events (t us, x, y, on)."""
    xml = ('<dv version="2.0"><node name="outInfo" path="/outInfo/"><node name="0" path="/outInfo/0/">'
           '<attr key="typeIdentifier" type="string">EVTS</attr><node name="info" path="/outInfo/0/info/">'
           '<attr key="sizeX" type="int">128</attr><attr key="sizeY" type="int">128</attr>'
           '</node></node></node></dv>').encode()
    # flatbuffer IOHeader: root offset, vtable (3 fields), table (compression NONE, no data table, xml)
    head = struct.pack("<I", 16) + struct.pack("<HHHHH", 10, 20, 4, 8, 16) + bytes(2)
    head += struct.pack("<iiqII", 12, 0, -1, 4, len(xml)) + xml + bytes(1)
    head += bytes(-len(head) % 4)
    # size-prefixed flatbuffer EventPacket "EVTS": elements [Event {t i64, x i16, y i16, on bool}]
    body = struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + bytes(2)
    body += struct.pack("<iII", 8, 4, len(events)) + b"".join(struct.pack("<qhh?3x", *e) for e in events)
    packet = struct.pack("<I", len(body)) + body
    return b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(head)) + head + struct.pack("<II", 0, len(packet)) + packet


CIFAR_EVENTS = [(1000, 3, 5, True), (1500, 3, 5, False), (2999, 127, 64, True)]


def make_cifar_root(root: Path, per_class: int = 100, stray: bool = False) -> Path:
    base = root / "CIFAR10DVS"
    recording = aedat4_bytes(CIFAR_EVENTS)
    for name in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
        (base / name).mkdir(parents=True)
        for k in range(per_class):
            (base / name / f"cifar10_{name}_{k}.aedat4").write_bytes(recording)
    if stray:
        (base / "planes").mkdir()
        (base / "planes" / "x.aedat4").touch()
    (base / "CIFAR10DVS.zip").touch()
    return root


def test_cifar10_dvs_listing_split_and_frames(tmp_path, no_download):
    root = make_cifar_root(tmp_path)
    train = load_dataset("cifar10-dvs", "train", 4, 32, data_root=root)
    test = load_dataset("cifar10-dvs", "test", 4, 32, data_root=root)
    assert train.classes[:3] == ("airplane", "automobile", "bird") and len(train.classes) == 10
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(10, 90))
    np.testing.assert_array_equal(np.bincount(test.labels), np.full(10, 10))
    assert train.frame_shape == (4, 2, 32, 32)
    # t 1000, 1500, 2999 us: span 2000 us, T 4 -> bins 0, 1, 3; 128 px -> 32: coordinate // 4
    expected = np.zeros((4, 2, 32, 32), np.int16)
    expected[0, 1, 1, 0], expected[1, 0, 1, 0], expected[3, 1, 16, 31] = 1, 1, 1
    np.testing.assert_array_equal(test[5][0], expected)


def test_cifar10_dvs_rejects_unknown_class_folder(tmp_path, no_download):
    with pytest.raises(UserError, match="folder 'planes' is not a class"):
        load_dataset("cifar10-dvs", "train", 4, 32, data_root=make_cifar_root(tmp_path, stray=True))


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("dvs128-gesture", r"DVSGesture/ibmGestureTrain\.tar\.gz and at least 100 \*\.npy"),
        ("cifar10-dvs", r"CIFAR10DVS/CIFAR10DVS\.zip and at least 1000 \*\.aedat4"),
        ("n-caltech101", r"NCALTECH101/N-Caltech101-archive\.zip and at least 8709 \*\.bin"),
    ],
)
def test_missing_data_root_names_the_layout(tmp_path, no_download, name, layout):
    with pytest.raises(UserError, match=f"{layout}.*no data root was given"):
        load_dataset(name, "train", 4, 32)
    with pytest.raises(UserError, match=f"no such folder.*{layout}"):
        load_dataset(name, "train", 4, 32, data_root=tmp_path / "absent")
    with pytest.raises(UserError, match=f"found 0 .*{layout}"):
        load_dataset(name, "train", 4, 32, data_root=tmp_path)


def test_tonic_classes_never_download(tmp_path, no_download):
    import tonic.datasets

    for base in (tonic.datasets.DVSGesture, tonic.datasets.CIFAR10DVS, tonic.datasets.NCALTECH101):
        offline = tonic_sets._offline(base)
        assert offline.__name__ == base.__name__
        with pytest.raises(UserError, match="hqflow never downloads"):
            offline(save_to=str(tmp_path))


def test_unknown_names_list_the_choices():
    with pytest.raises(UserError, match="dataset 'mnist': unknown; choose one of " + ", ".join(DATASETS)):
        load_dataset("mnist", "train", 4, 32)
    with pytest.raises(UserError, match="split 'val'"):
        load_dataset("digits-dvs", "val", 4, 32)


def test_unsigned_fields_bin_like_signed():
    # CIFAR10-DVS recordings come as t uint64, x/y uint16: t - t.min() must stay integer
    signed = make_events([0, 5, 2], [1, 3, 0], [7, 20, 13], [1, 0, 1])
    unsigned = signed.astype([("x", np.uint16), ("y", np.uint16), ("t", np.uint64), ("p", bool)])
    np.testing.assert_array_equal(events_to_frames(unsigned, (4, 6), 3), events_to_frames(signed, (4, 6), 3))


# --- the frame cache -------------------------------------------------------------------------


@pytest.fixture
def gesture_reads(monkeypatch) -> list[str]:
    """Paths of the recordings tonic's DVSGesture reader opened, in order."""
    import tonic.datasets

    calls: list[str] = []
    original = tonic.datasets.DVSGesture.__getitem__

    def counting(self, index):
        calls.append(self.data[index])
        return original(self, index)

    monkeypatch.setattr(tonic.datasets.DVSGesture, "__getitem__", counting)
    return calls


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_cache_is_built_once_and_reused(tmp_path, frame_cache, gesture_reads, no_download, capsys):
    root = make_gesture_root(tmp_path / "data")
    first = load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    assert len(gesture_reads) == 110
    (cached,) = cache_files(frame_cache)
    assert cached.name.startswith("dvs128-gesture-train-T2-32x32-v1-") and cached.suffix == ".npy"
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and str(cached) in message and "110 recordings" in message and "MB" in message
    for _ in range(2):  # a new load (another process, another epoch) reads no recording
        again = load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
        for i in range(len(again)):
            again[i]
    assert len(gesture_reads) == 110 and capsys.readouterr().err == ""
    np.testing.assert_array_equal(again.frames_array(), first.frames_array())
    assert isinstance(again.frames_array(), np.memmap) and not again.frames_array().flags.writeable
    # another T, size or split is another file
    load_dataset("dvs128-gesture", "train", 4, 32, data_root=root)
    assert len(cache_files(frame_cache)) == 2 and len(gesture_reads) == 220


def test_cache_off_reads_every_time(tmp_path, frame_cache, gesture_reads, no_download, monkeypatch):
    monkeypatch.setenv("HQFLOW_CACHE", "off")
    ds = load_dataset("dvs128-gesture", "train", 2, 32, data_root=make_gesture_root(tmp_path / "data"))
    assert gesture_reads == []  # lazily, one recording per item
    for _ in range(2):
        for i in range(len(ds)):
            ds[i]
    assert len(gesture_reads) == 220 and not frame_cache.exists()


def test_cache_rebuilds_on_version_bump_and_bad_files(tmp_path, frame_cache, gesture_reads, no_download,
                                                      monkeypatch, capsys):
    root = make_gesture_root(tmp_path / "data")
    reference = load_dataset("dvs128-gesture", "train", 2, 32, data_root=root).frames_array().copy()
    (cached,) = cache_files(frame_cache)
    capsys.readouterr()
    bad_contents = {
        "truncated": lambda: cached.write_bytes(cached.read_bytes()[:5000]),
        "random bytes": lambda: cached.write_bytes(np.random.default_rng(0).bytes(4000)),
        "empty": lambda: cached.write_bytes(b""),
        "wrong shape": lambda: np.save(cached, reference[:, :1]),
        "wrong dtype": lambda: np.save(cached, reference.astype(np.int32)),
    }
    for what, spoil in bad_contents.items():
        spoil()
        reads = len(gesture_reads)
        ds = load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
        assert len(gesture_reads) == reads + 110, what
        assert "rebuilding" in capsys.readouterr().err, what
        np.testing.assert_array_equal(ds.frames_array(), reference)
    assert cache_files(frame_cache) == [cached]
    monkeypatch.setattr(cache, "FRAMES_VERSION", cache.FRAMES_VERSION + 1)  # binning changed
    load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    assert len(cache_files(frame_cache)) == 2 and len(gesture_reads) == 7 * 110


def test_cache_key_follows_the_source(tmp_path, frame_cache, gesture_reads, no_download):
    root = make_gesture_root(tmp_path / "data")
    load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    other = make_gesture_root(tmp_path / "copy")  # same recordings elsewhere: another source
    load_dataset("dvs128-gesture", "train", 2, 32, data_root=other)
    assert len(cache_files(frame_cache)) == 2
    (root / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent" / "3.npy").unlink()  # one recording fewer
    ds = load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    assert len(ds) == 109 and len(cache_files(frame_cache)) == 3 and len(gesture_reads) == 3 * 110 - 1


def test_failed_or_killed_build_leaves_no_cache(tmp_path, frame_cache, no_download, monkeypatch):
    import tonic.datasets

    root = make_gesture_root(tmp_path / "data")
    calls = []

    def broken(self, index):  # the 50th recording cannot be read
        calls.append(index)
        if len(calls) == 50:
            raise OSError("input/output error")
        return np.zeros(0, data.EVENT_DTYPE), 0

    monkeypatch.setattr(tonic.datasets.DVSGesture, "__getitem__", broken)
    with pytest.raises(UserError, match="not a readable dvs128-gesture recording.*input/output error"):
        load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    assert cache_files(frame_cache) == []  # neither a cache file nor its temporary file
    monkeypatch.undo()
    monkeypatch.setenv("HQFLOW_CACHE", str(frame_cache))
    load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    (cached,) = cache_files(frame_cache)
    killed = cached.with_name(f".{cached.name}.999999999.tmp")  # what a SIGKILLed build leaves
    killed.write_bytes(b"half")
    cached.unlink()
    load_dataset("dvs128-gesture", "train", 2, 32, data_root=root)
    assert cache_files(frame_cache) == [cached]


def test_default_cache_folder_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("HQFLOW_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "hqflow" / "frames"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir() == Path.home() / ".cache" / "hqflow" / "frames"
    monkeypatch.setenv("HQFLOW_CACHE", "OFF")
    assert data.cache_dir() is None


def test_unwritable_cache_folder_is_named(tmp_path, no_download, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HQFLOW_CACHE", str(blocker / "cache"))
    with pytest.raises(UserError, match=rf"frame cache folder {blocker / 'cache'}.*HQFLOW_CACHE=off"):
        load_dataset("dvs128-gesture", "train", 2, 32, data_root=make_gesture_root(tmp_path / "data"))


# --- broken data folders: one UserError naming the folder or file ------------------------------


def _gesture(tmp_path: Path) -> tuple[Path, Path]:
    root = make_gesture_root(tmp_path / "data")
    return root, root / "DVSGesture" / "ibmGestureTrain"


def _cifar(tmp_path: Path) -> tuple[Path, Path]:
    root = make_cifar_root(tmp_path / "data", per_class=112)  # one class fewer still makes tonic's 1000
    return root, root / "CIFAR10DVS"


def _caltech(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "data"
    base = root / "NCALTECH101" / "Caltech101"
    recording = tmp_path / "recording.bin"
    recording.write_bytes(caltech_bin(CALTECH_EVENTS))
    for c in CALTECH_CLASSES:
        (base / c).mkdir(parents=True)
        for k in range(8709 // 3 + 1):
            (base / c / f"image_{k + 1:04d}.bin").symlink_to(recording)
    (root / "NCALTECH101" / "N-Caltech101-archive.zip").touch()
    return root, base


def _replace(path: Path, content: bytes) -> Path:
    path.unlink()
    path.write_bytes(content)
    return path


def _spoil_npy(folder: Path, array) -> Path:
    target = folder / "user03_fluorescent" / "4.npy"
    target.unlink()
    np.save(target, array)
    return target


BROKEN = {  # id: (data set, make, spoil(root, folder) -> the path the message must name, message)
    "gesture no sub-folder": ("dvs128-gesture", _gesture, lambda r, f: shutil.rmtree(f) or r / "DVSGesture",
                              r"found 0 \*\.npy files.*ibmGestureTrain"),
    "gesture files outside user folders": (
        "dvs128-gesture", _gesture,
        lambda r, f: [(f / "user01_fluorescent" / "1.npy").rename(f / "1.npy"), f / "1.npy"][1], "not in a user folder"),
    "gesture folder not user<NN>": (
        "dvs128-gesture", _gesture,
        lambda r, f: [(f / "user02_led").rename(f / "alice"), f / "alice"][1], r"not a user<NN>_<lighting> folder"),
    "gesture file not a label": (
        "dvs128-gesture", _gesture,
        lambda r, f: [(f / "user02_led" / "3.npy").rename(f / "user02_led" / "clap.npy"), f / "user02_led" / "clap.npy"][1],
        "file name is not a label 0-10"),
    "gesture label 11": (
        "dvs128-gesture", _gesture,
        lambda r, f: [(f / "user02_led" / "3.npy").rename(f / "user02_led" / "11.npy"), f / "user02_led" / "11.npy"][1],
        "file name is not a label 0-10"),
    "gesture random bytes": ("dvs128-gesture", _gesture,
                             lambda r, f: _replace(f / "user03_fluorescent" / "4.npy", b"\x93NUMPY garbage"),
                             "not a readable dvs128-gesture recording"),
    "gesture wrong columns": ("dvs128-gesture", _gesture, lambda r, f: _spoil_npy(f, np.zeros((5, 3), np.int64)),
                              "not a readable dvs128-gesture recording"),
    "gesture pickled object": ("dvs128-gesture", _gesture, lambda r, f: _spoil_npy(f, np.array([{"a": 1}], object)),
                               "not a readable dvs128-gesture recording"),
    "cifar empty class folder": (
        "cifar10-dvs", _cifar, lambda r, f: [p.unlink() for p in (f / "dog").iterdir()] and f / "dog",
        r"class folder missing or without \*\.aedat4"),
    "cifar class folder missing": ("cifar10-dvs", _cifar, lambda r, f: shutil.rmtree(f / "cat") or f / "cat",
                                   "class folder missing"),
    "cifar random bytes": ("cifar10-dvs", _cifar, lambda r, f: _replace(f / "ship" / "cifar10_ship_7.aedat4", b"garbage"),
                           "not a readable cifar10-dvs recording"),
    "cifar truncated": ("cifar10-dvs", _cifar,
                        lambda r, f: _replace(f / "ship" / "cifar10_ship_7.aedat4", aedat4_bytes(CIFAR_EVENTS)[:-9]),
                        "not a readable cifar10-dvs recording"),
    "cifar empty file": ("cifar10-dvs", _cifar, lambda r, f: _replace(f / "ship" / "cifar10_ship_7.aedat4", b""),
                         "not a readable cifar10-dvs recording"),
    "caltech empty class folder": ("n-caltech101", _caltech, lambda r, f: (f / "Faces_easy").mkdir() or f / "Faces_easy",
                                   r"class folder missing or without \*\.bin"),
    "caltech file outside class folders": (
        "n-caltech101", _caltech,
        lambda r, f: [(f / "accordion" / "image_0001.bin").rename(f / "image_0001.bin"), f / "image_0001.bin"][1],
        "not directly in a class folder"),
    "caltech truncated": ("n-caltech101", _caltech,
                          lambda r, f: _replace(f / "airplanes" / "image_0002.bin", caltech_bin(CALTECH_EVENTS)[:-2]),
                          "not a readable n-caltech101 recording"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_data_folder_gives_one_clear_error(tmp_path, no_download, case):
    name, make, spoil, message = BROKEN[case]
    root, folder = make(tmp_path)
    named = spoil(root, folder)
    with pytest.raises(UserError) as err:
        for split in ("train", "test") if name != "dvs128-gesture" else ("train",):
            load_dataset(name, split, 2, 32, data_root=root)
    text = str(err.value)
    assert "\n" not in text and str(named) in text and re.search(message, text), text


def test_data_root_that_is_a_file(tmp_path, no_download):
    target = tmp_path / "gesture.tar.gz"
    target.write_bytes(b"x")
    with pytest.raises(UserError, match=rf"data root {target}: a file, not a folder; .*DVSGesture/ibmGestureTrain"):
        load_dataset("dvs128-gesture", "train", 2, 32, data_root=target)


def test_spoilt_folders_pass_unspoilt(tmp_path, no_download):
    """Negative control of the table: each maker's folder loads before it is spoilt."""
    for make, name in ((_gesture, "dvs128-gesture"), (_cifar, "cifar10-dvs")):
        root, _ = make(tmp_path / name)
        assert len(load_dataset(name, "train", 2, 32, data_root=root)) > 0


# --- one training step of each seed data set, class count taken from the data ------------------

TINY_MODEL = {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]}


def _one_epoch(name: str, root: Path, out: Path, model: dict | None = None):
    from hqflow.config import config_from_dict
    from hqflow.search.trainer import train

    cfg = config_from_dict({
        "model": model or TINY_MODEL,
        "data": {"dataset": name, "time_steps": 2, "data_root": str(root), "max_train_samples": 4},
        "train": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0, "num_workers": 0},
    })
    return train(cfg, out, progress=False)


@pytest.mark.parametrize(("name", "classes"), [("dvs128-gesture", 11), ("cifar10-dvs", 10), ("n-caltech101", 3)])
def test_one_training_step_per_seed_data_set(tmp_path, no_download, caltech_root, name, classes):
    import yaml

    from hqflow.search.checkpoint import load_checkpoint

    root = {"dvs128-gesture": lambda: make_gesture_root(tmp_path / "data", splits=("Train", "Test")),
            "cifar10-dvs": lambda: make_cifar_root(tmp_path / "data"),
            "n-caltech101": lambda: caltech_root}[name]()
    history = _one_epoch(name, root, tmp_path / "run")
    assert len(history) == 1 and np.isfinite(history[0].train_loss)
    cfg, model, _ = load_checkpoint(tmp_path / "run")
    assert cfg.model.num_classes == classes and model.head.out_features == classes
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["num_classes"] == classes


def test_num_classes_that_contradicts_the_data_set(tmp_path, no_download):
    root = make_gesture_root(tmp_path / "data", splits=("Train", "Test"))
    with pytest.raises(UserError, match=r"model\.num_classes: 10, but data set 'dvs128-gesture' has 11 classes"):
        _one_epoch("dvs128-gesture", root, tmp_path / "run", {**TINY_MODEL, "num_classes": 10})
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match=r"model\.num_classes: must be >= 0, got -1"):
        _one_epoch("dvs128-gesture", root, tmp_path / "run", {**TINY_MODEL, "num_classes": -1})
    _one_epoch("dvs128-gesture", root, tmp_path / "run", {**TINY_MODEL, "num_classes": 11})  # the right one


def test_unresolved_num_classes_builds_no_model():
    from hqflow.config import ModelConfig
    from hqflow.search.model import Spikformer

    with pytest.raises(UserError, match=r"model\.num_classes: 0"):
        Spikformer(ModelConfig(**{**TINY_MODEL, "pools": (True, True, False, False)}))


@pytest.mark.parametrize("name", ["dvs128-gesture", "cifar10-dvs", "n-caltech101"])
def test_data_set_configs(name):
    from hqflow.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    assert cfg.data.dataset == name and cfg.data.time_steps == 16
    assert (cfg.model.img_size, cfg.model.embed_dim, cfg.model.depth, cfg.model.num_tokens) == (128, 256, 2, 64)
    assert cfg.model.num_classes == {"dvs128-gesture": 11, "cifar10-dvs": 10, "n-caltech101": 101}[name]
