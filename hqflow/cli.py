"""The `hqflow` command line: each command is a thin wrapper over one library function.

Mistakes in the input (a missing file, a bad config key, an existing output folder) print one
line `error: ...` and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hqflow.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hqflow")
def main() -> None:
    """hqflow: quantized spiking vision transformers, from PyTorch to bit-exact HLS C++.

    \b
    The flow:
      hqflow train    --config configs/tiny.yaml -o runs/fp32     fp32 Spikformer
      hqflow evaluate runs/fp32                                   test accuracy of a run
    """


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="YAML config (sections model, data, train); required unless --resume.")
@click.option("--dataset", type=str, help="Data set name (overrides data.dataset): "
              "digits-dvs, dvs128-gesture, cifar10-dvs, n-caltech101.")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder holding the downloaded data sets.")
@click.option("--epochs", type=int, help="Overrides train.epochs.")
@click.option("--batch-size", type=int, help="Overrides train.batch_size.")
@click.option("--time-steps", type=int, help="Overrides data.time_steps (T).")
@click.option("--seed", type=int, help="Overrides train.seed (same seed, same run).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Run folder to write.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def train(config_path, dataset, data_root, epochs, batch_size, time_steps, seed, out, resume, force, quiet):
    """Train the fp32 Spikformer; writes checkpoint.pt, metrics.jsonl, curves.png into OUT."""
    from hqflow.config import load_config
    from hqflow.search.trainer import load_checkpoint, train as train_run

    if resume and force:
        raise UserError("--resume and --force exclude each other")
    if config_path is None and not resume:
        raise UserError("--config is required (or --resume to continue a run)")
    cfg = load_config(config_path) if config_path else load_checkpoint(out)[0]
    if dataset is not None:
        from hqflow.data import DATASETS

        if dataset not in DATASETS:
            raise UserError(f"--dataset: unknown data set '{dataset}'; choices: {', '.join(DATASETS)}")
    cfg = cfg.replace("data", dataset=dataset, time_steps=time_steps,
                      data_root=None if data_root is None else str(data_root))
    cfg = cfg.replace("train", epochs=epochs, batch_size=batch_size, seed=seed)
    history = train_run(cfg, out, resume=resume, force=force, progress=not quiet)
    if history:
        last = history[-1]
        total = sum(m.seconds for m in history)
        click.echo(f"{out}: epoch {last.epoch}, test accuracy {last.test_acc:.2%}, "
                   f"training time {total:.0f} s")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder holding the downloaded data sets.")
@click.option("--batch-size", type=int, help="Evaluation batch size (default: the run's).")
def evaluate(run, split, data_root, batch_size):
    """Accuracy of RUN's checkpoint (a run folder or a checkpoint file) on its data set."""
    from hqflow.search.trainer import evaluate_run

    result = evaluate_run(run, split, None if data_root is None else str(data_root), batch_size)
    click.echo(f"{run}: {result.dataset} {result.split} ({result.samples} samples): "
               f"accuracy {result.accuracy:.2%}, loss {result.loss:.4f}, {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
