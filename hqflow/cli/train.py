"""The training side of `hqflow`: train, evaluate, search, finetune, report, hwreport, cost, sweep,
figures, table and the paper's pipeline."""

from __future__ import annotations

from pathlib import Path

import click

from hqflow.cli.options import (COUNT, DATA_ROOT, NATURAL, POSITIVE, WEIGHT, amp_option, device_option, distributed,
                                run_folder_options)
from hqflow.devices import DEFAULT_CLOCK_MHZ, DEFAULT_PART
from hqflow.errors import UserError


def _fixed_on_resume(resume: bool, **given) -> None:
    """--resume continues a run as it was set up: options that would change its setup are refused."""
    changed = [name for name, value in given.items() if value is not None]
    if resume and changed:
        names = ", ".join("--" + n.rstrip("_").replace("_", "-") for n in changed)
        raise UserError(f"--resume continues the run with its own settings; {names} cannot change them "
                        "(start a new run, or --force to replace this one)")


def _resumed_config(out: Path):
    """The config of the run in `out` that --resume continues."""
    from hqflow.search.checkpoint import CHECKPOINT, load_checkpoint

    if not (out / CHECKPOINT).is_file():
        raise UserError(f"{out}: nothing to resume (no {CHECKPOINT} there)")
    return load_checkpoint(out)[0]


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML config (sections model, data, train); required unless --resume.")
@click.option("--dataset", type=str, help="Data set name (overrides data.dataset): digits-dvs, dvs128-gesture, "
              "cifar10-dvs, n-caltech101 (configs/<name>.yaml holds the paper's model for each).")
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets.")
@click.option("--epochs", type=COUNT, help="Overrides train.epochs (with --resume: train on to this epoch).")
@click.option("--batch-size", type=COUNT, help="Overrides train.batch_size.")
@click.option("--time-steps", type=COUNT, help="Overrides data.time_steps (T).")
@click.option("--seed", type=NATURAL, help="Overrides train.seed (same seed, same run).")
@run_folder_options("Run", "Continue the run in --out from its last checkpoint.")
@device_option
@amp_option
def train(config_path, dataset, data_root, epochs, batch_size, time_steps, seed, out, resume, force, quiet, device,
          amp):
    """Train the fp32 Spikformer; writes checkpoint.pt, metrics.jsonl, curves.png into OUT."""
    from hqflow.config import load_config
    from hqflow.search.trainer import train as train_run

    _fixed_on_resume(resume, config=config_path, dataset=dataset, time_steps=time_steps,
                     batch_size=batch_size, seed=seed)
    if config_path is None and not resume:
        raise UserError("--config is required (or --resume to continue a run)")
    cfg = _resumed_config(out) if resume else load_config(config_path)
    if dataset is not None:
        from hqflow.data import DATASETS

        if dataset not in DATASETS:
            raise UserError(f"--dataset: unknown data set '{dataset}'; choices: {', '.join(DATASETS)}")
    cfg = cfg.replace("data", dataset=dataset, time_steps=time_steps,
                      data_root=None if data_root is None else str(data_root))
    cfg = cfg.replace("train", epochs=epochs, batch_size=batch_size, seed=seed)
    history, main_process = distributed(lambda: train_run(cfg, out, resume=resume, force=force, progress=not quiet,
                                                           device=device, amp=amp))
    if history and main_process:
        last = history[-1]
        total = sum(m.seconds for m in history)
        from hqflow.search.distributed import describe_processor, resolve_device

        click.echo(f"{out}: epoch {last.epoch}, test accuracy {last.test_acc:.2%}, "
                   f"training time {total:.0f} s on {describe_processor(resolve_device(device))}")


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets.")
@click.option("--batch-size", type=COUNT, help="Evaluation batch size (default: the run's).")
@device_option
@amp_option
def evaluate(run, split, data_root, batch_size, device, amp):
    """Accuracy of RUN's checkpoint (a run folder or a checkpoint file) on its data set."""
    from hqflow.search.trainer import evaluate_run

    result = evaluate_run(run, split, None if data_root is None else str(data_root), batch_size, device=device,
                          amp=amp)
    click.echo(f"{run}: {result.dataset} {result.split} ({result.samples} samples): "
               f"accuracy {result.accuracy:.2%}, loss {result.loss:.4f}, {result.seconds:.1f} s (data root "
               f"{result.data_root})")


