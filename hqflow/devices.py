"""FPGA parts: the default target, part names, their Yosys family, and whether a design fits.

The one home of the target's defaults, which every command that takes `--part` / `--clock-mhz`
uses (the HLS project's `set_part` / `create_clock`, the RTL synthesis family, latency figures):

    DEFAULT_PART       xc7a100tcsg324-1: an Artix-7 100T (the Arty A7-100T board's part), a
                       common, inexpensive 7 series device, the family the FPGA cost table is
                       calibrated on (Yosys `synth_xilinx -family xc7`)
    DEFAULT_CLOCK_MHZ  100.0 MHz (10 ns), a clock such a part meets without pipelining effort

A part name is the device (xc7a100t, xczu7ev) followed by package, speed grade and temperature
(xc7a100tcsg324-1, xczu7ev-ffvc1156-2-e). `family_of` maps it to the family that Yosys
`synth_xilinx -family` takes: xc7 (7 series, Zynq-7000 included), xcu (UltraScale), xcup
(UltraScale+: Zynq UltraScale+, Kintex / Virtex / Artix UltraScale+, Kria). `find_device` finds
its row in the device table, `tables/devices.yaml`: capacities (LUT, FF, DSP, BRAM36, URAM) with
the vendor document each row comes from. `fit_table` / `fit_markdown` give, per device, the
share of each resource a design takes and whether it fits (every share <= 100 %).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hqflow.errors import UserError
from hqflow.io import read_yaml

DEFAULT_PART = "xc7a100tcsg324-1"
DEFAULT_CLOCK_MHZ = 100.0
DEFAULT_TABLE = Path(__file__).with_name("tables") / "devices.yaml"
SCHEMA_VERSION = 1

# Yosys synth_xilinx -family of a part name (lower case), first match wins
FAMILIES = {
    "xc7": "7 series and Zynq-7000 (xc7a, xc7k, xc7s, xc7v, xc7z...)",
    "xcu": "UltraScale (xcku040, xcvu095...)",
    "xcup": "UltraScale+ (xczu7ev, xcku5p, xcvu9p, xcau15p, xck26...)",
}
_FAMILY_PATTERNS = (
    ("xcup", re.compile(r"xc(zu\d|(ku|vu|au)\d{1,2}p|k2[46])")),
    ("xcu", re.compile(r"xc(ku|vu)\d{3}(?!p)")),
    ("xc7", re.compile(r"xc7(a|k|s|z|v[xh]?)\d")),
)
_PART_SYNTAX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# the resources a fit compares: (key in the design's resources, Device field, column name)
FIT_RESOURCES = (("lut", "lut", "LUT"), ("ff", "ff", "FF"), ("dsp", "dsp", "DSP"), ("bram", "bram36", "BRAM36"),
                 ("uram", "uram", "URAM"))


@dataclass(frozen=True)
class Device:
    """One FPGA device's capacity. part: the device name as part names begin (xc7a100t);
    family: Yosys synth_xilinx -family; lut, ff: CLB LUTs and flip-flops; dsp: DSP slices;
    bram36: 36 Kb block RAMs; source: the vendor document of the figures; uram: 288 Kb UltraRAMs."""

    part: str
    name: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    source: str
    uram: int = 0


def check_part_name(part: str, what: str = "FPGA part") -> str:
    """`part` if it has the shape of a part name (letters, digits, '_', '.', '-'; nothing a Tcl or
    shell line could misread), else a UserError naming `what` and the value."""
    if not isinstance(part, str) or not _PART_SYNTAX.fullmatch(part):
        raise UserError(f"{what} {part!r}: expected a part name such as {DEFAULT_PART}")
    return part


def _family(part: str) -> str | None:
    name = part.lower()
    return next((family for family, pattern in _FAMILY_PATTERNS if pattern.match(name)), None)


def family_of(part: str, what: str = "--part") -> str:
    """The Yosys `synth_xilinx -family` of a part name: "xc7", "xcu" or "xcup".

    e.g. xc7a100tcsg324-1 -> xc7, xcku040-ffva1156-2-e -> xcu, xczu7ev-ffvc1156-2-e -> xcup.
    A name of no known family is a UserError naming `what`, the value, the families and the
    devices of the table."""
    check_part_name(part, what)
    family = _family(part)
    if family is not None:
        return family
    known = "; ".join(f"{f}: {d}" for f, d in FAMILIES.items())
    raise UserError(f"{what} {part!r}: not a Xilinx part of a family hqflow synthesizes for ({known}); "
                    f"the device table holds {', '.join(d.part for d in load_devices())}")


def find_device(part: str, devices: list[Device] | None = None, what: str = "--part") -> Device:
    """The table's row of a part name: the longest row `part` that the name begins with, followed
    by the package, a '-' or nothing (xc7a100tcsg324-1 -> xc7a100t; xc7a10... is not xc7a100t).
    A part of no row is a UserError naming `what`, the value and the devices the table holds."""
    family_of(part, what)
    devices = load_devices() if devices is None else devices
    name = part.lower()
    matches = [d for d in devices if name.startswith(d.part) and not name[len(d.part):][:1].isdigit()]
    if not matches:
        raise UserError(f"{what} {part!r}: not in the device table; it holds "
                        f"{', '.join(d.part for d in devices)} (add a row with its capacity and source)")
    return max(matches, key=lambda d: len(d.part))


def _row(raw: Any, i: int, path: Path) -> Device:
    where = f"{path}: devices[{i}]"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(f.name for f in fields(Device))}, "
                        f"got {type(raw).__name__}")
    keys = [f.name for f in fields(Device)]
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(keys)}")
    missing = [k for k in keys if k not in raw and k != "uram"]
    if missing:
        raise UserError(f"{where}: lacks key(s) {', '.join(missing)}")
    for key in ("part", "name", "source"):
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    part = raw["part"]
    if part != part.lower() or not re.fullmatch(r"xc[a-z0-9]+", part):
        raise UserError(f"{where}.part: expected a lower-case device name such as xc7a100t, got {part!r}")
    if raw["family"] not in FAMILIES:
        raise UserError(f"{where}.family: expected one of {', '.join(FAMILIES)}, got {raw['family']!r}")
    family = _family(part)
    if family != raw["family"]:
        raise UserError(f"{where}.family: {raw['family']!r} is not the family of part {part!r} "
                        f"(expected {family if family else 'a part of a known family'})")
    for key in ("lut", "ff", "dsp", "bram36", "uram"):
        value = raw.get(key, 0)
        least = 0 if key == "uram" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"{where}.{key}: expected an integer >= {least}, got {value!r}")
    return Device(**raw)


def load_devices(path: str | Path | None = None) -> list[Device]:
    """The device table (default `tables/devices.yaml`): a mapping {schema_version: 1, devices:
    [rows]}, each row with part, name, family, lut, ff, dsp, bram36, source (and uram, default 0).
    A broken file is one UserError naming the file, the row's key and the value at fault."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    raw = read_yaml(path, "a device table (YAML: schema_version, devices)")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a device table is a mapping with keys schema_version, devices; "
                        f"got {type(raw).__name__}")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version: expected {SCHEMA_VERSION}, got {raw.get('schema_version')!r}")
    rows = raw.get("devices")
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{path}: devices: expected a non-empty list of devices, got {rows!r}")
    devices = [_row(r, i, path) for i, r in enumerate(rows)]
    seen: set[str] = set()
    for i, d in enumerate(devices):
        if d.part in seen:
            raise UserError(f"{path}: devices[{i}].part: {d.part!r} appears twice")
        seen.add(d.part)
    return devices


