"""Resources of the streaming RTL top without synthesis: each core from its op's own hardware model.

Every core (and FIFO) is its StreamOp's (stream_ops.py):
    memories   the RAMs / ROMs its Verilog declares, each mapped as Yosys 0.23 maps it
               (hqflow.fpga.memory_resources: registers, LUT RAM, RAMB18 / RAMB36, and on UltraScale+
               URAM288 for a RAM where it is cheaper): all its BRAM and URAM, some LUTs / FFs
    logic      LUT = sum_k lut[module][k] * term_k, FF likewise: the op's `terms` (accumulator bits,
               LIF bits, ...) with non-negative coefficients fitted per module
    DSP48      the op's `dsp` (a count of the multipliers Yosys maps to DSP slices)
The coefficients (tables/stream_cores.yaml) are fitted by `fit` on the per-core figures of synthesized
exports (`hqflow synth`: each core and FIFO a module of its own), by non-negative least squares on
the logic left after the memories' own LUTs / FFs:

    python -m hqflow.export.rtl.stream_estimate fit OUT... [--held-out OUT...] [-o TABLE]
    python -m hqflow.export.rtl.stream_estimate check OUT...      # estimate vs synthesis, no fit

Both print, per export, each core's estimate beside its synthesis and the whole top's. `fit` first
predicts each export's whole top from a fit on the others; its last line is the largest LUT error
of those (`max_left_out_lut_error_pct: E`), after `max_held_out_lut_error_pct: E` for --held-out
exports; `check` ends with the largest LUT error over its exports (`max_held_out_lut_error_pct: E`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from hqflow import fpga
from hqflow.errors import UserError
from hqflow.export.rtl.stream_base import StreamOp
from hqflow.export.rtl.stream_ops import FIFO, STREAM_OPS
from hqflow.io import atomic_text, read_yaml
from hqflow.resources import rom_resources

__all__ = ["DEFAULT_TABLE", "StreamTable", "core_resources", "estimate_manifest", "estimate_schedule", "fit",
           "load_stream_table"]

DEFAULT_TABLE = Path(fpga.__file__).with_name("tables") / "stream_cores.yaml"
KEYS = ("lut", "ff")
_MODULE_OP = {op.module: op for op in [*STREAM_OPS.values(), FIFO] if op.has_core}


class StreamTable:
    """Fitted coefficients {module: {"lut": {term: c}, "ff": {term: c}}} and the memory rules."""

    def __init__(self, path: Path, coeffs: dict, memory: fpga.FpgaTable):
        self.path, self.coeffs, self.memory = path, coeffs, memory

    def logic(self, module: str, terms: dict[str, float]) -> tuple[float, float]:
        if module not in self.coeffs:
            raise UserError(f"{self.path}: no coefficients for the core {module}; fit the table again "
                            f"(python -m hqflow.export.rtl.stream_estimate fit ...)")
        c = self.coeffs[module]
        return tuple(sum(c[key].get(term, 0.0) * value for term, value in terms.items()) for key in KEYS)


def load_stream_table(path: str | Path | None = None) -> StreamTable:
    """The fitted table (default tables/stream_cores.yaml); UserError naming the file and key at fault."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    raw = read_yaml(path, "a stream core table (YAML, see hqflow/tables/stream_cores.yaml)")
    if not isinstance(raw, dict) or raw.get("schema_version") != 1 or not isinstance(raw.get("modules"), dict):
        raise UserError(f"{path}: expected schema_version: 1 and a mapping `modules`")
    coeffs = {}
    for module, entry in raw["modules"].items():
        if module not in _MODULE_OP:
            raise UserError(f"{path}: modules.{module}: not a streaming core ({', '.join(sorted(_MODULE_OP))})")
        coeffs[module] = {}
        for key in KEYS:
            terms = (entry or {}).get(key)
            if not isinstance(terms, dict):
                raise UserError(f"{path}: modules.{module}.{key}: expected a mapping of term: coefficient")
            for term, value in terms.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise UserError(f"{path}: modules.{module}.{key}.{term}: expected a number >= 0, got {value!r}")
            coeffs[module][key] = {str(t): float(v) for t, v in terms.items()}
    return StreamTable(path, coeffs, fpga.load_fpga_table())


def _memories(op: StreamOp, params: dict, table: StreamTable, uram: bool) -> fpga.Resources:
    return fpga.total(rom_resources(m.width, m.depth, table.memory, m.tail) if m.tail else
                      fpga.memory_resources(m.width, m.depth, table.memory, rom=m.rom, uram=uram, ultra=m.ultra,
                                            distributed=m.distributed, block=m.block)
                      for m in op.memories(params))


