"""The `hqflow` command line: each command is a thin wrapper over one library function.

Mistakes in the input (a missing file, a bad config key, an existing output folder) print one
line `error: ...` and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from hqflow.devices import DEFAULT_CLOCK_MHZ, DEFAULT_PART
from hqflow.errors import UserError


class _Group(click.Group):
    """Every mistake in the input, the library's (UserError) or click's (a bad option value, a
    missing argument), ends as one line `error: ...` on stderr and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UserError as err:
            _fail(str(err))
        except click.exceptions.NoArgsIsHelpError as err:  # plain `hqflow`: the help, as click prints it
            err.show()
            sys.exit(err.exit_code)
        except click.MissingParameter as err:
            _fail(err.format_message())
        except click.BadParameter as err:
            name = "/".join(err.param.opts) if err.param is not None and err.param.opts else err.param_hint
            _fail(f"{name}: {err.message}" if name else err.message)
        except click.ClickException as err:
            _fail(err.format_message())
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    click.echo("error: " + " ".join(message.split()), err=True)
    sys.exit(2)


class _Number(click.ParamType):
    """A finite int or float option of at least `minimum` (above it if `strict`; NaN, infinities and
    values out of range refused)."""

    def __init__(self, kind: type, minimum: float, strict: bool = False):
        self.kind, self.minimum, self.strict = kind, minimum, strict
        self.name = "integer" if kind is int else "number"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number < self.minimum or (self.strict and number == self.minimum):
            self.fail(f"{value} must be {'>' if self.strict else '>='} {self.minimum:g}", param, ctx)
        return number


COUNT = _Number(int, 1)  # sample counts, batch sizes, epochs, limits, reuse factor
NATURAL = _Number(int, 0)  # seeds, optional counts
WEIGHT = _Number(float, 0.0)  # lambdas
POSITIVE = _Number(float, 0.0, strict=True)  # clock frequencies
DATA_ROOT = click.Path(path_type=Path, exists=True, file_okay=False)


def _device_option(command):
    """--device auto|cpu|cuda|cuda:N (checked by the library: a bad or missing device is one error line)."""
    return click.option("--device", default="auto", show_default=True,
                        help="Where to run: auto (CUDA when present, else the CPU), cpu, cuda (under torchrun: "
                             "each rank's own GPU) or cuda:N.")(command)


def _amp_option(command):
    return click.option("--amp", is_flag=True,
                        help="Mixed precision: the forward under bf16 autocast (the fake quantizers, the Gumbel "
                             "sample and the hardware cost stay fp32). Off by default; meant for CUDA.")(command)


