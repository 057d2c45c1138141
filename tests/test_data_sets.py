"""hqflow.data's offline tonic loaders on fabricated folders: listing, splits, frames, broken folders
(one clear error each), and one training step per seed data set."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hqflow.data import frames as data_frames
from hqflow.data import DATASETS, events_to_frames, load_dataset, tonic_sets
from hqflow.errors import UserError

from data_folders import (CALTECH_CLASSES, CALTECH_EVENTS, CIFAR_EVENTS, aedat4_bytes, caltech_bin, make_cifar_root,
                          make_events, make_gesture_root)
from data_folders import caltech_root, frame_cache, no_download  # noqa: F401  (fixtures; frame_cache autouse)

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
