"""hqflow.data's frame cache: built once and reused, off on request, rebuilt on a version bump, a bad file
or another source, never left half-written, in a per-user folder."""

from pathlib import Path

import numpy as np
import pytest

from hqflow import data
from hqflow.data import cache, load_dataset
from hqflow.errors import UserError

from data_folders import make_gesture_root
from data_folders import frame_cache, no_download  # noqa: F401  (fixtures; frame_cache autouse)

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
