"""Fabricated data set folders for the tests of hqflow.data (tonic's layouts: DVS128 Gesture, N-Caltech101,
CIFAR10-DVS), events made by hand, and the fixtures the data tests share: no download, a frame cache of
each test's own."""

import struct
from pathlib import Path

import numpy as np
import pytest

def make_events(x, y, t, p, p_dtype=bool) -> np.ndarray:
    events = np.empty(len(t), [("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", p_dtype)])
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events

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
