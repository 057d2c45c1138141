"""`hqflow csim`: compile an exported HLS project with the toolchain found here and run its testbench.

Finds g++ (or $CXX) and the ap_types headers that the hls4ml package ships (or $AP_TYPES), checks
that the folder holds a complete project (a missing piece is named before anything compiles),
builds the testbench binary with the project's own Makefile, and runs it on tb/data. The
testbench checks its vectors against the sizes the project was generated with; a file it cannot
use ends it with one line "error: <file>: ..." and exit status 2, which comes back here as a
UserError. Its verdict: exit status 0 and last line "mismatches: 0", or 1 and "mismatches: N".
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from hqflow.errors import UserError

# the testbench vectors (export/hls/writer.py writes them, hls_templates/tb/hqflow_testbench.h reads them)
DATA_FILES = ("inputs.txt", "golden_logits.txt", "labels.txt", "golden_trace.txt")


def ap_types_dir() -> Path:
    """The folder holding ap_int.h: $AP_TYPES, else hls4ml's templates/vivado/ap_types."""
    if os.environ.get("AP_TYPES"):
        folder, origin = Path(os.environ["AP_TYPES"]), "$AP_TYPES"
    else:
        spec = importlib.util.find_spec("hls4ml")  # locates the package without importing it
        if spec is None or spec.origin is None:
            raise UserError("the ap_types headers come with the hls4ml package, which is not installed: "
                            "pip install hls4ml==1.3.0 (or set AP_TYPES=<folder holding ap_int.h>)")
        folder, origin = Path(spec.origin).parent / "templates" / "vivado" / "ap_types", "the hls4ml package"
    if not (folder / "ap_int.h").is_file():
        raise UserError(f"{folder}: no ap_int.h there (from {origin}); set AP_TYPES=<folder holding ap_int.h>")
    return folder


def compiler() -> str:
    """$CXX or g++, as found on PATH."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise UserError(f"C++ compiler {cxx!r} not found on PATH: install g++ or set CXX=<compiler>")
    return cxx


def project_dir(export: str | Path) -> Path:
    """The HLS project of an export folder (its hls/ subfolder), or the project folder itself."""
    export = Path(export)
    how = f"export it with `hqflow export RUN --target hls -o {export}`"
    if not export.exists():
        raise UserError(f"{export}: no such folder (expected an export with an HLS project; {how})")
    if not export.is_dir():
        raise UserError(f"{export}: not a folder (expected an export with an HLS project; {how})")
    for folder in (export / "hls", export):
        if (folder / "Makefile").is_file() and (folder / "firmware").is_dir():
            return folder
    if (export / "hls").is_dir():
        missing = [name for name in ("Makefile", "firmware") if not (export / "hls" / name).exists()]
        raise UserError(f"{export / 'hls'}: incomplete HLS project ({' and '.join(missing)} missing); {how} --force")
    if (export / "graph.json").is_file():
        raise UserError(f"{export}: an export without an HLS project (no hls/ folder; it was exported with "
                        f"--target numpy): {how} --force")
    raise UserError(f"{export}: no HLS project there ({how})")


def project_name(project: Path) -> str:
    """The project's name (its top function is <name>_top), from its one tb/<name>_tb.cpp; checks that the
    sources the build and the testbench need are all there."""
    sources = sorted(project.glob("tb/*_tb.cpp"))
    if len(sources) != 1:
        raise UserError(f"{project / 'tb'}: {len(sources)} testbench sources (*_tb.cpp), expected one; "
                        "export the project again")
    name = sources[0].name[:-len("_tb.cpp")]
    for needed in (f"firmware/{name}_top.cpp", f"firmware/{name}_top.h", "firmware/parameters.h",
                   "firmware/kernels/hqflow.h", "tb/hqflow_testbench.h"):
        if not (project / needed).is_file():
            raise UserError(f"{project / needed}: missing (the project's {name}_tb.cpp needs it); "
                            "export the project again")
    for file in DATA_FILES:
        path = project / "tb" / "data" / file
        if not path.is_file():
            raise UserError(f"{path}: testbench vectors missing (expected a file the export writes from the "
                            "NumPy simulator); export the project again")
    return name


def _error_line(text: str) -> str | None:
    """The first "error: ..." line (the testbench's and the project Makefile's way of naming a bad input)."""
    return next((line[len("error: "):].strip() for line in text.splitlines() if line.startswith("error: ")), None)


def build(project: Path, name: str, ap_arithmetic: bool = False) -> Path:
    """Compile the testbench binary with the project's Makefile (only when a source is newer); returns its path."""
    cxx, ap_types = compiler(), ap_types_dir()
    if shutil.which("make") is None:
        raise UserError("`make` not found on PATH: install it to run the C simulation")
    binary = Path("build") / (f"{name}_csim_ap" if ap_arithmetic else f"{name}_csim")
    command = ["make", "--no-print-directory", "-C", str(project), str(binary), f"CXX={cxx}",
               f"AP_TYPES={ap_types}", f"AP_ARITHMETIC={int(ap_arithmetic)}"]
    made = subprocess.run(command, stderr=subprocess.PIPE, encoding="utf-8", errors="backslashreplace")  # stdout (the compile command) streams
    error = _error_line(made.stderr)
    if made.returncode != 0 and error is not None:  # the Makefile's own toolchain check
        raise UserError(error)
    sys.stderr.write(made.stderr)
    if made.returncode != 0:
        first = next((line.strip() for line in made.stderr.splitlines() if re.search(r"\berror\b", line)),
                     made.stderr.strip().splitlines()[-1] if made.stderr.strip() else f"exit status {made.returncode}")
        raise UserError(f"{project}: the C++ build failed (were its sources edited? export the project again): "
                        f"{first}")
    return project / binary


def run_csim(export: str | Path, ap_arithmetic: bool = False) -> int:
    """Compile and run the project's testbench; returns its exit status (0: no mismatch, 1: mismatches).

    ap_arithmetic: build with the synthesis arithmetic (ap_int accumulators, multipliers and LIF)
    instead of the C simulation's exact 64-bit model of it. A project or vector file the testbench
    cannot use raises UserError naming it."""
    project = project_dir(export)
    name = project_name(project)
    binary = build(project, name, ap_arithmetic)
    done = subprocess.run([str(binary.resolve()), "tb/data"], cwd=project, capture_output=True, encoding="utf-8",
                          errors="backslashreplace")
    sys.stdout.write(done.stdout)
    sys.stdout.flush()
    if done.returncode == 2 and _error_line(done.stderr) is not None:
        raise UserError(_error_line(done.stderr))
    sys.stderr.write(done.stderr)
    if done.returncode < 0:  # the testbench checks every input it reads: a crash is a bug
        raise RuntimeError(f"{binary}: killed by {signal.Signals(-done.returncode).name}")
    lines = done.stdout.strip().splitlines()
    verdict = re.fullmatch(r"mismatches: (\d+)", lines[-1]) if lines else None
    if done.returncode not in (0, 1) or verdict is None or (int(verdict.group(1)) == 0) != (done.returncode == 0):
        raise RuntimeError(f"{binary}: exit status {done.returncode} without a verdict line \"mismatches: N\" "
                           "to match it")
    return done.returncode
