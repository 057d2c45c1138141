"""Verilator's runtime library compiled once per test session (verilated.mk's OBJCACHE hook).

Every Verilator build compiles the runtime library (verilated.cpp, verilated_threads.cpp and, for
--binary, verilated_timing.cpp: about 5 s of a build) with the same command. verilated.mk prefixes
each compile with $OBJCACHE; tests/conftest.py sets it to this script, with the session's cache
folder in $HQFLOW_TEST_OBJCACHE. A runtime-library compile is looked up by its command (output name
aside) and source; on a miss it runs and its object and dependency file are stored, on a hit they
are copied. Every other compile (the model's own files) runs unchanged.

    python verilator_objcache.py <compiler> <args...>
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path


def runtime_source(argv: list[str]) -> Path | None:
    """The compiled file if it is one of Verilator's own (its folder holds verilated.h), compiled without
    a model's precompiled header (-include); else None."""
    source = Path(argv[-1])
    if "-o" not in argv or "-include" in argv or source.suffix != ".cpp":
        return None
    return source if (source.parent / "verilated.h").is_file() else None


def store(built: Path, cached: Path) -> None:
    """Copy a built file into the cache atomically (another test worker may store the same entry)."""
    if built.is_file():
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, partial)
        os.replace(partial, cached)


def main(argv: list[str]) -> int:
    folder, source = os.environ.get("HQFLOW_TEST_OBJCACHE"), runtime_source(argv)
    if not folder or source is None:
        os.execvp(argv[0], argv)
    at = argv.index("-o") + 1
    obj = Path(argv[at])
    dep = obj.with_suffix(".d")  # written by -MMD
    command = "\0".join(argv[:at] + argv[at + 1:]).encode()
    key = hashlib.sha256(command + b"\0" + source.read_bytes()).hexdigest()[:32]
    cached_obj, cached_dep = Path(folder) / f"{key}.o", Path(folder) / f"{key}.d"
    if cached_obj.is_file():
        shutil.copyfile(cached_obj, obj)
        if cached_dep.is_file():
            shutil.copyfile(cached_dep, dep)
        return 0
    code = subprocess.run(argv).returncode
    if code == 0:
        Path(folder).mkdir(parents=True, exist_ok=True)
        store(dep, cached_dep)  # the dependency file first: the object completes the entry
        store(obj, cached_obj)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
