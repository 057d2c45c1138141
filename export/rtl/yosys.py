"""Yosys: find the binary, synthesize a Verilog top for a Xilinx family, count its cells.

`synth` runs, in a work folder (its script synth.ys, log yosys.log, statistics stat.json / stat.txt):

    read_verilog [-sv] -defer <sources>           # .sv files with -sv
    chparam -set NAME VALUE ... <top>             # the top's parameters (integers or strings)
    synth_xilinx -family xc7 -top <top> -flatten -noiopad -noclkbuf
    tee -o stat.json stat -json

out of context (no I/O buffers, no clock buffer: a core's cost, not a chip's; for UltraScale+, xcup,
with -uram: a large RAM without initial contents may map to URAM288), and returns the
cells as `Resources`: LUT = LUT1..LUT6; FF = FDRE/FDSE/FDCE/FDPE; DSP = DSP48E1 (DSP48E2 on
UltraScale families); BRAM in RAMB36 equivalents = RAMB36 + RAMB18 / 2 (both counts kept); URAM = URAM288;
CARRY = CARRY4 / CARRY8; LUTRAM = LUTs used as memory (RAM32M, RAM64X1D, ..., SRL16E, SRLC32E);
`other` counts every other cell (MUXF7/MUXF8, INV, ...), all kept by type in `cells`.
Yosys 0.23 (Debian / Ubuntu: apt-get install yosys) is the version this was measured with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from hqflow.errors import UserError

INSTALL_HINT = ("install Yosys (Debian / Ubuntu: apt-get install yosys, or `make hw-tools`; other systems: "
                "the OSS CAD Suite) or set YOSYS=<path to yosys>")

_LUT = re.compile(r"LUT[1-6]")
_FF = re.compile(r"FD[RSCP]E(_1)?")
_DSP = re.compile(r"DSP48E[12]")
_CARRY = re.compile(r"CARRY[48]")
_LUTRAM = re.compile(r"RAM(32|64|128|256|512)(M|X\d[SD])(16)?|SRLC?(16|32)E")


def find_yosys() -> Path:
    """The Yosys executable: $YOSYS if set (it must exist), else `yosys` on PATH; UserError if none."""
    env = os.environ.get("YOSYS")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UserError(f"$YOSYS: {env} is not an executable file; {INSTALL_HINT}")
        return path
    found = shutil.which("yosys")
    if found is None:
        raise UserError(f"yosys not found (neither $YOSYS nor yosys on PATH): {INSTALL_HINT}")
    return Path(found)


@dataclasses.dataclass(frozen=True)
class Resources:
    """Xilinx cell counts of a synthesized design (see the module docstring for what counts where).

    bram36 / bram18: RAMB36 / RAMB18 primitives; `bram` (a property) their RAMB36 equivalents.
    cells: every cell type with its count, sorted by type.
    """

    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram36: int = 0
    bram18: int = 0
    uram: int = 0
    carry: int = 0
    lutram: int = 0
    other: int = 0
    cells: tuple[tuple[str, int], ...] = ()

    @property
    def bram(self) -> float:
        """Block RAM in RAMB36 equivalents: RAMB36 + RAMB18 / 2."""
        return self.bram36 + self.bram18 / 2

    @classmethod
    def from_cells(cls, cells: Mapping[str, int]) -> Resources:
        """Classify a {cell type: count} map of a mapped Xilinx netlist."""
        counts = dict.fromkeys(("lut", "ff", "dsp", "bram36", "bram18", "uram", "carry", "lutram", "other"), 0)
        for kind, n in cells.items():
            if _LUT.fullmatch(kind):
                key = "lut"
            elif _FF.fullmatch(kind):
                key = "ff"
            elif _DSP.fullmatch(kind):
                key = "dsp"
            elif re.fullmatch(r"RAMB36E[12]", kind):
                key = "bram36"
            elif re.fullmatch(r"RAMB18E[12]", kind):
                key = "bram18"
            elif kind == "URAM288":
                key = "uram"
            elif _CARRY.fullmatch(kind):
                key = "carry"
            elif _LUTRAM.fullmatch(kind):
                key = "lutram"
            else:
                key = "other"
            counts[key] += int(n)
        return cls(**counts, cells=tuple(sorted((str(k), int(v)) for k, v in cells.items())))

    def to_dict(self) -> dict:
        """The counts, `bram` (RAMB36 equivalents) and the cells by type, for JSON."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cells"}
        out["bram"] = self.bram
        out["cells"] = dict(self.cells)
        return out