def _amounts(resources: Any) -> dict[str, float]:
    """lut, ff, dsp, bram of a mapping, of an object with to_dict(), or of one with attributes."""
    if not isinstance(resources, Mapping):
        resources = resources.to_dict() if hasattr(resources, "to_dict") else vars(resources)
    out = {}
    for key, _, label in FIT_RESOURCES:
        value = resources.get(key, 0.0 if key == "uram" else None)  # a design without UltraRAM may omit it
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"fit_table: resources[{key!r}] ({label}) must be a finite number >= 0, got {value!r}")
        out[key] = float(value)
    return out


URAM_AS_BRAM36 = 8  # a URAM288 holds 288 Kb, eight BRAM36's worth: where a device has none, its memories take BRAM


def _share(use: float, capacity: int) -> float:
    """use / capacity x 100; none of a resource the device lacks is 0 %, some of it infinite."""
    if capacity:
        return 100.0 * use / capacity
    return 0.0 if use == 0 else math.inf


def _on_device(use: dict[str, float], device: Device) -> dict[str, float]:
    """The design's amounts as `device` would hold them: UltraRAM as BRAM36 (URAM_AS_BRAM36 each) on a
    device without UltraRAM (a design synthesized for UltraScale+ put its large RAMs there)."""
    if device.uram or not use["uram"]:
        return use
    return {**use, "bram": use["bram"] + URAM_AS_BRAM36 * use["uram"], "uram": 0.0}