def _search_config(config_path, init, hw_lambda, epochs, energy_table, cost=None):
    from hqflow.config import load_config
    from hqflow.search.checkpoint import load_checkpoint

    if config_path is None and init is None:
        raise UserError("give --from (an fp32 run) or --config (search from scratch)")
    cfg = load_config(config_path) if config_path else load_checkpoint(init)[0]
    return cfg.replace("search", hw_lambda=hw_lambda, epochs=epochs, cost=cost,
                       energy_table=None if energy_table is None else str(energy_table))


@click.command()
@click.option("--from", "init", type=click.Path(path_type=Path), help="fp32 run to start from (its config is used).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML config, to search from scratch.")
@click.option("--lambda", "hw_lambda", type=WEIGHT, help="Weight of the hardware cost in the loss (search.hw_lambda).")
@click.option("--epochs", type=COUNT, help="Overrides search.epochs.")
@click.option("--energy-table", type=click.Path(path_type=Path),
              help="Energy table: a name (45nm, the default; paper) or a YAML of operation energies in pJ.")
@click.option("--cost", type=click.Choice(["energy", "fpga"]),
              help="Hardware term of the loss (search.cost): energy (45 nm table, the default) or fpga "
                   "(LUT-equivalents of the calibrated FPGA resource table).")
@run_folder_options("Search", "Continue the search in --out.")
@device_option
@amp_option
def search(init, config_path, hw_lambda, epochs, energy_table, cost, out, resume, force, quiet, device, amp):
    """Search a per-layer weight format (Gumbel-softmax supernet); writes plan.json into OUT."""
    from hqflow.search.quant_search import run_search

    _fixed_on_resume(resume, from_=init, config=config_path, lambda_=hw_lambda, epochs=epochs,
                     energy_table=energy_table, cost=cost)
    cfg = None if resume else _search_config(config_path, init, hw_lambda, epochs, energy_table, cost)
    if resume:
        cfg = _resumed_config(out)
    history, main_process = distributed(lambda: run_search(cfg, out, init=init, resume=resume, force=force,
                                                            progress=not quiet, device=device, amp=amp))
    if not main_process:
        return
    last = history[-1]
    click.echo(f"{out / 'plan.json'}: derived plan test accuracy {last.test_acc:.2%}, energy "
               f"{last.plan_energy_pct:.1f} % of fp32, {last.plan_avg_bits:.2f} average weight bits")


@click.command()
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), required=True, help="plan.json to train with.")
@click.option("--from", "init", type=click.Path(path_type=Path),
              help="Run whose weights to start from (default: the plan's folder, the searched weights).")
@click.option("--epochs", type=COUNT, help="Overrides finetune.epochs.")
@run_folder_options("Run", "Continue the run in --out.")
@device_option
@amp_option
def finetune(plan_path, init, epochs, out, resume, force, quiet, device, amp):
    """Quantization-aware training with the plan's formats fixed."""
    from hqflow.search.quant_search import run_finetune

    _fixed_on_resume(resume, from_=init)
    history, main_process = distributed(lambda: run_finetune(plan_path, out, init=init, resume=resume, force=force,
                                                              progress=not quiet, epochs=epochs, device=device,
                                                              amp=amp))
    if main_process:
        import json

        kept = json.loads((Path(out) / "selection.json").read_text())
        click.echo(f"{out}: kept the {kept['kept']} (validation accuracy {kept['val_acc']:.2%}; the searched weights' "
                   f"{kept['searched']['val_acc']:.2%}): test accuracy {kept['test_acc']:.2%}; the last of "
                   f"{history[-1].epoch} epochs {history[-1].test_acc:.2%}")


@click.command()
@click.argument("search_dir", type=click.Path(path_type=Path))
@click.option("--qat", "qat_dir", type=click.Path(path_type=Path), help="QAT run (default: SEARCH_DIR/qat).")
@click.option("--fp32", "fp32_dir", type=click.Path(path_type=Path), help="fp32 run (default: the search's --from).")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Report folder (default: SEARCH_DIR/report).")
@click.option("--data-root", type=DATA_ROOT)
@device_option
def report(search_dir, qat_dir, fp32_dir, out, data_root, device):
    """Accuracy, average bits, energy and storage of a searched (and finetuned) plan, with plots; for a QAT run
    NeuroBench's metrics of its integer model (metrics.json)."""
    from hqflow.export.metrics import report as make_report

    result = make_report(search_dir, qat_dir=qat_dir, fp32_dir=fp32_dir, out_dir=out,
                         data_root=None if data_root is None else str(data_root), device=device)
    click.echo(result["markdown"])


@click.command(name="hwreport")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--cycles", type=click.Path(path_type=Path),
              help="cycles.json of an RTL co-simulation (`hqflow rtlsim`): cycles and latency per layer.")