COLUMNS = (("LUT", "lut"), ("FF", "ff"), ("DSP48", "dsp"), ("BRAM36", "bram"), ("URAM", "uram"), ("CARRY4", "carry"),
           ("LUTRAM", "lutram"), ("other", "other"))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_table(rows: Sequence[tuple[str, Resources]], name: str = "design",
                   lanes: Sequence[int] | None = None) -> str:
    """A markdown table, one row per (label, Resources): LUT, FF, DSP48, BRAM36 (RAMB36 equivalents),
    CARRY4, LUTRAM and other cells; with `lanes` (one count per row) also LUT and FF per lane."""
    heads = [h for h, _ in COLUMNS] + (["LUT/lane", "FF/lane"] if lanes is not None else [])
    lines = [f"| {name} | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for i, (label, res) in enumerate(rows):
        cells = [_fmt(getattr(res, key)) for _, key in COLUMNS]
        if lanes is not None:
            cells += [f"{res.lut / lanes[i]:.1f}", f"{res.ff / lanes[i]:.1f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_stat_json(text: str) -> Resources:
    """Resources from `stat -json` output: the design totals ("design"), else the one module's cells.
    ValueError for several modules without design totals (their sum would count submodules as cells)."""
    data = json.loads(text)
    if "design" in data:
        return Resources.from_cells(data["design"].get("num_cells_by_type", {}))
    modules = list(data.get("modules", {}).values())
    if len(modules) != 1:
        raise ValueError(f"parse_stat_json: {len(modules)} modules and no design totals; expected a flattened "
                         "design or `stat -top <top>`")
    return Resources.from_cells(modules[0].get("num_cells_by_type", {}))


def parse_stat_text(text: str) -> Resources:
    """Resources from the text of `stat`: the "design hierarchy" section's cells if there is one, else
    the one module section's ("=== name ==="); ValueError for none, or several without the hierarchy."""
    sections = re.split(r"^=== (.+) ===$", text, flags=re.M)
    named = dict(zip(sections[1::2], sections[2::2]))
    if "design hierarchy" in named:
        body = named["design hierarchy"]
    elif len(named) == 1:
        (body,) = named.values()
    else:
        raise ValueError(f"parse_stat_text: {len(named)} module sections and no design hierarchy; expected "
                         "a flattened design or `stat -top <top>`")
    match = re.search(r"Number of cells:\s+\d+\n((?:[ \t]+\S+[ \t]+\d+\n?)*)", body)
    cells = re.findall(r"^[ \t]+(\S+)[ \t]+(\d+)$", match.group(1) if match else "", flags=re.M)
    return Resources.from_cells({kind: int(n) for kind, n in cells})


def _value(name: str, value) -> str:
    """A chparam value: an integer, or a string (a memory file's path) in double quotes."""
    if isinstance(value, bool) or not isinstance(value, (int, str, Path)):
        raise UserError(f"synth: parameter {name}={value!r}: expected an integer or a string")
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if any(c in text for c in '"\\\n'):
        raise UserError(f"synth: parameter {name}={text!r}: a string parameter cannot hold quotes, "
                        "backslashes or newlines")
    return f'"{text}"'


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if line.lstrip().startswith("ERROR:"):
            return line.strip()
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def synth_command(family: str, top: str) -> str:
    """synth_xilinx out of context for `family`; UltraScale+ (xcup) may map large RAMs to UltraRAM (-uram:
    Yosys then picks URAM288 or block RAM by its cost; a ROM, having initial contents, stays in block RAM)."""
    uram = " -uram" if family == "xcup" else ""
    return f"synth_xilinx -family {family}{uram} -top {top} -flatten -noiopad -noclkbuf"


def script(top: str, sources: Sequence[Path], parameters: Mapping[str, int | str] | None = None,
           family: str = "xc7", defines: Mapping[str, int | None] | None = None) -> str:
    """The Yosys script that `synth` runs (sources as absolute paths; writes stat.json and stat.txt)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise UserError(f"synth: top module {top!r}: expected a Verilog identifier")
    lines = []
    flags = "".join(f" -D{k}" if v is None else f" -D{k}={int(v)}" for k, v in (defines or {}).items())
    for source in sources:
        path = Path(source).resolve()
        if not path.is_file():
            raise UserError(f"synth: {source}: no such Verilog source")
        sv = " -sv" if path.suffix == ".sv" else ""
        lines.append(f'read_verilog{sv} -defer{flags} "{path}"')
    if parameters:
        sets = " ".join(f"-set {k} {_value(k, v)}" for k, v in parameters.items())
        lines.append(f"chparam {sets} {top}")
    lines += [synth_command(family, top),
              "tee -q -o stat.json stat -json",
              "tee -q -o stat.txt stat"]
    return "\n".join(lines) + "\n"


def synth(top: str, sources: Sequence[Path], parameters: Mapping[str, int | str] | None = None,
          family: str = "xc7", workdir: Path | None = None, defines: Mapping[str, int | None] | None = None,
          timeout: float | None = None) -> Resources:
    """Synthesize `top` from the Verilog `sources` with `synth_xilinx -family <family>` and count its cells.

    parameters: the top's parameters (integers, or strings such as a $readmemh file's path: relative
    paths are read from `workdir`); defines: `define macros (None: defined without a value).
    workdir: where synth.ys, yosys.log, stat.json and stat.txt are written (a temporary folder,
    removed afterwards, if None). A Yosys error is a UserError quoting its first error line;
    a missing Yosys a UserError naming what to install.
    """
    exe = find_yosys()
    text = script(top, sources, parameters, family, defines)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="hqflow-synth-") as tmp:
            return _run(exe, text, Path(tmp), top, timeout)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return _run(exe, text, workdir, top, timeout)


def _run(exe: Path, text: str, workdir: Path, top: str, timeout: float | None) -> Resources:
    (workdir / "synth.ys").write_text(text)
    for name in ("stat.json", "stat.txt"):
        (workdir / name).unlink(missing_ok=True)
    try:
        proc = subprocess.run([str(exe), "-q", "-l", "yosys.log", "synth.ys"], cwd=workdir,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"yosys synthesis of {top} ran past {timeout:g} s (log: {workdir / 'yosys.log'})") from None
    stat = workdir / "stat.json"
    if proc.returncode != 0 or not stat.is_file():
        log = (workdir / "yosys.log").read_text(errors="replace") if (workdir / "yosys.log").is_file() else ""
        raise UserError(f"yosys synthesis of {top} failed: {_first_error(proc.stderr + proc.stdout + log)}")
    return parse_stat_json(stat.read_text())


def _module_name(name: str) -> str:
    """A module's name as `stat -json` and `dump` spell it, without RTLIL's leading backslash."""
    return name[1:] if name.startswith("\\") else name


def hierarchy_totals(stat: dict) -> dict[str, dict[str, int]]:
    """{module: {leaf cell type: count}} of a hierarchical `stat -json`: each module's own cells with
    its submodule instances expanded (recursively) into their cells."""
    own = {_module_name(name): {_module_name(k): int(v) for k, v in body.get("num_cells_by_type", {}).items()}
           for name, body in stat.get("modules", {}).items()}
    done: dict[str, dict[str, int]] = {}

    def expand(name: str) -> dict[str, int]:
        if name not in done:
            cells: dict[str, int] = {}
            for kind, n in own[name].items():
                for leaf, m in (expand(kind).items() if kind in own else ((kind, 1),)):
                    cells[leaf] = cells.get(leaf, 0) + n * m
            done[name] = cells
        return done[name]

    for name in own:
        expand(name)
    return done


def _stat_modules(text: str) -> dict:
    """{"modules": ...} of a hierarchical `stat -json`. Yosys 0.23 writes the design section of a
    hierarchy as text into the JSON, so only the "modules" object is decoded."""
    start = text.index('"modules"')
    modules, _ = json.JSONDecoder().raw_decode(text, text.index("{", start))
    return {"modules": modules}


def synth_hierarchy(top: str, sources: Sequence[str | Path], family: str, workdir: Path, cwd: Path,
                    timeout: float | None = None
                    ) -> tuple[Resources, dict[str, Resources], dict[str, Resources], dict[str, dict]]:
    """Synthesize `top` (sources relative to `cwd`, where $readmemh files are found too) with
    synth_xilinx -flatten: every instance marked (* keep_hierarchy *) (hqflow_top's cores and
    buffers) stays a module of its own, flattened inside, the rest is flattened into its parent.
    Returns (the top's total, {module: total}, {instance of the top: its module's total}, {instance of the
    top, and the top itself: its logic depth, depth.module_depth}); the script, log, statistics and the
    netlist (netlist.json) go to `workdir`."""
    from hqflow.export.rtl.depth import netlist_depth

    exe = find_yosys()
    cwd, workdir = Path(cwd).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(workdir, cwd))
    lines = [f'read_verilog -defer "{Path(s).as_posix()}"' for s in sources]
    lines += [synth_command(family, top),
              f"tee -q -o {rel / 'stat.json'} stat -json",
              f"tee -q -o {rel / 'stat.txt'} stat -top {top}",
              f"tee -q -o {rel / 'instances.txt'} dump {top}/c:core_* {top}/c:buf_* {top}/c:fifo_*",
              f"write_json {rel / 'netlist.json'}"]
    (workdir / "synth.ys").write_text("\n".join(lines) + "\n")
    for name in ("stat.json", "stat.txt", "instances.txt", "netlist.json"):
        (workdir / name).unlink(missing_ok=True)
    try:
        proc = subprocess.run([str(exe), "-q", "-l", str(rel / "yosys.log"), str(rel / "synth.ys")], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"yosys synthesis of {top} ran past {timeout:g} s (log: {workdir / 'yosys.log'})") from None
    if proc.returncode != 0 or not (workdir / "stat.json").is_file():
        log = (workdir / "yosys.log").read_text(errors="replace") if (workdir / "yosys.log").is_file() else ""
        raise UserError(f"yosys synthesis of {top} failed: {_first_error(proc.stderr + proc.stdout + log)}")
    totals = hierarchy_totals(_stat_modules((workdir / "stat.json").read_text()))
    modules = {name: Resources.from_cells(cells) for name, cells in totals.items()}
    instances, depths = {}, {}
    by_module = netlist_depth(json.loads((workdir / "netlist.json").read_text()))
    text = (workdir / "instances.txt").read_text() if (workdir / "instances.txt").is_file() else ""
    for kind, name in re.findall(r"^\s*cell (\S+) (\S+)$", text, re.M):
        kind, name = _module_name(kind), _module_name(name)
        instances[name] = modules.get(kind, Resources.from_cells({kind: 1}))
        if kind in by_module:
            depths[name] = by_module[kind]
    depths[top] = by_module.get(top, {"lut_levels": 0, "carry_chain": 0})
    return modules[top], modules, instances, depths