def core_resources(module: str, params: dict, table: StreamTable, family: str = "xc7") -> fpga.Resources:
    """LUT, FF, DSP, BRAM36, URAM of one core (`module` with its Verilog `params`) for a Yosys family."""
    op = _MODULE_OP.get(module)
    if op is None:
        raise UserError(f"no resource model for the core {module}: every streaming core's StreamOp has one")
    lut, ff = table.logic(module, op.terms(params))
    return _memories(op, params, table, family == "xcup") + fpga.Resources(lut=lut, ff=ff, dsp=op.dsp(params))


def _estimate(cores: list[tuple[str, str, dict]], fifos: list[tuple[str, dict]], table: StreamTable,
              family: str) -> dict:
    nodes = {node: core_resources(module, params, table, family) for node, module, params in cores}
    queues = {f"fifo {source}": core_resources(FIFO.module, params, table, family) for source, params in fifos}
    total = fpga.total(list(nodes.values()) + list(queues.values()))
    return {"family": family, "nodes": {k: v.to_dict() for k, v in nodes.items()},
            "fifos": {k: v.to_dict() for k, v in queues.items()}, "total": total.to_dict()}


def estimate_schedule(schedule, table: StreamTable | None = None, family: str = "xc7") -> dict:
    """{"nodes": {node: resources}, "fifos": {...}, "total": resources} of a stream.Schedule."""
    table = table or load_stream_table()
    return _estimate([(c.node, c.module, c.params) for c in schedule.cores],
                     [(q.source, {"WIDTH": q.width, "DEPTH": q.depth}) for q in schedule.fifos], table, family)


def estimate_manifest(manifest: dict, table: StreamTable | None = None, family: str | None = None) -> dict:
    """The same from an export's rtl/top.json (its cores, params and FIFOs)."""
    table = table or load_stream_table()
    return _estimate([(c["node"], c["module"], c["params"]) for c in manifest["cores"]],
                     [(q["source"], {"WIDTH": q["width"], "DEPTH": q["depth"]}) for q in manifest.get("fifos", [])],
                     table, family or manifest["family"])


# ---- the fit ----------------------------------------------------------------------------------------


def _points(export: Path) -> list[dict]:
    """Per synthesized core and FIFO of an export: module, params, family, measured resources."""
    rtl = export / "rtl" if (export / "rtl").is_dir() else export
    manifest = json.loads((rtl / "top.json").read_text())
    measured = rtl / "resources.json"
    if not measured.is_file():
        raise UserError(f"{measured}: no synthesis; run `hqflow synth {export}` first")
    synth = json.loads(measured.read_text())
    family = synth["family"]
    points = [{"name": c["node"], "module": c["module"], "params": c["params"], "family": family,
               "measured": fpga.resources_from_cells(synth["nodes"][c["node"]]["cells"])}
              for c in manifest["cores"] if c["node"] in synth["nodes"]]
    for q in manifest.get("fifos", []):
        key = f"fifo {q['source']}"
        if key in synth["buffers"]:
            points.append({"name": key, "module": FIFO.module, "params": {"WIDTH": q["width"], "DEPTH": q["depth"]},
                           "family": family, "measured": fpga.resources_from_cells(synth["buffers"][key]["cells"])})
    return points


def fit(points: list[dict], memory: fpga.FpgaTable) -> dict:
    """{module: {"lut": {term: c}, "ff": {term: c}}}: non-negative least squares per module and key of
    (measured - the memories' LUT / FF) on the op's terms (for FFs its `ff_terms`, the ones that hold
    registers), each column scaled to unit norm first."""
    from scipy.optimize import nnls

    coeffs = {}
    for module in sorted({p["module"] for p in points}):
        op = _MODULE_OP[module]
        rows = [p for p in points if p["module"] == module]
        coeffs[module] = {}
        for key in KEYS:
            allowed = op.lut_terms if key == "lut" else op.ff_terms
            names = sorted({t for p in rows for t in op.terms(p["params"]) if allowed is None or t in allowed})
            a = np.array([[op.terms(p["params"]).get(t, 0.0) for t in names] for p in rows], dtype=float)
            scale = np.linalg.norm(a, axis=0)
            scale[scale == 0] = 1.0
            mem = [getattr(_memories(op, p["params"], StreamTable(Path(), {}, memory), p["family"] == "xcup"), key)
                   for p in rows]
            b = np.array([getattr(p["measured"], key) - m for p, m in zip(rows, mem)], dtype=float)
            x, _ = nnls(a / scale, np.maximum(b, 0.0))
            coeffs[module][key] = {t: round(float(v), 4) for t, v in zip(names, x / scale)}
    return coeffs


def _pct(est: float, meas: float) -> float:
    return 100.0 * (est - meas) / meas if meas else (0.0 if est == 0 else float("inf"))


