"""Place and route one core of an RTL export alone (pnr.route: Yosys synth_ecp5, nextpnr-ecp5): the
per-core post-route Fmax, for timing closure core by core (the whole demo top takes ~40 minutes).

`route_core(OUT, "sps.rpe")` works in OUT/rtl/pnr_cores/<node>/ (Yosys runs in rtl/: the cores' $readmemh
paths are relative to it): the export's cores read (`sources`: another folder's files of the same names
instead, e.g. a working tree's templates, with the export's parameters and memory files), the instance's
parameters from top.json (chparam), synth_ecp5 -top <module>, nextpnr-ecp5 for the device. The core's
ports are unconstrained pins: its Fmax is register to register inside the core. Writes result.json there.
`hqflow pnr OUT --core NODE` runs it; so does `python -m hqflow.export.rtl.pnr_cores OUT [NODE ...]
[--sources DIR]`, one line a core.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hqflow.errors import UserError
from hqflow.export.rtl import pnr

__all__ = ["core_line", "route_core", "route_cores"]


def _param(value) -> str:
    """A top.json parameter as chparam takes it (integers as they are, strings quoted once)."""
    text = str(value)
    return f'"{text}"' if isinstance(value, str) and not text.startswith('"') else text


def route_core(export: str | Path, node: str, device: str = "um5g-85k", package: str = "CABGA381", speed: int = 8,
               clock_mhz: float = 150.0, dsp: bool = False, sources: str | Path | None = None,
               timeout: float | None = None, seed: int | None = None, tmg_ripup: bool = True,
               router: str = "router1") -> dict:
    """Synthesize and place and route the core of `node` (top.json's node name, or its index) alone; writes
    <rtl>/pnr_cores/<node>/result.json and returns it: pnr.route's result with the node and module."""
    from hqflow.export.rtl.project import load_manifest, rtl_dir

    folder = rtl_dir(export).resolve()
    manifest = load_manifest(folder)
    cores = [c for c in manifest["cores"] if c["node"] == node or str(c["index"]) == str(node)]
    if not cores:
        raise UserError(f"--core {node}: no such core in {folder / 'top.json'} "
                        f"({', '.join(c['node'] for c in manifest['cores'])})")
    core = cores[0]
    pnr.check_ecp5(manifest, folder, [core])
    files = [s for s in manifest["sources"] if Path(s).name != f"{manifest['top']}.v"]
    if sources is not None:
        files = [str(Path(sources).resolve() / Path(f).name) if (Path(sources) / Path(f).name).is_file() else f
                 for f in files]
    work = folder / "pnr_cores" / core["node"]
    result = pnr.route(folder, work, core["module"], files, device, package, speed, clock_mhz, dsp,
                       params={k: _param(v) for k, v in core["params"].items()}, timeout=timeout,
                       seed=seed, tmg_ripup=tmg_ripup, router=router)
    result = {"node": core["node"], "module": core["module"], **result}
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def core_line(result: dict) -> str:
    """One line of a route_core result: node, Fmax, LUT4s, FFs, block RAMs, the critical path."""
    use = result["utilization"]
    path = result["critical_path"] or {}
    return (f"{result['node']:<20} {result['fmax_mhz']:>7.2f} MHz  LUT4 {use.get('TRELLIS_COMB', {}).get('used', 0):>6}"
            f"  FF {use.get('TRELLIS_FF', {}).get('used', 0):>6}  DP16KD {use.get('DP16KD', {}).get('used', 0):>3}  "
            f"{path.get('logic_levels', '-')} levels, {path.get('delay_ns', '-')} ns: "
            f"{path.get('from_source', '') or path.get('from', '')} -> {path.get('to_source', '') or path.get('to', '')}")


def route_cores(export: str | Path, nodes: list[str] | None = None, echo=print, **kwargs) -> list[dict]:
    """route_core for each of `nodes` (default: every core of the export), `echo`ing core_line as each ends."""
    from hqflow.export.rtl.project import load_manifest, rtl_dir

    manifest = load_manifest(rtl_dir(export))
    results = []
    for node in nodes or [c["node"] for c in manifest["cores"]]:
        results.append(route_core(export, node, **kwargs))
        echo(core_line(results[-1]))
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
