"""`make csim` for an exported HLS project: find the toolchain, compile, run the testbench.

The project's own Makefile does the work; this finds g++ (or $CXX) and the ap_types headers that
the hls4ml package ships (or $AP_TYPES), and turns a missing one into a one-line error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from hqflow.errors import UserError


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
    for folder in (export / "hls", export):
        if (folder / "Makefile").is_file() and (folder / "firmware").is_dir():
            return folder
    raise UserError(f"{export}: no HLS project there (export it with `hqflow export RUN --target hls -o {export}`)")


def run_csim(export: str | Path, ap_arithmetic: bool = False) -> int:
    """Compile and run the project's testbench (output streamed); returns its exit status (0: no mismatch).

    ap_arithmetic: build with the synthesis arithmetic (ap_int accumulators, multipliers and LIF)
    instead of the C simulation's exact 64-bit model of it."""
    project = project_dir(export)
    cxx, ap_types = compiler(), ap_types_dir()
    if shutil.which("make") is None:
        raise UserError("`make` not found on PATH: install it to run the C simulation")
    command = ["make", "--no-print-directory", "-C", str(project), "csim", f"CXX={cxx}", f"AP_TYPES={ap_types}",
               f"AP_ARITHMETIC={int(ap_arithmetic)}"]
    return subprocess.run(command).returncode