def _distributed(call):
    """(call(), whether this is the process that prints); under torchrun the process group is ended
    afterwards (at once, without waiting for the others, when call() fails)."""
    from hqflow.search.distributed import is_main_process, shutdown_distributed

    try:
        result = call()
    except BaseException:
        shutdown_distributed(wait=False)
        raise
    main_process = is_main_process()
    shutdown_distributed()
    return result, main_process


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hqflow")
def main() -> None:
    """hqflow: quantized spiking vision transformers, from PyTorch to bit-exact HLS C++.

    \b
    The flow:
      hqflow train    --config configs/tiny.yaml -o runs/fp32        fp32 Spikformer
      hqflow evaluate runs/fp32                                      test accuracy of a run
      hqflow search   --from runs/fp32 --lambda 0.5 -o runs/l0.5     per-layer formats -> plan.json
      hqflow finetune --plan runs/l0.5/plan.json -o runs/l0.5/qat    QAT with the plan fixed
      hqflow report   runs/l0.5                                      accuracy, bits, energy, storage
      hqflow hwreport runs/l0.5                                      + FPGA resources, cycles, device fit
      hqflow sweep    --from runs/fp32 --lambdas 0.1,0.5,2 -o runs/sweep   Pareto front
      hqflow export   runs/l0.5/qat --target hls -o out/l0.5         integer DeployGraph + HLS C++
      hqflow sim      out/l0.5                                       NumPy integer simulator
      hqflow csim     out/l0.5                                       C simulation, bit for bit
      hqflow export   runs/l0.5/qat --target rtl -o out/rtl          + the whole model as a Verilog top
      hqflow rtlsim   out/rtl                                        Verilator, bit for bit; cycles, latency
      hqflow synth    out/rtl                                        Yosys resources per core, device fit

    A mistake in the input (a file, an option, a folder) ends with one line `error: ...` and exit
    status 2. Every command that writes a folder leaves a complete result or none.
    """


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


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML config (sections model, data, train); required unless --resume.")
@click.option("--dataset", type=str, help="Data set name (overrides data.dataset): digits-dvs, dvs128-gesture, "
              "cifar10-dvs, n-caltech101 (configs/<name>.yaml holds the paper's model for each).")
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets.")
@click.option("--epochs", type=COUNT, help="Overrides train.epochs (with --resume: train on to this epoch).")
@click.option("--batch-size", type=COUNT, help="Overrides train.batch_size.")
@click.option("--time-steps", type=COUNT, help="Overrides data.time_steps (T).")
@click.option("--seed", type=NATURAL, help="Overrides train.seed (same seed, same run).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
@_device_option
@_amp_option
def train(config_path, dataset, data_root, epochs, batch_size, time_steps, seed, out, resume, force, quiet, device,
          amp):
    """Train the fp32 Spikformer; writes checkpoint.pt, metrics.jsonl, curves.png into OUT."""
    from hqflow.config import load_config
    from hqflow.search.trainer import train as train_run

    if resume and force:
        raise UserError("--resume and --force exclude each other")
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
    history, main_process = _distributed(lambda: train_run(cfg, out, resume=resume, force=force, progress=not quiet,
                                                           device=device, amp=amp))
    if history and main_process:
        last = history[-1]
        total = sum(m.seconds for m in history)
        click.echo(f"{out}: epoch {last.epoch}, test accuracy {last.test_acc:.2%}, "
                   f"training time {total:.0f} s")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets.")
@click.option("--batch-size", type=COUNT, help="Evaluation batch size (default: the run's).")
@_device_option
@_amp_option
def evaluate(run, split, data_root, batch_size, device, amp):
    """Accuracy of RUN's checkpoint (a run folder or a checkpoint file) on its data set."""
    from hqflow.search.trainer import evaluate_run

    result = evaluate_run(run, split, None if data_root is None else str(data_root), batch_size, device=device,
                          amp=amp)
    click.echo(f"{run}: {result.dataset} {result.split} ({result.samples} samples): "
               f"accuracy {result.accuracy:.2%}, loss {result.loss:.4f}, {result.seconds:.1f} s")


def _search_config(config_path, init, hw_lambda, epochs, energy_table, cost=None):
    from hqflow.config import load_config
    from hqflow.search.checkpoint import load_checkpoint

    if config_path is None and init is None:
        raise UserError("give --from (an fp32 run) or --config (search from scratch)")
    cfg = load_config(config_path) if config_path else load_checkpoint(init)[0]
    return cfg.replace("search", hw_lambda=hw_lambda, epochs=epochs, cost=cost,
                       energy_table=None if energy_table is None else str(energy_table))


@main.command()
@click.option("--from", "init", type=click.Path(path_type=Path), help="fp32 run to start from (its config is used).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML config, to search from scratch.")
@click.option("--lambda", "hw_lambda", type=WEIGHT, help="Weight of the hardware cost in the loss (search.hw_lambda).")
@click.option("--epochs", type=COUNT, help="Overrides search.epochs.")
@click.option("--energy-table", type=click.Path(path_type=Path),
              help="Energy table: a name (45nm, the default; paper) or a YAML of operation energies in pJ.")
@click.option("--cost", type=click.Choice(["energy", "fpga"]),
              help="Hardware term of the loss (search.cost): energy (45 nm table, the default) or fpga "
                   "(LUT-equivalents of the calibrated FPGA resource table).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Search folder to write.")
@click.option("--resume", is_flag=True, help="Continue the search in --out.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True)
@_device_option
@_amp_option
def search(init, config_path, hw_lambda, epochs, energy_table, cost, out, resume, force, quiet, device, amp):
    """Search a per-layer weight format (Gumbel-softmax supernet); writes plan.json into OUT."""
    from hqflow.search.quant_search import run_search

    if resume and force:
        raise UserError("--resume and --force exclude each other")
    _fixed_on_resume(resume, from_=init, config=config_path, lambda_=hw_lambda, epochs=epochs,
                     energy_table=energy_table, cost=cost)
    cfg = None if resume else _search_config(config_path, init, hw_lambda, epochs, energy_table, cost)
    if resume:
        cfg = _resumed_config(out)
    history, main_process = _distributed(lambda: run_search(cfg, out, init=init, resume=resume, force=force,
                                                            progress=not quiet, device=device, amp=amp))
    if not main_process:
        return
    last = history[-1]
    click.echo(f"{out / 'plan.json'}: derived plan test accuracy {last.test_acc:.2%}, energy "
               f"{last.plan_energy_pct:.1f} % of fp32, {last.plan_avg_bits:.2f} average weight bits")


@main.command()
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), required=True, help="plan.json to train with.")
@click.option("--from", "init", type=click.Path(path_type=Path),
              help="Run whose weights to start from (default: the plan's folder, the searched weights).")