@click.option("--part", help=f"FPGA part of the target (default: the cycles file's, else {DEFAULT_PART}).")
@click.option("--clock-mhz", type=POSITIVE,
              help=f"Clock of the latency figures (default: the cycles file's, else {DEFAULT_CLOCK_MHZ:g}).")
@click.option("--lanes", type=COUNT, default=8, show_default=True, help="Output channels per cycle of every core (P).")
@click.option("--fpga-table", type=click.Path(path_type=Path), help="FPGA resource table (YAML; default: the shipped one).")
@click.option("--devices", type=click.Path(path_type=Path), help="Device table (YAML; default: the shipped one).")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Report folder (default: RUN/report).")
def hwreport_cmd(run, cycles, part, clock_mhz, lanes, fpga_table, devices, out):
    """A plan's bits, 45 nm energy and storage beside its FPGA resources, cycles and device fit, per layer."""
    from hqflow.search.hwreport import make_hwreport

    result = make_hwreport(run, out_dir=out, cycles=cycles, part=part, clock_mhz=clock_mhz, lanes=lanes,
                           fpga_table=fpga_table, devices=devices)
    click.echo(result["markdown"])


@click.command(name="cost")
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--energy-table", help="Energy table: a name (45nm, the default; paper) or a YAML path.")
@click.option("--layers", is_flag=True, help="Also list every layer.")
def cost_cmd(config_path, energy_table, layers):
    """The fp32 model's energy and storage per layer group (no training); last line: energy_split."""
    from hqflow.config import load_config
    from hqflow.cost import breakdown_lines, fp32_breakdown, load_energy_table

    cfg = load_config(config_path)
    table = load_energy_table(energy_table)
    summary = fp32_breakdown(cfg.model, cfg.data.time_steps, table, cfg.data.dataset)
    click.echo(f"{config_path}: fp32 model, T {cfg.data.time_steps}, {summary['num_classes']} classes; energy table "
               f"{table.name} (accumulate_only {str(table.accumulate_only).lower()}, weight reads "
               f"{table.weight_reads}); % of the whole model")
    click.echo("\n".join(breakdown_lines(summary, layers)))


@click.command()
@click.option("--from", "init", type=click.Path(path_type=Path), required=True, help="fp32 run to start from.")
@click.option("--lambdas", required=True, help="Comma-separated hardware-cost weights, e.g. 0.1,0.5,2.")
@click.option("--epochs", type=COUNT, help="Overrides search.epochs.")
@click.option("--finetune-epochs", type=NATURAL, default=0, show_default=True, help="QAT epochs per plan (0: none).")
@click.option("--cost", type=click.Choice(["energy", "fpga"]), help="Hardware term of each search (search.cost).")
@run_folder_options("Sweep", "Continue the sweep in --out (same options): finished lambdas are kept, an interrupted "
                             "one resumed.")
@device_option
@amp_option
def sweep(init, lambdas, epochs, finetune_epochs, cost, out, resume, force, quiet, device, amp):
    """Search for several lambdas; plot accuracy against energy (pareto.png) and against estimated LUT / DSP
    (pareto_fpga.png)."""
    from hqflow.search.sweep import sweep as run_sweep

    values = [WEIGHT.convert(v, None, None) if v.strip() else None for v in lambdas.split(",")]
    if None in values:
        raise UserError(f"--lambdas: {lambdas!r} has an empty entry; expected comma-separated numbers >= 0")
    cfg = _search_config(None, init, None, epochs, None, cost)
    points, main_process = distributed(lambda: run_sweep(cfg, init, values, out, finetune_epochs=finetune_epochs,
                                                           force=force, progress=not quiet, resume=resume,
                                                           device=device, amp=amp))
    if not main_process:
        return
    for p in points:
        click.echo(f"lambda {p['lambda']:g}: accuracy {p['accuracy']:.2%} ({p['accuracy_source']}), "
                   f"{p['avg_weight_bits']:.2f} bits, energy {p['energy_pct']:.2f} %, storage "
                   f"{p['storage_pct']:.2f} %, estimated {p['lut']:,.0f} LUT / {p['dsp']:,.0f} DSP / "
                   f"{p['bram']:,.1f} BRAM36{', Pareto front' if p['pareto'] else ''}")
    click.echo(f"{out / 'sweep.json'}, {out / 'pareto.png'}, {out / 'pareto_fpga.png'}")


