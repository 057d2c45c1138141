"""DVS128 Gesture, CIFAR10-DVS and N-Caltech101 through tonic, from a local folder, never downloaded."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hqflow.errors import UserError
from hqflow.data.cache import cached_frames
from hqflow.data.frames import FrameDataset, events_to_frames, stratified_split

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


def load_tonic(name, split, time_steps, size, data_root) -> FrameDataset:
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
        keep = stratified_split(labels, TONIC_TEST_FRACTION, split)
        order, labels = order[keep], labels[keep]
    crop = name == "n-caltech101"
    read = functools.partial(_tonic_frames, name, ds, order, spec.sensor_hw, time_steps, size, crop)
    shape = (time_steps, 2, size, size)
    recordings = [os.path.relpath(ds.data[k], root) for k in order]
    frames = cached_frames(name, split, shape, root, recordings, read)
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


@functools.cache
def _offline(base: type) -> type:
    """tonic data set class of the same name (tonic keys its folder on it) that never downloads."""

    def download(self):
        raise UserError(
            f"{self.location_on_system}: tonic found the data incomplete and wanted to download "
            f"{self.filename}; hqflow never downloads, put the extracted data set there"
        )

    return type(base.__name__, (base,), {"download": download})