@click.option("--epochs", type=COUNT, help="Overrides finetune.epochs.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True)
@_device_option
@_amp_option
def finetune(plan_path, init, epochs, out, resume, force, quiet, device, amp):
    """Quantization-aware training with the plan's formats fixed."""
    from hqflow.search.quant_search import run_finetune

    if resume and force:
        raise UserError("--resume and --force exclude each other")
    _fixed_on_resume(resume, from_=init)
    history, main_process = _distributed(lambda: run_finetune(plan_path, out, init=init, resume=resume, force=force,
                                                              progress=not quiet, epochs=epochs, device=device,
                                                              amp=amp))
    if main_process:
        click.echo(f"{out}: QAT test accuracy {history[-1].test_acc:.2%} after {history[-1].epoch} epochs")


@main.command()
@click.argument("search_dir", type=click.Path(path_type=Path))
@click.option("--qat", "qat_dir", type=click.Path(path_type=Path), help="QAT run (default: SEARCH_DIR/qat).")
@click.option("--fp32", "fp32_dir", type=click.Path(path_type=Path), help="fp32 run (default: the search's --from).")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Report folder (default: SEARCH_DIR/report).")
@click.option("--data-root", type=DATA_ROOT)
@_device_option
def report(search_dir, qat_dir, fp32_dir, out, data_root, device):
    """Accuracy, average bits, energy and storage of a searched (and finetuned) plan, with plots."""
    from hqflow.search.report import make_report

    result = make_report(search_dir, qat_dir=qat_dir, fp32_dir=fp32_dir, out_dir=out,
                         data_root=None if data_root is None else str(data_root), device=device)
    click.echo(result["markdown"])


@main.command(name="hwreport")
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


@main.command(name="cost")
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


@main.command()
@click.option("--from", "init", type=click.Path(path_type=Path), required=True, help="fp32 run to start from.")
@click.option("--lambdas", required=True, help="Comma-separated hardware-cost weights, e.g. 0.1,0.5,2.")
@click.option("--epochs", type=COUNT, help="Overrides search.epochs.")
@click.option("--finetune-epochs", type=NATURAL, default=0, show_default=True, help="QAT epochs per plan (0: none).")
@click.option("--cost", type=click.Choice(["energy", "fpga"]), help="Hardware term of each search (search.cost).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Sweep folder to write.")
@click.option("--resume", is_flag=True,
              help="Continue the sweep in --out (same options): finished lambdas are kept, an interrupted one resumed.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True)
@_device_option
@_amp_option
def sweep(init, lambdas, epochs, finetune_epochs, cost, out, resume, force, quiet, device, amp):
    """Search for several lambdas; plot accuracy against energy (pareto.png) and against estimated LUT / DSP
    (pareto_fpga.png)."""
    from hqflow.search.sweep import sweep as run_sweep

    if resume and force:
        raise UserError("--resume and --force exclude each other")

    values = [WEIGHT.convert(v, None, None) if v.strip() else None for v in lambdas.split(",")]
    if None in values:
        raise UserError(f"--lambdas: {lambdas!r} has an empty entry; expected comma-separated numbers >= 0")
    cfg = _search_config(None, init, None, epochs, None, cost)
    points, main_process = _distributed(lambda: run_sweep(cfg, init, values, out, finetune_epochs=finetune_epochs,
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


@main.command(name="figures")
@click.argument("target", metavar="RUN_OR_SWEEP", type=click.Path(path_type=Path))
@click.option("--layer", help="Layer of Fig. 3 (default: blocks.1.attn.q, else the last block's q).")
@click.option("--data-root", type=DATA_ROOT, help="Folder holding the downloaded data sets (firing rates).")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Figures folder (default: RUN/report/figures, SWEEP/figures).")
@_device_option
def figures_cmd(target, layer, data_root, out, device):
    """The paper's Fig. 3 (one layer's format probabilities, the loss CE + lambda E) and Fig. 5 (formats per
    layer, format shares of q / k / v / o, weight histograms, firing rates) of a search or a sweep."""
    from hqflow.search.figures import make_figures

    result = make_figures(target, out_dir=out, layer=layer, data_root=None if data_root is None else str(data_root),
                          device=device)
    click.echo(f"{result['out']}: " + ", ".join(result["files"]) + ", figures.json")
    click.echo(f"Fig. 3 layer: {result['fig3_layer']}" + (f" ({result['fig3_note']})" if result["fig3_note"] else ""))


@main.command(name="table")
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


@main.command(name="paper")
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
@_device_option
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


@main.command(name="export")
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
              help="hls: initiation interval, in cycles per weight ROM word, of the conv / linear accumulation (synthesis only).")
@click.option("--name", default="spikformer", show_default=True, help="hls: project name (top function NAME_top).")
@click.option("--part", default=DEFAULT_PART, show_default=True,
              help="The FPGA part: hls: build_prj.tcl's set_part; rtl: the Yosys family of `hqflow synth` and "
                   "the device of the report; rtl, stream: the folding slows down until the resource estimate "
                   "fits 80% of every resource of the part (LUT, FF, DSP, BRAM36, URAM).")
@click.option("--clock-mhz", type=POSITIVE, default=DEFAULT_CLOCK_MHZ, show_default=True,
              help="The target clock: hls: build_prj.tcl's create_clock (period 1000 / MHz ns); rtl: the latency "
                   "figures of `hqflow rtlsim`.")
@click.option("--arch", type=click.Choice(["stream", "sequential"]), default="stream", show_default=True,
              help="rtl: stream: a streaming pipeline, all T steps of a neuron together, every layer its own core; "
                   "sequential: one core at a time, time step by time step (the first architecture).")
@click.option("--lanes", type=COUNT,
              help="rtl: output channels computed per cycle (P) by each weighted core. stream: the folding's upper "
                   "bound (default 64, at most 256); sequential: per node the largest power of two <= LANES that "
                   "its weight ROM word allows and its channel count divides (default 8).")
@click.option("--target-fps", type=POSITIVE,
              help="rtl, stream: fold every core to the fewest lanes that reach this many inferences a second at "
                   "--clock-mhz (default: the fastest pipeline --lanes allows), or slower where --part needs it.")
@click.option("--data-root", type=DATA_ROOT, help="hls, rtl: data set folder (not for digits-dvs).")
def export_cmd(run, target, out, force, tb_samples, trace_samples, reuse_factor, name, part, clock_mhz, arch, lanes,
               target_fps, data_root):
    """Lower RUN (a finetuned or fp32 run) to the integer-only DeployGraph, and optionally HLS C++."""
    from hqflow.export.hls import HlsOptions
    from hqflow.export.lower import export

    if trace_samples is None:
        trace_samples = min(2, tb_samples)
    if trace_samples > tb_samples:
        raise UserError(f"--trace-samples {trace_samples} exceeds --tb-samples {tb_samples} (the traced samples "
                        "are the first of the testbench's)")
    options = (HlsOptions(name=name, reuse_factor=reuse_factor, part=part, clock_ns=1000.0 / clock_mhz)
               if target == "hls" else None)
    rtl_options = None
    if target == "rtl":
        from hqflow.export.rtl.project import RtlOptions

        rtl_options = RtlOptions(lanes=lanes, part=part, clock_mhz=clock_mhz, arch=arch, target_fps=target_fps)
    graph, summary = export(run, out, target, force, tb_samples, trace_samples, data_root, options, rtl_options)
    click.echo(f"{out}: {len(graph.nodes)} nodes, {sum(t.nbytes for t in graph.tensors.values())} bytes of "
               f"integer tensors, T {graph.time_steps}")
    if summary and summary["samples"] < tb_samples:
        click.echo(f"--tb-samples {tb_samples}: the test split has {summary['samples']} samples; all are used")
    if target == "rtl" and summary.get("arch") == "stream":
        click.echo(f"folding: target interval {summary['target_interval']} cycles; per core its lanes P and cycles "
                   "per inference:")
        for item in summary["cores"]:
            lif = item["params"].get("LIF_LANES")
            click.echo(f"  {item['node']:24} {item['op']:10} P {item['lanes'] or '-':>3} "
                       f"{'LIF ' + str(lif) if lif else '':>7} {item['cycles']:>9} cycles")
        clock = summary["clock_mhz"]
        click.echo(f"pipeline: initiation interval {summary['interval_formula']} cycles by the formulas "
                   f"({clock * 1e6 / summary['interval_formula']:.0f} inferences/s at {clock:g} MHz); "
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
            if item["lanes"] and item["lanes"] < bound and item["op"] != "head":
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


@main.command(name="csim")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--ap-arithmetic", is_flag=True,
              help="Simulate the synthesis arithmetic (ap_int accumulators, multipliers and LIF) instead of its "
                   "exact 64-bit model: the same bits, slower.")
@click.option("--static-check", is_flag=True,
              help="Instead of simulating, compile the firmware alone (-fno-exceptions -fno-rtti) and check what "
                   "an HLS tool needs: no heap, no I/O, no library call it lacks, no recursion, fixed array sizes.")
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


@main.command(name="rtlsim")
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


@main.command(name="synth")
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


@main.command(name="sim")
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

    from hqflow.data import load_dataset
    from hqflow.ir import load_graph
    from hqflow.sim.run import batches, evaluate

    graph = load_graph(export_dir)
    model_meta = graph.meta["model"]
    frames = load_dataset(graph.meta["dataset"], split, graph.time_steps, model_meta["img_size"],
                          None if data_root is None else str(data_root))
    if compare_run is None:
        correct, n, seconds = evaluate(graph, batches(frames, batch_size, limit))
        click.echo(f"{export_dir}: integer model, {graph.meta['dataset']} {split} ({n} samples): accuracy "
                   f"{correct / n:.2%}, {1000 * seconds / n:.1f} ms per sample")
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
    result = compare(graph, model, batches(frames, batch_size, limit)).summary()
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