@click.command(name="figures")
@click.argument("target", metavar="RUN_OR_SWEEP", type=click.Path(path_type=Path))
@click.option("--layer", help="Layer of Fig. 3 (default: blocks.1.attn.q, else the last block's q).")
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets (firing rates).")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Figures folder (default: RUN/report/figures, SWEEP/figures).")
@device_option
def figures_cmd(target, layer, data_root, out, device):
    """The paper's Fig. 3 (one layer's format probabilities, the loss CE + lambda E) and Fig. 5 (formats per
    layer, format shares of q / k / v / o, weight histograms, firing rates) of a search or a sweep."""
    from hqflow.search.figures import make_figures

    result = make_figures(target, out_dir=out, layer=layer, data_root=None if data_root is None else str(data_root),
                          device=device)
    click.echo(f"{result['out']}: " + ", ".join(result["files"]) + ", figures.json")
    click.echo(f"Fig. 3 layer: {result['fig3_layer']}" + (f" ({result['fig3_note']})" if result["fig3_note"] else ""))


@click.command(name="table")
@click.argument("targets", metavar="RUNS...", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Write OUT.md and OUT.csv (default: FIRST/table.md and .csv; a search's in FIRST/report/).")
def table_cmd(targets, out):
    """The paper's Table 1: data set x lambda rows (accuracy, bits, compression, energy %, storage %) of sweep
    folders and search folders, printed as markdown and written as markdown and CSV."""
    from hqflow.search.table import collect, default_out, to_markdown, write_table

    if not targets:
        raise UserError("table: give at least one sweep or search folder (RUNS...)")
    rows = collect(list(targets))
    md, csv_path = write_table(rows, out if out is not None else default_out(list(targets)))
    click.echo(to_markdown(rows) + f"\nwritten: {md}, {csv_path}")


def _paper_export(run, out, target, tb_samples, data_root):
    """`hqflow export RUN --target TARGET -o OUT` for `hqflow paper` (the search layer knows no exporter)."""
    from hqflow.export.lower import export

    export(run, out, target, False, tb_samples, min(2, tb_samples), data_root)


@click.command(name="paper")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="The data set's paper config (configs/paper-<dataset>.yaml).")
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the data set (required unless --dry-run).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Pipeline folder (fp32/, sweep/, export/, paper.md); rerunning the command continues it.")
@click.option("--lambdas", default="0.05,0.2,0.5,2", show_default=True, help="Comma-separated hardware-cost weights.")
@click.option("--finetune-epochs", type=NATURAL,
              help="QAT epochs per lambda (default finetune.epochs; 0: no QAT stage, the paper's variant).")
@click.option("--max-drop", type=WEIGHT, default=1.0, show_default=True,
              help="The chosen plan: the lowest energy within this many accuracy points of fp32.")
@click.option("--target", type=click.Choice(["numpy", "hls", "rtl"]), default="hls", show_default=True,
              help="Export target of the chosen plan.")
@click.option("--tb-samples", type=COUNT, default=16, show_default=True, help="hls, rtl: test samples in the testbench.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config key (repeatable), e.g. --set search.alpha_sample=soft.")
@click.option("--nproc", type=COUNT, default=1, show_default=True,
              help="Processes per training stage (> 1: each stage runs under torchrun --nproc_per_node N).")
@click.option("--measure-steps", type=COUNT, default=2, show_default=True,
              help="Timed steps of each kind for the projection (after one untimed).")
@click.option("--measure-batch", type=COUNT,
              help="Measure at this batch and scale to train.batch_size (when the configured batch does not fit).")
@click.option("--dry-run", is_flag=True, help="Print the stages and the projected time only.")
@click.option("--force", is_flag=True, help="Delete --out and start again.")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
@device_option
def paper_cmd(config_path, data_root, out, lambdas, finetune_epochs, max_drop, target, tb_samples, overrides, nproc,
              measure_steps, measure_batch, dry_run, force, quiet, device):
    """The paper's pipeline for one data set: fp32 training, the lambda sweep with QAT, the reports, the
    export of the chosen plan; resumable (rerun the same command), with the time projected up front."""
    from hqflow.config import apply_overrides, load_config
    from hqflow.search.paper import run_paper

    cfg = apply_overrides(load_config(config_path), list(overrides))
    if data_root is not None:
        cfg = cfg.replace("data", data_root=str(data_root))
    values = [WEIGHT.convert(v, None, None) if v.strip() else None for v in lambdas.split(",")]
    if None in values:
        raise UserError(f"--lambdas: {lambdas!r} has an empty entry; expected comma-separated numbers >= 0")
    run_paper(cfg, out, values, finetune_epochs, target, tb_samples, max_drop, _paper_export, dry_run, force, nproc,
              measure_steps, measure_batch, device, progress=not quiet, echo=click.echo)
