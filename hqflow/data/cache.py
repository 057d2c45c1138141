"""The frame cache: a split's binned frames in one memory-mapped int16 .npy file (see the package docstring)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hqflow.errors import UserError

FRAMES_VERSION = 1  # of the frames a recording gives: bump it whenever binning or reading changes
CACHE_ENV = "HQFLOW_CACHE"  # a folder for the frame cache, or "off"

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


def cached_frames(name, split, shape, root, recordings, read) -> np.ndarray | None:
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
