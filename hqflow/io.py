"""Writing outputs so that a failure never leaves a half-written file or folder behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hqflow.errors import UserError


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def prepare_output_dir(out: Path, force: bool, resume: bool = False, marker: str = "checkpoint.pt") -> None:
    """Refuse to overwrite an existing folder unless asked: `resume` keeps it, `force` empties it."""
    out = Path(out)
    if resume:
        if not (out / marker).is_file():
            raise UserError(f"{out}: nothing to resume (no {marker} there)")
        return
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out}: output folder exists; pass --force to replace it or --resume to continue it")
        shutil.rmtree(out)
