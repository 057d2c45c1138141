"""`hqflow hwreport`: a plan's 45 nm figures beside its FPGA circuit: resources, cycles, latency, fit.

For a search folder RUN (plan.json, config.yaml; its QAT run RUN/qat when there is one) the
hardware report gives, per weighted layer and in total:

    format, weight bits       the plan's
    storage (KiB)             weight bits / 8192
    energy (nJ, % of fp32)    the 45 nm model, every MAC counted (`search.report.plan_summaries`)
    LUT, FF, DSP, BRAM36      the FPGA resource estimate of the layer's core (`hqflow.fpga.plan_resources`:
                              P lanes, the input width of each layer, the calibrated table), and the
                              same for the fp32 design as a reference
    cycles, latency           per inference, from an RTL co-simulation's cycles.json (`--cycles`, optional):
                              {"clock_mhz", "part", "nodes": {node: {"cycles_per_inference"}}, "total_cycles"};
                              latency = cycles / clock, inferences per second = clock / total cycles

and which devices of the device table (`hqflow.devices`) the total fits. The estimate covers the
weighted layers' cores (conv_lif, linear_lif, head: lanes, accumulators, LIF, weight ROM, membrane
memories); the spike ops (SSA, max pooling, residual adds) and the buffers between nodes are not in
it (`hqflow synth` measures a whole design). Outputs, in `out_dir` (default RUN/report, beside the
`hqflow report` files): hwreport.md, hwreport.json, hwreport.png, each written atomically.

It is a command of its own, not a section of `hqflow report`: it needs no checkpoint, data set or
forward pass (report measures input rates on test batches), so it runs in seconds and can be
rerun for another part, clock, lane count or cycles file alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hqflow import fpga  # noqa: E402
from hqflow.config import load_config  # noqa: E402
from hqflow.cost import layer_shapes, load_energy_table  # noqa: E402
from hqflow.devices import (  # noqa: E402
    DEFAULT_CLOCK_MHZ,
    DEFAULT_PART,
    family_of,
    find_device,
    fit_markdown,
    fit_table,
    load_devices,
)
from hqflow.errors import UserError  # noqa: E402
from hqflow.io import atomic_text, read_incomplete, read_json, require_complete  # noqa: E402
from hqflow.numerics import Candidate  # noqa: E402
from hqflow.plan import load_plan  # noqa: E402
from hqflow.search.plots import _save  # noqa: E402
from hqflow.search.report import _fp32_run, cost_figures, plan_summaries, read_last_metrics  # noqa: E402
from hqflow.models import topology_of  # noqa: E402

SCHEMA_VERSION = 1
FILES = ("hwreport.md", "hwreport.json", "hwreport.png")


def design_resources(model_cfg, time_steps: int, formats: dict[str, Candidate], table: fpga.FpgaTable,
                     lanes: int = fpga.DEFAULT_LANES) -> dict[str, fpga.Resources]:
    """{layer: Resources} of a plan's weighted layers: `fpga.plan_resources` with every layer's input
    width from the topology (`fpga.layer_input_bits`: event counts into the first conv, spikes or
    sums of spikes elsewhere)."""
    shapes = layer_shapes(model_cfg, time_steps)
    x_bits = fpga.layer_input_bits(topology_of(model_cfg), time_steps)
    return fpga.plan_resources(shapes, formats, table, lanes, x_bits)


def _count(path: Path, key: str, value) -> float:
    """A cycle count: a finite number >= 0 (rtlsim writes means over the samples it ran)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{path}: {key}: expected a number of cycles >= 0, got {value!r}")
    return float(value)