def compare(export: Path, table: StreamTable) -> tuple[list[str], dict]:
    """Lines of per-core and whole-top estimate vs synthesis, and the top's errors in %."""
    rtl = export / "rtl" if (export / "rtl").is_dir() else export
    manifest = json.loads((rtl / "top.json").read_text())
    synth = json.loads((rtl / "resources.json").read_text())
    est = estimate_manifest(manifest, table, synth["family"])
    lines = [f"== {export} ({synth['family']}): estimate / synthesis",
             f"  {'core':34} {'LUT':>15} {'FF':>15} {'DSP':>9} {'BRAM36':>11} {'URAM':>7}"]
    for p in _points(export):
        e = est["nodes"].get(p["name"]) or est["fifos"][p["name"]]
        m = p["measured"]
        lines.append(f"  {p['name'][:34]:34} {e['lut']:7.0f}/{m.lut:<7.0f} {e['ff']:7.0f}/{m.ff:<7.0f} "
                     f"{e['dsp']:4.0f}/{m.dsp:<4.0f} {e['bram']:5.1f}/{m.bram:<5.1f} {e['uram']:3.0f}/{m.uram:<3.0f}")
    measured = fpga.resources_from_cells(synth["total"]["cells"])
    errors = {k: _pct(est["total"][k], getattr(measured, k)) for k in ("lut", "ff", "dsp", "bram", "uram")}
    lines.append(f"  {'whole top':34} " + " ".join(
        f"{k.upper()} {est['total'][k]:,.1f} vs {getattr(measured, k):,.1f} ({errors[k]:+.1f} %)"
        for k in ("lut", "ff", "dsp", "bram", "uram")))
    return lines, errors


def _describe(export: Path) -> str:
    """An export in a few words: its folder, the frame, T, the lanes bound and the synthesis family."""
    rtl = export / "rtl" if (export / "rtl").is_dir() else export
    m = json.loads((rtl / "top.json").read_text())
    family = json.loads((rtl / "resources.json").read_text())["family"]
    _, height, width = m["frame"]
    lanes = sorted({core["lanes"] for core in m["cores"] if core["lanes"]})
    return (f"{export.parent.name}/{export.name} ({height}x{width}, T {m['time_steps']}, {len(m['cores'])} cores, "
            f"P {lanes[0]} to {lanes[-1]}, {family})")


def _yaml(coeffs: dict, exports: list[str]) -> str:
    lines = ["# LUT / FF coefficients of the streaming RTL cores (export/rtl/stream_estimate.py): per module,",
             "# LUT = sum_k lut[k] * term_k (the terms: each StreamOp's `terms` in export/rtl/stream_ops.py), FF",
             "# likewise, on top of the memories' own resources. Non-negative least squares on the synthesized",
             "# cores (Yosys 0.23 synth_xilinx, each core a module of its own) of the exports:",
             *[f"#   {e}" for e in exports],
             f"# Fitted {datetime.date.today().isoformat()} by: python -m hqflow.export.rtl.stream_estimate fit ...",
             "schema_version: 1", "modules:"]
    for module, keys in coeffs.items():
        lines.append(f"  {module}:")
        for key in KEYS:
            lines.append(f"    {key}: {{" + ", ".join(f"{t}: {v:g}" for t, v in keys[key].items()) + "}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("fit", "check"))
    parser.add_argument("exports", nargs="+", type=Path, help="synthesized exports (hqflow synth OUT)")
    parser.add_argument("--held-out", nargs="*", type=Path, default=[], help="synthesized exports to compare only")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_TABLE)
    args = parser.parse_args(argv)
    memory = fpga.load_fpga_table()
    left_out = None
    if args.command == "fit" and len(args.exports) > 1:  # each export predicted by a fit on the others
        print("leave one export out (its whole top predicted by a fit on the others):")
        left_out = 0.0
        for k, export in enumerate(args.exports):
            others = [p for e in args.exports[:k] + args.exports[k + 1:] for p in _points(e)]
            _, errors = compare(export, StreamTable(Path("(cross-validation)"), fit(others, memory), memory))
            left_out = max(left_out, abs(errors["lut"]))
            print(f"  {export.name:24} " + " ".join(f"{key.upper()} {errors[key]:+.1f} %"
                                                    for key in ("lut", "ff", "dsp", "bram", "uram")))
    if args.command == "fit":
        coeffs = fit([p for e in args.exports for p in _points(e)], memory)
        atomic_text(args.out, _yaml(coeffs, [_describe(e) for e in args.exports]))
        print(f"wrote {args.out}")
        table, held = StreamTable(args.out, coeffs, memory), args.held_out
    else:
        table, held = load_stream_table(args.out), args.exports
    worst = 0.0
    for export in [*(args.exports if args.command == "fit" else []), *held]:
        lines, errors = compare(export, table)
        print("\n".join(lines))
        if export in held:
            worst = max(worst, abs(errors["lut"]))
    if left_out is not None:
        print(f"max_left_out_lut_error_pct: {left_out:.1f}")
    if held or left_out is None:
        print(f"max_held_out_lut_error_pct: {worst:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