def fit_table(resources: Any, devices: list[Device] | None = None) -> list[dict[str, Any]]:
    """Per device (default: the table's), the share of its capacity the design takes.

    `resources`: the design's lut, ff, dsp, bram (BRAM36 equivalents) and uram (URAM288 blocks, 0 if
    absent), as a mapping or an object with those attributes (`hqflow.fpga.Resources`). Each row:
    part, name, family, capacity {lut, ff, dsp, bram36, uram}, lut_pct, ff_pct, dsp_pct, bram_pct,
    uram_pct (use / capacity x 100; on a device without UltraRAM the design's URAM288s count as
    URAM_AS_BRAM36 BRAM36 each), limit (the resource with the largest share), max_pct (that share),
    fits (every share <= 100 %).
    """
    use = _amounts(resources)
    devices = load_devices() if devices is None else devices
    rows = []
    for d in devices:
        here = _on_device(use, d)
        pct = {f"{key}_pct": _share(here[key], getattr(d, field)) for key, field, _ in FIT_RESOURCES}
        limit_key, limit_field, limit_label = max(FIT_RESOURCES, key=lambda r: pct[f"{r[0]}_pct"])
        rows.append({"part": d.part, "name": d.name, "family": d.family,
                     "capacity": {field: getattr(d, field) for _, field, _ in FIT_RESOURCES},
                     **pct, "limit": limit_label, "max_pct": pct[f"{limit_key}_pct"],
                     "fits": all(v <= 100.0 for v in pct.values())})
    return rows


def fit_markdown(resources: Any, devices: list[Device] | None = None) -> str:
    """`fit_table` as a markdown table (one row per device), with the design's totals above it."""
    use = _amounts(resources)
    rows = fit_table(use, devices)
    lines = ["Design: " + ", ".join(f"{label} {use[key]:,.0f}" if key != "bram" else f"{label} {use[key]:,.1f}"
                                   for key, _, label in FIT_RESOURCES) + ".", "",
             "| device (part, Yosys family) | " + " | ".join(f"{label} (% of capacity)" for *_, label in FIT_RESOURCES)
             + " | fits (every resource <= 100 %) |",
             "|---|" + "---:|" * len(FIT_RESOURCES) + "---|"]
    for r in rows:
        cells = [f"{r[f'{key}_pct']:.1f} % of {r['capacity'][field]:,}" if r["capacity"][field]
                 else (f"as {URAM_AS_BRAM36} BRAM36 each" if use[key] else "-") for key, field, _ in FIT_RESOURCES]
        verdict = "yes" if r["fits"] else f"no ({r['limit']} {r['max_pct']:.0f} %)"
        lines.append(f"| {r['name']} ({r['part']}, {r['family']}) | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines) + "\n"
