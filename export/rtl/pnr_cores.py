"""Place and route one core instance of an RTL export alone (Yosys synth_ecp5, nextpnr-ecp5): the
per-core post-route Fmax, for timing closure core by core (the whole top takes ~50 minutes).

`route_core(OUT, "sps.rpe")` works in OUT/rtl/pnr_cores/<node>/ (nextpnr sees only its working folder;
the cores' $readmemh paths are relative to rtl/, so Yosys runs in rtl/):

    synth.ys      read_verilog -defer <the manifest's core sources>
                  chparam -set <each of the instance's parameters, from top.json> <module>
                  synth_ecp5 -top <module> [-nodsp] -json pnr_cores/<node>/core.json
    nextpnr-ecp5 --um5g-85k --package CABGA381 --speed 8 --freq 150 --json core.json --report report.json
                 --detailed-timing-report --timing-allow-fail --lpf-allow-unconstrained

The core's ports are the design's pins (unconstrained): the Fmax is register to register inside the
core. `sources` replaces the export's core files (e.g. the templates of a working tree), so a changed
core can be routed with an existing export's parameters and memory files.
Command line: python -m hqflow.export.rtl.pnr_cores OUT [NODE ...] [--sources DIR] prints one line a core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from hqflow.errors import UserError
from hqflow.export.rtl.pnr import critical_path, find_nextpnr, utilization

__all__ = ["core_line", "route_core", "route_cores"]


def _chparam(name: str, value) -> str:
    """A chparam -set for one parameter of top.json (integers as they are, strings quoted once)."""
    text = str(value)
    if isinstance(value, str) and not text.startswith('"') and "'" not in text:
        text = f'"{text}"'
    return f"chparam -set {name} {text}"


def route_core(export: str | Path, node: str, device: str = "um5g-85k", package: str = "CABGA381", speed: int = 8,
               clock_mhz: float = 150.0, dsp: bool = False, sources: str | Path | None = None,
               timeout: float | None = None) -> dict:
    """Synthesize and place and route the core of `node` (top.json's node name, or its index) alone;
    writes <rtl>/pnr_cores/<node>/result.json and returns it: module, fmax_mhz, utilization (LUT4s as
    TRELLIS_COMB, FFs as TRELLIS_FF, ...), the critical path (pnr.critical_path), the tools' seconds."""
    from hqflow.export.rtl import yosys
    from hqflow.export.rtl.project import load_manifest, rtl_dir

    folder = rtl_dir(export).resolve()
    manifest = load_manifest(folder)
    cores = [c for c in manifest["cores"] if c["node"] == node or str(c["index"]) == str(node)]
    if not cores:
        raise UserError(f"no core {node!r} in {folder / 'top.json'}: "
                        f"{', '.join(c['node'] for c in manifest['cores'])}")
    core = cores[0]
    module = core["module"]
    files = [folder / s for s in manifest["sources"] if Path(s).name != f"{manifest['top']}.v"]
    if sources is not None:
        files = [Path(sources).resolve() / f.name if (Path(sources) / f.name).is_file() else f for f in files]
    work = folder / "pnr_cores" / core["node"]
    work.mkdir(parents=True, exist_ok=True)
    for name in ("core.json", "report.json", "nextpnr.log", "result.json"):
        (work / name).unlink(missing_ok=True)
    rel = work.relative_to(folder).as_posix()
    script = [f'read_verilog -defer "{f.as_posix()}"' for f in files]
    script += [_chparam(k, v) + f" {module}" for k, v in core["params"].items()]
    script += [f"synth_ecp5 -top {module}{'' if dsp else ' -nodsp'} -json {rel}/core.json"]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    t0 = time.time()
    proc = subprocess.run([str(yosys.find_yosys()), "-q", "-l", f"{rel}/yosys.log", f"{rel}/synth.ys"], cwd=folder,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not (work / "core.json").is_file():
        raise UserError(f"synth_ecp5 of {core['node']} failed (log: {work / 'yosys.log'}): "
                        f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']}")
    t1 = time.time()
    command = [str(find_nextpnr()), f"--{device}", "--package", package, "--speed", str(speed),
               "--freq", f"{clock_mhz:g}", "--json", "core.json", "--report", "report.json",
               "--detailed-timing-report", "--timing-allow-fail", "--lpf-allow-unconstrained", "--log", "nextpnr.log"]
    subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    if not (work / "report.json").is_file():
        raise UserError(f"nextpnr-ecp5 of {core['node']} wrote no report (log: {work / 'nextpnr.log'})")
    report = json.loads((work / "report.json").read_text())
    clocks = report.get("fmax", {})
    result = {"node": core["node"], "module": module, "device": device, "speed": speed, "target_mhz": clock_mhz,
              "fmax_mhz": round(min(c["achieved"] for c in clocks.values()), 2) if clocks else None,
              "utilization": utilization(report), "critical_path": critical_path(report),
              "synth_s": round(t1 - t0, 1), "pnr_s": round(time.time() - t1, 1)}
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def core_line(result: dict) -> str:
    """One line of a route_core result: node, Fmax, LUT4s, FFs, BRAMs, the critical path."""
    use = result["utilization"]
    path = result["critical_path"] or {}
    fmax = f"{result['fmax_mhz']:.2f}" if result["fmax_mhz"] else "-"
    return (f"{result['node']:<20} {fmax:>7} MHz  LUT4 {use.get('TRELLIS_COMB', {}).get('used', 0):>6}  "
            f"FF {use.get('TRELLIS_FF', {}).get('used', 0):>6}  BRAM {use.get('DP16KD', {}).get('used', 0):>3}  "
            f"levels {path.get('logic_levels', '-')}  {path.get('delay_ns', '-')} ns  "
            f"{path.get('from', '')} ({path.get('from_source', '')}) -> {path.get('to', '')} ({path.get('to_source', '')})")


def route_cores(export: str | Path, nodes: list[str] | None = None, **kwargs) -> list[dict]:
    """route_core for each of `nodes` (default: every core of the export), printing core_line as each ends."""
    from hqflow.export.rtl.project import load_manifest, rtl_dir

    manifest = load_manifest(rtl_dir(export))
    results = []
    for node in nodes or [c["node"] for c in manifest["cores"]]:
        results.append(route_core(export, node, **kwargs))
        print(core_line(results[-1]), flush=True)
    return results


if __name__ == "__main__":
    args = sys.argv[1:]
    src = None
    if "--sources" in args:
        at = args.index("--sources")
        src = args[at + 1]
        del args[at:at + 2]
    if not args:
        sys.exit("usage: python -m hqflow.export.rtl.pnr_cores OUT [NODE ...] [--sources DIR]")
    route_cores(args[0], args[1:] or None, sources=src)