def load_cycles(path: str | Path) -> dict[str, Any]:
    """A cycles.json of `hqflow rtlsim`, checked: clock_mhz (> 0), part (a string), nodes
    {node: {cycles_per_inference: number >= 0, ...}}, total_cycles (number >= 0: means over the co-simulated samples). Returns
    {clock_mhz, part, nodes: {node: cycles}, total_cycles}."""
    path = Path(path)
    raw = read_json(path, 'a cycles file (JSON: clock_mhz, part, nodes, total_cycles)')
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object with keys clock_mhz, part, nodes, total_cycles")
    missing = [k for k in ("clock_mhz", "part", "nodes", "total_cycles") if k not in raw]
    if missing:
        raise UserError(f"{path}: lacks key(s) {', '.join(missing)}")
    clock = raw["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock) or clock <= 0:
        raise UserError(f"{path}: clock_mhz: expected a finite number > 0, got {clock!r}")
    if not isinstance(raw["part"], str):
        raise UserError(f"{path}: part: expected a part name string, got {raw['part']!r}")
    if not isinstance(raw["nodes"], dict):
        raise UserError(f"{path}: nodes: expected an object {{node: {{cycles_per_inference: ...}}}}, "
                        f"got {type(raw['nodes']).__name__}")
    nodes = {}
    for name, entry in raw["nodes"].items():
        if not isinstance(entry, dict) or "cycles_per_inference" not in entry:
            raise UserError(f"{path}: nodes.{name}: expected an object with cycles_per_inference, got {entry!r}")
        nodes[name] = _count(path, f"nodes.{name}.cycles_per_inference", entry["cycles_per_inference"])
    total = _count(path, "total_cycles", raw["total_cycles"])
    return {"clock_mhz": float(clock), "part": raw["part"], "nodes": nodes, "total_cycles": total}


def _accuracy(run: Path, notes: list[str]) -> dict[str, Any]:
    qat = run / "qat"
    if qat.is_dir() and (qat / "metrics.jsonl").is_file() and read_incomplete(qat) is None:
        quantized, source = read_last_metrics(qat)["test_acc"], "qat"
    elif (run / "metrics.jsonl").is_file():
        quantized, source = read_last_metrics(run)["test_acc"], "search, before finetune"
    else:
        quantized, source = None, None
        notes.append("No accuracy: the run folder has no metrics.jsonl (nor a finished qat/ run).")
    try:
        fp32_run = _fp32_run(run, None)
        fp32 = None
        if fp32_run is not None and read_incomplete(fp32_run) is not None:
            notes.append(f"No fp32 accuracy: the fp32 run {fp32_run} is incomplete (INCOMPLETE marker).")
        elif fp32_run is not None:
            fp32 = read_last_metrics(fp32_run)["test_acc"]
    except UserError as err:
        fp32 = None
        notes.append(f"No fp32 accuracy ({err}).")
    drop = None if fp32 is None or quantized is None else 100 * (fp32 - quantized)
    return {"fp32": fp32, "quantized": quantized, "quantized_source": source, "drop_points": drop}


def make_hwreport(run: str | Path, out_dir: str | Path | None = None, cycles: str | Path | None = None,
                  part: str | None = None, clock_mhz: float | None = None, lanes: int = fpga.DEFAULT_LANES,
                  fpga_table: str | Path | None = None, devices: str | Path | None = None) -> dict[str, Any]:
    """Write hwreport.md, hwreport.json and hwreport.png for the search folder `run`; return the
    numbers (hwreport.json's content plus "markdown").

    part / clock_mhz: the target (default: the cycles file's, else hqflow.devices.DEFAULT_PART and
    DEFAULT_CLOCK_MHZ); lanes: output channels per cycle of every core; fpga_table, devices: other
    tables than the shipped ones. `out_dir` (default RUN/report) may hold `hqflow report`'s files."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: search folder not found")
    require_complete(run, "the search folder")
    out_dir = Path(out_dir) if out_dir is not None else run / "report"
    if out_dir.exists() and not (out_dir.is_dir() and (not any(out_dir.iterdir()) or any(
            (out_dir / name).is_file() for name in ("report.json", "hwreport.json")))):
        raise UserError(f"{out_dir}: exists and is not a report folder (no report.json or hwreport.json); "
                        "choose another --out")
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise UserError(f"--lanes {lanes!r}: expected an integer >= 1")
    cfg = load_config(run / "config.yaml")
    plan_path = run / "plan.json"
    plan = load_plan(plan_path)
    shapes = layer_shapes(cfg.model, cfg.data.time_steps)
    plan.check_layers([s.name for s in shapes], str(plan_path))
    formats = plan.formats()
    notes: list[str] = []

    cyc = load_cycles(cycles) if cycles is not None else None
    part = part if part is not None else (cyc["part"] if cyc else DEFAULT_PART)
    family = family_of(part, "--part")
    if clock_mhz is None:
        clock_mhz = cyc["clock_mhz"] if cyc else DEFAULT_CLOCK_MHZ
    elif cyc and cyc["clock_mhz"] != clock_mhz:
        notes.append(f"The cycles were simulated for {cyc['clock_mhz']:g} MHz; the latency is given at "
                     f"--clock-mhz {clock_mhz:g} (cycles do not depend on the clock).")
    device_rows = load_devices(devices)
    try:
        target = find_device(part, device_rows, "--part")
    except UserError:
        target = None
        notes.append(f"--part {part}: not in the device table; the fit table lists the devices it holds.")

    table = fpga.load_fpga_table(fpga_table)
    table_name = fpga.DEFAULT_TABLE.name + " (shipped)" if fpga_table is None else str(fpga_table)
    if table.placeholder:
        notes.append(f"The FPGA resource table ({table_name}) is a placeholder, not yet calibrated by synthesis: "
                     "its LUT / FF / DSP / BRAM figures are indicative only.")
    if family != table.family:
        notes.append(f"The resource table is calibrated for the {table.family} family; the target {part} is "
                     f"{family}: its figures are an {table.family} estimate.")
    resources = design_resources(cfg.model, cfg.data.time_steps, formats, table, lanes)
    fp32_resources = design_resources(cfg.model, cfg.data.time_steps, dict.fromkeys(formats, Candidate.parse("fp32")),
                                      table, lanes)
    summaries = plan_summaries(cfg.model, cfg.data.time_steps, formats, load_energy_table(cfg.search.energy_table))
    figures = cost_figures(summaries)

    layers = []
    for row, cost in zip(figures["layers"], summaries["plan"]["layers"]):
        name = row["name"]
        fmt = formats[name]
        entry = {"name": name, "group": row["group"], "format": fmt.name, "bits": fmt.bits,
                 "storage_kib": row["storage_bits"] / 8192, "energy_nj": cost["energy_pj"] / 1000,
                 "energy_pct": row["energy_pct"], **resources[name].to_dict(),
                 "lut_equivalents": fpga.scalar(resources[name], table)}
        if cyc is not None:
            c = cyc["nodes"].get(name)
            entry["cycles"] = c
            entry["latency_us"] = None if c is None else c / clock_mhz
        layers.append(entry)
    if cyc is not None:
        absent = [row["name"] for row in layers if row["cycles"] is None]
        if absent:
            notes.append(f"{cycles}: no cycles for layer(s) {', '.join(absent)}.")
    design = fpga.total(resources)
    total = {"avg_weight_bits": figures["avg_weight_bits"], "storage_kib": figures["storage"]["kib"],
             "storage_pct": figures["storage"]["pct"], "energy_uj": figures["energy"]["uj"],
             "energy_pct": figures["energy"]["pct"], "fp32_energy_uj": figures["energy"]["fp32_uj"],
             "fp32_storage_kib": figures["storage"]["fp32_kib"], **design.to_dict(),
             "lut_equivalents": fpga.scalar(design, table),
             "fp32_resources": fpga.total(fp32_resources).to_dict()}
    if cyc is not None:
        total["cycles"] = cyc["total_cycles"]
        total["weighted_layer_cycles"] = sum(c for c in (r["cycles"] for r in layers) if c is not None)
        total["latency_ms"] = cyc["total_cycles"] / clock_mhz / 1000
        total["inferences_per_s"] = clock_mhz * 1e6 / cyc["total_cycles"] if cyc["total_cycles"] else None
    report = {"schema_version": SCHEMA_VERSION, "run": str(run), "plan": str(plan_path), "hw_lambda": plan.hw_lambda,
              "accuracy": _accuracy(run, notes),
              "target": {"part": part, "family": family, "device": None if target is None else target.name,
                         "clock_mhz": clock_mhz},
              "resource_model": {"table": table_name, "family": table.family, "placeholder": table.placeholder,
                                 "lanes": lanes, "weights": table.weights,
                                 "covers": "weighted layers' cores (conv_lif, linear_lif, head); not the spike ops "
                                           "(SSA, max pool, add) nor the buffers between nodes"},
              "cycles": None if cycles is None else str(cycles),
              "layers": layers, "total": total, "fit": fit_table(design, device_rows),
              "fit_fp32": fit_table(fpga.total(fp32_resources), device_rows),
              "plots": {"hardware": "hwreport.png"}, "notes": notes}
    markdown = to_markdown(report, device_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_hardware(report, out_dir / "hwreport.png")
    atomic_text(out_dir / "hwreport.json", json.dumps(report, indent=2) + "\n")
    atomic_text(out_dir / "hwreport.md", markdown)
    return report | {"markdown": markdown}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def to_markdown(r: dict[str, Any], devices) -> str:
    """hwreport.md: the report's numbers as markdown tables (units in every header)."""
    acc, t, tgt, model = r["accuracy"], r["total"], r["target"], r["resource_model"]
    clock = tgt["clock_mhz"]
    has_cycles = r["cycles"] is not None
    drop = "n/a" if acc["drop_points"] is None else f"{acc['drop_points']:+.2f} points"
    fp32_res = t["fp32_resources"]
    lines = [f"# Hardware report: {r['run']}", "",
             f"hw_lambda {r['hw_lambda']}; target {tgt['part']} ({tgt['device'] or 'not in the device table'}, "
             f"Yosys family {tgt['family']}) at a {clock:g} MHz target clock (not a routed one); "
             f"resource estimate: {model['table']} "
             f"({model['family']}{', placeholder' if model['placeholder'] else ''}), {model['lanes']} lanes per core; "
             f"accuracy from: {acc['quantized_source'] or 'n/a'}.", "",
             "| | fp32 | plan | |", "|---|---:|---:|---:|",
             f"| test accuracy (%) | {_pct(acc['fp32'])} | {_pct(acc['quantized'])} | drop {drop} |",
             f"| average weight bits | 32 | {t['avg_weight_bits']:.2f} | compression {32 / t['avg_weight_bits']:.1f}x |",
             f"| energy, 45 nm, every MAC (uJ / inference) | {t['fp32_energy_uj']:.3f} | {t['energy_uj']:.3f} | "
             f"{t['energy_pct']:.2f} % |",
             f"| weight storage (KiB) | {t['fp32_storage_kib']:.1f} | {t['storage_kib']:.1f} | {t['storage_pct']:.2f} % |"]
    for key, label in (("lut", "LUT (count)"), ("ff", "FF (count)"), ("dsp", "DSP (count)"), ("bram", "BRAM36 (count)")):
        share = f"{100 * t[key] / fp32_res[key]:.1f} %" if fp32_res[key] else "n/a"
        lines.append(f"| {label}, estimated | {fp32_res[key]:,.1f} | {t[key]:,.1f} | {share} |")
    if has_cycles:
        rate = "n/a" if t["inferences_per_s"] is None else f"{t['inferences_per_s']:,.0f}"
        lines += [f"| cycles per inference (count) | | {t['cycles']:,.0f} | |",
                  f"| latency at the {clock:g} MHz target clock (ms / inference) | | {t['latency_ms']:.3f} | |",
                  f"| throughput at the {clock:g} MHz target clock (inferences / s) | | {rate} | |"]
    lines += ["", "## Layers", "",
              "Energy: 45 nm model, every MAC counted, per inference; resources: the estimate of the layer's core "
              f"({model['lanes']} lanes)" + (f"; cycles: {r['cycles']}" if has_cycles else "") + ".", "",
              "| layer | format | weight bits (bits) | storage (KiB) | energy (nJ) | energy (% of fp32 model) "
              "| LUT (count) | FF (count) | DSP (count) | BRAM36 (count) | cycles / inference (count) "
              f"| latency at the {clock:g} MHz target clock (us) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["layers"]:
        c = row.get("cycles")
        cycles_cell = "n/a" if c is None else f"{c:,.0f}"
        latency_cell = "n/a" if c is None else f"{row['latency_us']:.2f}"
        lines.append(f"| {row['name']} | {row['format']} | {row['bits']} | {row['storage_kib']:.2f} | "
                     f"{row['energy_nj']:.1f} | {row['energy_pct']:.3f} % | {row['lut']:,.0f} | {row['ff']:,.0f} | "
                     f"{row['dsp']:,.0f} | {row['bram']:,.1f} | {cycles_cell} | {latency_cell} |")
    cyc_total = f"{t['cycles']:,.0f}" if has_cycles else "n/a"
    lat_total = f"{1000 * t['latency_ms']:.2f}" if has_cycles else "n/a"
    lines.append(f"| **total** | | {t['avg_weight_bits']:.2f} (average) | {t['storage_kib']:.2f} | "
                 f"{1000 * t['energy_uj']:.1f} | {t['energy_pct']:.3f} % | {t['lut']:,.0f} | {t['ff']:,.0f} | "
                 f"{t['dsp']:,.0f} | {t['bram']:,.1f} | {cyc_total} | {lat_total} |")
    if has_cycles:
        lines += ["", f"The weighted layers' cycles sum to {t['weighted_layer_cycles']:,.0f}; the total "
                  f"({t['cycles']:,.0f}, the cycles file's total_cycles) also counts the other nodes (spike ops, "
                  "control) and any overlap between nodes."]
    lines += ["", "## Which devices the plan fits", "",
              f"The estimate covers the {model['covers']}.", "",
              fit_markdown({k: t[k] for k in ("lut", "ff", "dsp", "bram")}, devices).rstrip(),
              "", "The fp32 design, for comparison: fits "
              + (", ".join(f["part"] for f in r["fit_fp32"] if f["fits"]) or "none of them") + ".",
              "", "Device capacities and their sources: " + "; ".join(
                  f"{', '.join(d.part for d in devices if d.source == source)}: {source}"
                  for source in dict.fromkeys(d.source for d in devices)) + ".",
              "", "## Figure", "", f"![resources and energy per layer]({r['plots']['hardware']})", ""]
    if r["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def plot_hardware(r: dict[str, Any], png_path: Path) -> None:
    """Per layer: LUT-equivalents stacked by resource (LUT, FF, DSP, BRAM36 times the table's
    weights), the 45 nm energy (nJ), and the cycles per inference when known."""
    layers = r["layers"]
    names = [f"{row['name']} ({row['format']})" for row in layers]
    weights = r["resource_model"]["weights"]
    has_cycles = r["cycles"] is not None
    ncols = 3 if has_cycles else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 0.42 * len(layers) + 2.2), sharey=True)
    y = list(range(len(layers)))
    left = [0.0] * len(layers)
    colors = {"lut": "tab:blue", "ff": "tab:cyan", "dsp": "tab:red", "bram": "tab:green"}
    labels = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM36"}
    for key in ("lut", "ff", "dsp", "bram"):
        widths = [weights[key] * row[key] for row in layers]
        axes[0].barh(y, widths, left=left, color=colors[key], label=f"{labels[key]} x {weights[key]:g}")
        left = [a + b for a, b in zip(left, widths)]
    for i, row in enumerate(layers):
        axes[0].annotate(f"{row['dsp']:.0f} DSP, {row['bram']:.1f} BRAM", (left[i], i), xytext=(3, 0),
                         textcoords="offset points", va="center", fontsize=6)
    axes[0].set(xlabel="FPGA resources (LUT-equivalents)", title="estimated resources per layer core")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_yticks(y, names, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].margins(x=0.25)
    axes[1].barh(y, [row["energy_nj"] for row in layers], color="tab:orange")
    axes[1].set(xlabel="energy, 45 nm, every MAC (nJ / inference)", title="energy per layer")
    if has_cycles:
        cycles = [row["cycles"] or 0 for row in layers]
        axes[2].barh(y, cycles, color="tab:purple")
        axes[2].set(xlabel=f"cycles per inference (count; {r['target']['clock_mhz']:g} MHz)",
                    title="cycles per layer (RTL co-simulation)")
    for ax in axes:
        ax.grid(alpha=0.3, axis="x")
    t = r["total"]
    fig.suptitle(f"{r['run']}: {t['lut']:,.0f} LUT, {t['ff']:,.0f} FF, {t['dsp']:,.0f} DSP, {t['bram']:,.1f} BRAM36 "
                 f"(estimate); {t['energy_uj']:.2f} uJ / inference (45 nm)", fontsize=9)
    _save(fig, png_path)
