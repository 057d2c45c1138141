"""The deployment side of `hqflow`: export, sim, csim, rtlsim, synth and pnr."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hqflow.cli.options import COUNT, DATA_ROOT, NATURAL, POSITIVE
from hqflow.devices import DEFAULT_CLOCK_MHZ, DEFAULT_PART
from hqflow.errors import UserError
from hqflow.export.rtl.pnr import ROUTERS


@click.command(name="export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(["numpy", "hls", "rtl"]), default="numpy", show_default=True,
              help="numpy: the DeployGraph (graph.json + tensors.npz) that `hqflow sim` runs; "
                   "hls: that, plus the HLS C++ project in OUT/hls (run it with `hqflow csim OUT`); "
                   "rtl: that, plus OUT/rtl: the whole model as one Verilog top with its Verilator testbench "
                   "(`hqflow rtlsim OUT`, `hqflow synth OUT`).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Export folder to write.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--tb-samples", type=COUNT, default=200, show_default=True,
              help="hls, rtl: test samples in the testbench (logits compared for each).")
@click.option("--trace-samples", type=NATURAL,
              help="hls, rtl: of those, how many compare every node at every time step (default 2, at most --tb-samples).")
@click.option("--reuse-factor", type=COUNT, default=1, show_default=True,
              help="hls: initiation interval of a conv / linear layer's loop over its window's inputs (synthesis only).")
@click.option("--name", help="hls: project name (top function NAME_top); default: the model's family (spikformer, sdt).")
@click.option("--part", default=DEFAULT_PART, show_default=True,
              help="The FPGA part: hls: build_prj.tcl's set_part and the memory account's device; rtl: the Yosys "
                   "family of `hqflow synth` and the device of the report; hls and rtl (stream): the schedule's "
                   "folding slows down until the resource estimate fits 80% of every resource of the part "
                   "(LUT, FF, DSP, BRAM36, URAM).")
@click.option("--clock-mhz", type=POSITIVE, default=DEFAULT_CLOCK_MHZ, show_default=True,
              help="The target clock: hls: build_prj.tcl's create_clock (period 1000 / MHz ns); rtl: the latency "
                   "figures of `hqflow rtlsim`; hls and rtl (stream): the clock --target-fps counts cycles at.")
@click.option("--arch", type=click.Choice(["stream", "sequential"]), default="stream", show_default=True,
              help="rtl: stream: a streaming pipeline, all T steps of a neuron together, every layer its own core; "
                   "sequential: one core at a time, time step by time step (the first architecture).")
@click.option("--lanes", type=COUNT,
              help="Output channels computed per cycle (P) by each weighted layer. hls and rtl (stream): the "
                   "schedule's folding's upper bound (default 64, at most 256); rtl sequential: per node the "
                   "largest power of two <= LANES that its weight ROM word allows and its channel count divides "
                   "(default 8).")
@click.option("--target-fps", type=POSITIVE,
              help="hls and rtl (stream): fold every layer to the fewest lanes that reach this many inferences a second at "
                   "--clock-mhz (default: the fastest pipeline --lanes allows), or slower where --part needs it.")
@click.option("--memory-style", type=click.Choice(["lut", "block"]), default="lut", show_default=True,
              help="rtl, stream: lut (LUT6 parts): a weight ROM's last lines in LUTs where that costs less than "
                   "the block RAM they would mostly leave empty (fc1's 1,152 lines: 2 BRAM36 and 128 lines in "
                   "LUTs, not 3), the lists of nonzero elements in LUT RAM; block: both in block RAM (LUT4 "
                   "parts: the ECP5 of `hqflow pnr` and `hqflow bitstream`).")
@click.option("--data-root", type=DATA_ROOT, help="hls, rtl: data set folder (not for digits-dvs).")
def export_cmd(run, target, out, force, tb_samples, trace_samples, reuse_factor, name, part, clock_mhz, arch, lanes,
               target_fps, memory_style, data_root):
    """Lower RUN (a finetuned or fp32 run) to the integer-only DeployGraph, and optionally HLS C++."""
    from hqflow.export.hls import HlsOptions
    from hqflow.export.lower import export

    if trace_samples is None:
        trace_samples = min(2, tb_samples)
    if trace_samples > tb_samples:
        raise UserError(f"--trace-samples {trace_samples} exceeds --tb-samples {tb_samples} (the traced samples "
                        "are the first of the testbench's)")
    options = (HlsOptions(name=name or "", reuse_factor=reuse_factor, part=part, clock_ns=1000.0 / clock_mhz, lanes=lanes,
                          target_fps=target_fps, memory_style=memory_style) if target == "hls" else None)
    rtl_options = None
    if target == "rtl":
        from hqflow.export.rtl.project import RtlOptions

        rtl_options = RtlOptions(lanes=lanes, part=part, clock_mhz=clock_mhz, arch=arch, target_fps=target_fps,
                                 memory_style=memory_style)
    graph, summary = export(run, out, target, force, tb_samples, trace_samples, data_root, options, rtl_options)
    if summary.get("data_root"):
        click.echo(f"{out}: test vectors from data root {summary['data_root']}")
    click.echo(f"{out}: {len(graph.nodes)} nodes, {sum(t.nbytes for t in graph.tensors.values())} bytes of "
               f"integer tensors, T {graph.time_steps}")
    if summary and summary["samples"] < tb_samples:
        click.echo(f"--tb-samples {tb_samples}: the test split has {summary['samples']} samples; all are used")
    if target == "rtl" and summary.get("arch") == "stream":
        click.echo(f"folding: target interval {summary['target_interval']} cycles; per core its lanes P and cycles "
                   "per inference (kv/S: the attention's kv rows in S slices; URAM: its large RAMs in UltraRAM):")
        for item in summary["cores"]:
            lif, split = item["params"].get("LIF_LANES"), item["params"].get("SPLIT")
            click.echo(f"  {item['node']:24} {item['op']:10} P {item['lanes'] or '-':>3} "
                       f"{'LIF ' + str(lif) if lif else 'kv/' + str(split) if split else '':>7} {item['cycles']:>9} cycles"
                       + ("  URAM" if item["params"].get("ULTRA") else ""))
        clock = summary["clock_mhz"]
        click.echo(f"pipeline: initiation interval {summary['interval_formula']} cycles by the formulas "
                   f"({clock * 1e6 / summary['interval_formula']:.0f} inferences/s at the {clock:g} MHz target clock); "
                   "latency and interval measured by `hqflow rtlsim`")
        est = summary["estimate"]
        limit = f"{est['share_limit']:.0%}"
        click.echo(f"estimate for {summary['part']} ({summary['family']}): " + ", ".join(
            f"{key.upper()} {est['total'][key]:,.0f}" for key in ("lut", "ff", "dsp", "bram", "uram")) +
            (f": within {limit} of every resource" if est["fits"] else
             f": does NOT fit within {limit} even at the slowest folding (left at the fastest; a larger --part)"))
    elif target == "rtl":
        bound = rtl_options.lanes_bound
        for item in summary["cores"]:
            if item["lanes"] and item["lanes"] < bound and "O" in item["params"]:  # a weighted core's O outputs
                click.echo(f"  {item['node']}: P {item['lanes']} (the largest power of two <= {bound} that its "
                           f"{item['format']} ROM word allows and its {item['params']['O']} channels divide)")
        click.echo(f"{out / 'rtl'}: the whole model as one Verilog top ({len(summary['cores'])} cores, part "
                   f"{summary['part']}, {summary['clock_mhz']:g} MHz), testbench of {summary['samples']} samples "
                   f"({summary['traced']} traced); simulate with `hqflow rtlsim {out}`, synthesize with "
                   f"`hqflow synth {out}`")
    elif summary:
        click.echo(f"{out / 'hls'}: HLS project, testbench of {summary['samples']} samples "
                   f"({summary['trace_samples']} traced, {summary['data_bytes'] / 1e6:.1f} MB of vectors); "
                   f"run it with `hqflow csim {out}`")
        click.echo(f"{summary['memory']} (hls/memory.json; `hqflow csim {out} --static-check` checks it)")


@click.command(name="csim")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--ap-arithmetic", is_flag=True,
              help="Simulate the synthesis arithmetic (ap_int accumulators, multipliers and LIF) instead of its "
                   "exact 64-bit model: the same bits, slower.")
@click.option("--static-check", is_flag=True,
              help="Instead of simulating, compile the firmware alone (-fno-exceptions -fno-rtti) and check what "
                   "an HLS tool needs: no heap, no I/O, no library call it lacks, no recursion, fixed array sizes, "
                   "no static state, the top's dataflow region in canonical form; print the memory account.")
def csim_cmd(export_dir, ap_arithmetic, static_check):
    """Compile EXPORT_DIR's HLS project with g++ and check it against the NumPy simulator's vectors.

    Finds g++ (or $CXX) and the ap_types headers (hls4ml's, or $AP_TYPES). The last line printed is
    "mismatches: N". Exit status: 0 when N is 0, 1 on mismatches, 2 on a broken project or vectors.
    With --static-check the last line is "static check: ok" (exit 0) or the violations (exit 1).
    """
    if static_check:
        from hqflow.export.hls.static_check import check_firmware

        report = check_firmware(export_dir)
        click.echo(report.summary())
        sys.exit(0 if report.ok else 1)
    from hqflow.export.csim import run_csim

    sys.exit(run_csim(export_dir, ap_arithmetic))


@click.command(name="rtlsim")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--samples", type=COUNT, help="Only the first N test samples of the export's testbench (default: all).")
def rtlsim_cmd(export_dir, samples):
    """Co-simulate EXPORT_DIR's Verilog top (rtl/, from --target rtl) with Verilator, bit for bit.

    Streams each test sample through the top and compares its logits with the NumPy simulator's, and,
    for the traced samples, every node's output at every time step. Prints the cycles of each core per
    inference (and, for the sequential top, per step), the latency at the export's clock (also written to
    rtl/cycles.json); for the streaming top "interval_cycles: N" (inferences streamed back to back) and
    "latency_cycles: N" (first input beat to last logit, alone); last "mismatches: N". Exit status: 0
    when N is 0, 1 on mismatches, 2 on a broken project.
    """
    from hqflow.export.rtl.project import rtlsim

    lines, total = rtlsim(export_dir, samples)
    for line in lines:
        click.echo(line)
    sys.exit(1 if total else 0)


@click.command(name="synth")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--part", help="Synthesize for this FPGA part's family instead of the export's (--part of the export).")
def synth_cmd(export_dir, part):
    """Synthesize EXPORT_DIR's Verilog top (rtl/, from --target rtl) with Yosys synth_xilinx.

    Out of context (no I/O buffers); each core and buffer stays a module of its own, with its figures.
    Prints LUT, FF, DSP48, BRAM36 (and more) per core, per buffer and in total, and the devices of
    hqflow's table it fits; writes rtl/resources.md and rtl/resources.json.
    """
    from hqflow.export.rtl.project import synth_top

    if part is not None:
        from hqflow.devices import family_of

        family_of(part)
    text, _ = synth_top(export_dir, part)
    click.echo(text, nl=False)


@click.command(name="pnr")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--device", default="um5g-85k", show_default=True,
              help="The ECP5 device, as nextpnr-ecp5 names it: 25k, 45k, 85k (LFE5U), um-85k, um5g-85k, ...")
@click.option("--package", default="CABGA381", show_default=True, help="The ECP5 package.")
@click.option("--speed", type=int, default=8, show_default=True, help="The speed grade (6, 7 or 8).")
@click.option("--clock-mhz", type=float, default=150.0, show_default=True, help="The clock nextpnr aims for.")
@click.option("--dsp/--no-dsp", default=False, show_default=True,
              help="Map products to MULT18X18D blocks (synth_ecp5 gives one to every `*` of two operands of 2 bits "
                   "or more: the streaming cores keep products too small for a DSP in pipelined LUT trees, the demo "
                   "takes 18; the layer-sequential cores' would take 161 of an 85F's 156); by default they stay in "
                   "LUTs.")
@click.option("--core", "cores", multiple=True,
              help="Route this core alone instead of the top (a node name or core index; repeat for several): "
                   "one line a core, its result in rtl/pnr_cores/<node>/result.json.")
@click.option("--seed", type=int, help="nextpnr's placer seed (default: its own). Where routing is most of the "
                                       "critical path, seeds spread the Fmax by several percent.")
@click.option("--tmg-ripup/--no-tmg-ripup", default=True, show_default=True,
              help="Let the router rip up and reroute the nets of failing paths (nextpnr's timing-driven ripup): "
                   "on the demo top it both routed a placement the plain router did not finish and raised its Fmax.")
@click.option("--router", type=click.Choice(ROUTERS), default="router1", show_default=True,
              help="nextpnr's router: router1 (timing driven: with the ripup, the higher clock on the demo top) or "
                   "router2 (congestion driven: faster on a crowded design, a lower clock).")
def pnr_cmd(export_dir, device, package, speed, clock_mhz, dsp, cores, seed, tmg_ripup, router):
    """Place and route EXPORT_DIR's Verilog top on a Lattice ECP5 (Yosys synth_ecp5, nextpnr-ecp5).

    Prints the post-route Fmax (register to register), the utilization and the critical path; writes
    rtl/pnr.md and rtl/pnr.json (the tools' files in rtl/pnr/). Its last line: `fmax_mhz: X` (with --core,
    the slowest core's).
    """
    from hqflow.export.rtl.pnr import place_and_route, pnr_markdown

    if cores:
        from hqflow.export.rtl.pnr_cores import route_cores

        results = route_cores(export_dir, list(cores), echo=click.echo, device=device, package=package, speed=speed,
                              clock_mhz=clock_mhz, dsp=dsp, seed=seed, tmg_ripup=tmg_ripup, router=router)
        click.echo(f"fmax_mhz: {min(r['fmax_mhz'] for r in results):.2f}")
        return
    result = place_and_route(export_dir, device, package, speed, clock_mhz, dsp, seed=seed, tmg_ripup=tmg_ripup,
                             router=router)
    click.echo(pnr_markdown(result), nl=False)
    click.echo(f"fmax_mhz: {result['fmax_mhz']:.2f}")


@click.command(name="sim")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", type=DATA_ROOT)
@click.option("--limit", type=COUNT, help="Only the first N samples.")
@click.option("--batch-size", type=COUNT, default=64, show_default=True)
@click.option("--compare-torch", "compare_run", type=click.Path(path_type=Path),
              help="Also run this run's float fake-quant model and report the agreement.")
def sim_cmd(export_dir, split, data_root, limit, batch_size, compare_run):
    """Accuracy of the integer model in EXPORT_DIR (NumPy only), optionally against PyTorch."""
    import json

    from hqflow.data import data_root_for, load_dataset
    from hqflow.ir import load_graph
    from hqflow.sim.run import batches, evaluate

    graph = load_graph(export_dir)
    model_meta = graph.meta["model"]
    root, which = data_root_for(data_root, graph.meta.get("data_root"), str(Path(export_dir) / "graph.json"))
    frames = load_dataset(graph.meta["dataset"], split, graph.time_steps, model_meta["img_size"], root)
    if compare_run is None:
        correct, n, seconds = evaluate(graph, batches(frames, batch_size, limit))
        click.echo(f"{export_dir}: integer model, {graph.meta['dataset']} {split} ({n} samples): accuracy "
                   f"{correct / n:.2%}, {1000 * seconds / n:.1f} ms per sample (data root {which})")
        return
    from hqflow.export.compare import compare
    from hqflow.search.checkpoint import load_checkpoint

    cfg, model, _ = load_checkpoint(compare_run)
    differ = [k for k, v in cfg.to_dict()["model"].items()  # graph.json holds tuples as lists
              if model_meta.get(k) != (list(v) if isinstance(v, tuple) else v)]
    if cfg.data.time_steps != graph.time_steps:
        differ.append("time_steps")
    if differ:
        raise UserError(f"--compare-torch {compare_run}: not the run {export_dir} was exported from "
                        f"({', '.join(differ)} differ)")
    result = compare(graph, model, batches(frames, batch_size, limit)).summary() | {"data_root": which}
    click.echo(json.dumps(result, indent=2))


@click.command(name="metrics")
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", type=DATA_ROOT, help="The data set's folder (default: the one the run recorded).")
@click.option("--limit", type=COUNT, help="Only the first N samples.")
@click.option("--batch-size", type=COUNT, default=64, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the metrics to this JSON file.")
def metrics_cmd(source, split, data_root, limit, batch_size, json_out):
    """NeuroBench's metrics of the integer model of SOURCE (a run, lowered in memory, or an export folder) on
    data: footprint at the deployed widths, connection and activation sparsity, synaptic operations (NeuroBench's
    conv and linear layers, and with the attention), membrane updates; per layer too."""
    import json

    from hqflow.export.metrics import measure
    from hqflow.io import atomic_text
    from hqflow.sim.metrics import lines

    result, which = measure(source, split, data_root, limit, batch_size)
    click.echo(f"{source}: {result['hqflow']['dataset']} {split}, data root {which}")
    click.echo("\n".join(lines(result)))
    if json_out is not None:
        atomic_text(json_out, json.dumps(result, indent=2) + "\n")
        click.echo(f"wrote {json_out}")
