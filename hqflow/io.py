"""Reading inputs with clear errors, and writing outputs so that nothing is ever half-written.

Files: `atomic_write` writes `.<name>.<random>.tmp` and renames it onto the name, so a file is
the old one or the new one, never a part.

Folders of single-shot commands (report, export): built aside (`built_aside`) and moved onto
OUT whole (`replace_dir`): OUT is the previous result or the new one, never a mixture.

Run folders of resumable commands (train, search, finetune; `RunFolder`), after a failure or a
SIGKILL at any instant:
- before the first epoch is complete: no OUT. A fresh run builds in `.<name>.partial` beside OUT;
  an exception removes it, a kill leaves that hidden folder, which the next fresh run removes.
  With --force the previous OUT stays whole until the new run's first epoch is complete; then
  the new folder takes its place (the old one is not kept until the new run ends: `--resume`
  continues a run in OUT, so a run must live there once it has something to resume).
- afterwards: OUT holds the last complete epoch and a file INCOMPLETE (JSON: epochs_done,
  epochs, and the command that resumes the run). `checkpoint.pt` is the commit point of an
  epoch: the search log's lines are appended before it, plan.json and metrics.jsonl written
  after it, and `--resume` first drops log lines of a later epoch, rewrites plan.json and
  metrics.jsonl from the checkpoint and removes leftover .tmp files, so all agree on its epoch.
  The resumed run ends bit-identical to an uninterrupted one (weights, plan, logs; not timings).
- complete: INCOMPLETE removed, the run's last act. Readers of a run (finetune --plan/--from,
  search --from, sweep --from, report, export, metrics) refuse a folder with INCOMPLETE
  (`require_complete`), naming the command that finishes it.

A sweep keeps its finished lambdas complete and marks OUT INCOMPLETE until the last one ends.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

from hqflow.errors import UserError

INCOMPLETE = "INCOMPLETE"  # marker file of a run folder whose run has not finished
TMP_SUFFIX = ".tmp"  # suffix of atomic_write's temporary files


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step.

    The temporary file is `.<name>.<random>.tmp` beside `path`; a failure removes it, a kill
    leaves it behind (never under the real name), and `RunFolder` removes such leftovers on resume.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def check_output_dir(out: Path, force: bool, resume: bool = False, marker: str = "checkpoint.pt") -> None:
    """Refuse to overwrite an existing folder unless asked; `resume` needs `marker` in it.

    Deletes nothing: with `force` the caller builds the new result aside and `replace_dir` swaps
    it in, so the previous result stays until the new one can take its place.
    """
    out = Path(out)
    if resume:
        if not (out / marker).is_file():
            staged = staging_path(out)
            hint = (f"; {staged.name} beside it is a run killed before its first epoch ended: start afresh"
                    if staged.exists() else "")
            raise UserError(f"{out}: nothing to resume (no {marker} there){hint}")
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; expected an output folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder exists; pass --force to replace it or --resume to continue it")


def staging_path(out: Path) -> Path:
    """Where a fresh run builds `out` until its first epoch is complete: `.<name>.partial` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def replace_dir(new: Path, out: Path) -> None:
    """Move the finished folder `new` onto `out`. An existing `out` is renamed aside first and
    removed only after `new` is in place: at every instant `out` is the old folder, the new one,
    or (for the instant between two renames) absent, never a mixture."""
    new, out = Path(new), Path(out)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.replaced"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def built_aside(out: Path) -> Iterator[Path]:
    """Yield an empty folder beside `out` to write a result into; on success it replaces `out`
    (`replace_dir`), on any failure it is removed and `out` is left as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        yield tmp
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_incomplete(folder: Path) -> dict | None:
    """The INCOMPLETE marker of a run folder as a dict ({} if unreadable), or None if there is none."""
    marker = Path(folder) / INCOMPLETE
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def require_complete(run: Path, what: str) -> None:
    """Refuse a run folder (or a file in one) that holds an INCOMPLETE marker, naming how to finish it."""
    run = Path(run)
    folder = run.parent if run.is_file() else run
    info = read_incomplete(folder)
    if info is None:
        return
    done, epochs = info.get("epochs_done"), info.get("epochs")
    progress = f" ({done} of {epochs} epochs done)" if done is not None and epochs is not None else ""
    how = info.get("resume") or "its command with --resume"
    raise UserError(f"{folder}: {what} is an incomplete run{progress} ({INCOMPLETE} marker); "
                    f"finish it first: {how}")


class RunFolder:
    """The folder of a resumable run (train, search, finetune) and the life cycle that keeps it whole.

    fresh run:  files go to `staging_path(out)`; `commit_epoch` after the first epoch's files moves
                it onto `out` (replacing, with --force, the previous folder only then); a failure
                before that removes it (`abandon`), so `out` is untouched
    resumed:    files go to `out` itself; leftover `.*.tmp` files of a killed write are removed
    marker:     INCOMPLETE (JSON: epochs_done, epochs, the command that resumes the run) is present
                until `finish`, the run's last act, removes it
    """

    def __init__(self, out: Path, force: bool, resume: bool, resume_command: str, marker: str = "checkpoint.pt"):
        self.out, self.resume_command = Path(out), resume_command
        check_output_dir(self.out, force, resume, marker)
        if resume:
            self.path, self.staged = self.out, False
            for leftover in self.out.glob(f".*{TMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)
        else:
            self.path, self.staged = staging_path(self.out), True
            if self.path.exists():  # a run killed before its first epoch ended
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)

    def mark(self, epochs_done: int, epochs: int) -> None:
        """Write the INCOMPLETE marker: `epochs_done` of `epochs` are in the folder."""
        atomic_text(self.path / INCOMPLETE, json.dumps({"epochs_done": epochs_done, "epochs": epochs,
                                                        "resume": self.resume_command}) + "\n")

    def commit_epoch(self) -> None:
        """An epoch's files are all written: a staged folder now takes its place at `out`."""
        if self.staged:
            replace_dir(self.path, self.out)
            self.path, self.staged = self.out, False

    def finish(self) -> None:
        """The run is complete: remove the marker (after every other file is written)."""
        self.commit_epoch()
        (self.path / INCOMPLETE).unlink(missing_ok=True)

    def abandon(self) -> None:
        """The run failed: a folder that never completed an epoch disappears; a committed one stays
        (its last complete epoch, marked INCOMPLETE) for --resume."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)


# ----------------------------------------------------------------------------- reading


def read_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of `path`; missing, a folder, unreadable or empty (or only whitespace): a UserError
    naming the file and `what` it should have been (e.g. "a plan (plan.json)")."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected {what}")
    if not path.is_file():
        raise UserError(f"{path}: not found; expected {what}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror}); expected {what}") from None
    if not raw.strip():
        raise UserError(f"{path}: empty file; expected {what}")
    return raw


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of `path` (see `read_bytes`); binary content is a UserError as well."""
    try:
        return read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; expected {what}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: str | Path, what: str):
    """Parse a JSON file strictly (no NaN or Infinity); errors name the file, line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg}); "
                        f"expected {what}") from None
    except (ValueError, RecursionError) as err:
        raise UserError(f"{path}: {err}; expected {what}") from None


def read_yaml(path: str | Path, what: str):
    """Parse a YAML file with the safe loader (plain data only: no tags that build objects)."""
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}: not valid YAML{where} ({problem}); expected {what}") from None


# numpy and zipfile raise these for a damaged archive or member (zlib.error for bad deflate data)
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, NotImplementedError, RuntimeError, struct.error,
               zipfile.BadZipFile, zlib.error)


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, read eagerly and without unpickling anything (allow_pickle=False):
    random bytes, a single .npy, a truncated or damaged archive or member, or an object array is a
    UserError naming the file (and the member)."""
    raw = read_bytes(path, what)
    if raw.startswith(b"\x93NUMPY"):
        raise UserError(f"{path}: a single .npy array; expected {what}")
    if not raw.startswith(b"PK"):  # not a zip archive (np.load would take it for a pickle)
        raise UserError(f"{path}: not a NumPy .npz archive (random bytes or another format); expected {what}")
    try:
        npz = np.load(io.BytesIO(raw), allow_pickle=False)
    except _NPZ_ERRORS as err:
        raise UserError(f"{path}: not a readable .npz archive, truncated or damaged ({type(err).__name__}: "
                        f"{err}); expected {what}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: not a NumPy .npz archive; expected {what}")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise UserError(f"{path}: tensor {key!r} is an object array (pickled Python objects, never "
                                    "loaded by hqflow); expected an integer array") from None
                raise UserError(f"{path}: tensor {key!r} cannot be read ({err}); expected an integer array") \
                    from None
            except _NPZ_ERRORS as err:
                raise UserError(f"{path}: tensor {key!r} cannot be read, the archive is truncated or damaged "
                                f"({type(err).__name__}: {err})") from None
            if not isinstance(value, np.ndarray):
                raise UserError(f"{path}: member {key!r} is not a NumPy array; expected only .npy members")
            arrays[key] = value
    return arrays
