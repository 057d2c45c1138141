"""`hqflow paper`: one data set of the paper end to end, resumable, with its time projected up front.

The pipeline, each stage a folder under OUT:

    fp32       OUT/fp32                   fp32 training (`trainer.train`, the config's train recipe)
    sweep      OUT/sweep                  one search per lambda from OUT/fp32, each with its QAT run
                                          (`sweep.sweep`, finetune_epochs > 0) or without (0: the paper)
    reports    OUT/sweep/lambda_<l>/report  `hqflow report` of every lambda
    fixed      OUT/sweep/lambda_<l>/fixed   finetune_epochs 0 only: the chosen search's weights with its
                                          plan fixed (no training), the run the export lowers
    export     OUT/export                 `hqflow export` of the chosen plan's run (QAT or fixed)
    summary    OUT/paper.md, paper.json   the table of every lambda and the chosen one

Chosen plan (`choose`): the point of lowest energy (% of fp32) whose accuracy is within `max_drop`
percentage points of the fp32 run's (the paper's target: under 1 point of loss); when none is, the
most accurate point. Ties: the smaller lambda.

Resuming: running the same command again continues. A complete stage is skipped (a complete run
folder, a sweep without its INCOMPLETE marker, a report or export folder that exists: each is built
aside and moved into place whole); an interrupted training stage is resumed with its checkpoint
(`--resume` of train / sweep); OUT/paper_settings.json records the settings of the pipeline, and a
rerun with different ones is refused (start another OUT, or --force).

Projection (search/projection.py: `plan_stages`, `measure_step_seconds`, `projection`): the optimizer steps and
evaluation batches every remaining stage takes are counted from the configuration and the data set's
split sizes (per rank under torchrun), and multiplied by the seconds of one step of each kind
measured on this machine (the --device) with random frames of the configured shape: a fp32 training step, a search
step (alpha step + weight step), a QAT step and an evaluation batch. Reports and the export are
not projected (minutes against the training's hours). `dry_run` prints only the plan and the
projection.

This module knows no exporter (the search layer never imports export): the caller passes one.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hqflow.config import Config
from hqflow.errors import UserError
from hqflow.io import INCOMPLETE, atomic_text, replace_dir
from hqflow.search.projection import (PUBLISHED_SIZES, STEP_KINDS, Stage, hardware_name, lambda_dir,
                                      measure_step_seconds, plan_stages, projection, projection_table, stage_progress)
from hqflow.search.projection import format_duration  # noqa: F401 (part of this module's interface)

SETTINGS = "paper_settings.json"
SCHEMA_VERSION = 1
DEFAULT_LAMBDAS = (0.05, 0.2, 0.5, 2.0)
DEFAULT_MAX_DROP = 1.0  # percentage points of accuracy below fp32 (the paper: "under 1 %")



# ----------------------------------------------------------------------------- choosing and summary


def choose(points: list[dict[str, Any]], fp32_accuracy: float | None, max_drop: float = DEFAULT_MAX_DROP) -> dict:
    """The chosen point of a sweep (see the module docstring): lowest energy within `max_drop` points of
    fp32, else the most accurate; `points` as sweep.json holds them (accuracy a fraction)."""
    if not points:
        raise UserError("the sweep has no points to choose from")
    if fp32_accuracy is not None:
        within = [p for p in points if 100 * (fp32_accuracy - p["accuracy"]) <= max_drop + 1e-9]
        if within:
            return min(within, key=lambda p: (p["energy_pct"], p["lambda"]))
    return max(points, key=lambda p: (p["accuracy"], -p["lambda"]))


def summary_markdown(doc: dict[str, Any]) -> str:
    fp32 = doc["fp32"]
    lines = [f"# {doc['dataset']}: the paper's pipeline", "",
             f"fp32: test accuracy {100 * fp32['accuracy']:.2f} % ({fp32['dir']})" if fp32 else "fp32: none", "",
             f"Chosen: lambda {doc['chosen']['lambda']:g} ({doc['rule']}); exported to {doc['export']}", "",
             "| lambda | accuracy | source | vs fp32 (points) | average weight bits | energy, % of fp32 | "
             "storage, % of fp32 | chosen |", "|---:|---:|---|---:|---:|---:|---:|---|"]
    for p in doc["points"]:
        drop = "" if fp32 is None else f"{100 * (p['accuracy'] - fp32['accuracy']):+.2f}"
        lines.append(f"| {p['lambda']:g} | {100 * p['accuracy']:.2f} % | {p['accuracy_source']} | {drop} | "
                     f"{p['avg_weight_bits']:.2f} | {p['energy_pct']:.2f} | {p['storage_pct']:.2f} | "
                     f"{'yes' if p['lambda'] == doc['chosen']['lambda'] else ''} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the stages


def fix_plan(search_dir: Path, out: Path) -> None:
    """The paper's variant without QAT: the searched weights with the plan fixed, as a run folder that
    `hqflow export` lowers (checkpoint.pt with config, model and plan; config.yaml; metrics.jsonl with
    the derived plan's test accuracy from the search). Built aside, moved into place."""
    import torch

    from hqflow.io import atomic_write
    from hqflow.plan import load_plan
    from hqflow.search import supernet
    from hqflow.search.checkpoint import CHECKPOINT, load_checkpoint

    cfg, model, _ = load_checkpoint(search_dir)
    plan = load_plan(search_dir / "plan.json")
    supernet.apply_formats(model, plan.formats())
    metrics = (search_dir / "metrics.jsonl").read_text().splitlines()
    last = json.loads(metrics[-1]) if metrics else {}
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        state = {"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()}
        atomic_write(tmp / CHECKPOINT, lambda p: torch.save(state, p))
        atomic_text(tmp / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_text(tmp / "metrics.jsonl", json.dumps({"epoch": 0, "test_acc": last.get("test_acc"),
                                                        "source": "search, before finetune"}) + "\n")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def torchrun_argv(nproc: int, args: list[str]) -> list[str]:
    """The command that runs `hqflow ARGS` under torchrun with `nproc` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "hqflow.cli", *args]


@dataclass(frozen=True)
class PaperResult:
    stages: list[Stage]
    rows: list[dict[str, Any]]
    seconds: dict[str, float] | None
    summary: dict[str, Any] | None  # paper.json (None for a dry run)


def _settings(cfg: Config, lambdas, finetune_epochs: int, target: str, tb_samples: int, max_drop: float) -> dict:
    config = json.loads(json.dumps(cfg.to_dict()))
    config["data"].pop("data_root")  # the data may move between runs
    return {"schema_version": SCHEMA_VERSION, "config": config,
            "lambdas": [float(v) for v in lambdas], "finetune_epochs": finetune_epochs, "target": target,
            "tb_samples": tb_samples, "max_drop": max_drop}


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path}: unreadable; this is not a folder `hqflow paper` wrote (choose another -o, "
                        "or --force)") from None
    differ = [k for k in settings if old.get(k) != settings[k]]
    if "config" in differ:
        keys = [f"{sec}.{k}" for sec, part in settings["config"].items() for k in part
                if old.get("config", {}).get(sec, {}).get(k) != part[k]]
        differ = [k for k in differ if k != "config"] + keys
    if differ:
        raise UserError(f"{out}: was started with other settings ({', '.join(differ)} differ); rerun it with the "
                        "same config and options to continue, or choose another -o (or --force to start again)")


def run_paper(cfg: Config, out: str | Path, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
              finetune_epochs: int | None = None, target: str = "hls", tb_samples: int = 16,
              max_drop: float = DEFAULT_MAX_DROP, exporter: Callable[..., Any] | None = None,
              dry_run: bool = False, force: bool = False, nproc: int = 1, measure_steps: int = 2,
              measure_batch: int | None = None, device: str = "auto", progress: bool = True,
              echo: Callable[[str], None] = print, timer: Callable[[], float] = time.perf_counter) -> PaperResult:
    """Run (or, with `dry_run`, only plan and project) the paper's pipeline for `cfg` into `out`.

    `finetune_epochs`: QAT epochs per lambda (None: finetune.epochs; 0: none, the paper's variant);
    `exporter(run, out, target, tb_samples, data_root)` lowers a run (the CLI passes `hqflow export`'s);
    `nproc` > 1 runs the training stages (fp32, sweep) as `torchrun --nproc_per_node nproc` commands;
    `measure_steps` / `measure_batch` / `timer`: see `measure_step_seconds`; `device`: every training stage's
    and the measurement's (auto: CUDA when present; under torchrun each rank's GPU). Prints through `echo`.
    """
    from hqflow.search.distributed import resolve_device

    from hqflow.search.loaders import load_splits
    from hqflow.search.selection import stage_split

    out = Path(out)
    lambdas = [float(v) for v in lambdas]
    if not lambdas:
        raise UserError("--lambdas: no lambda given")
    if len(set(lambdas)) != len(lambdas):
        raise UserError(f"--lambdas: {lambdas} repeat a value")
    if any(not math.isfinite(v) or v < 0 for v in lambdas):
        raise UserError(f"--lambdas: {lambdas}: expected finite numbers >= 0")
    if finetune_epochs is None:
        finetune_epochs = cfg.finetune.epochs
    if finetune_epochs < 0:
        raise UserError(f"--finetune-epochs: {finetune_epochs} must be >= 0")
    if target not in ("numpy", "hls", "rtl"):
        raise UserError(f"--target: {target!r}; expected numpy, hls or rtl")
    if nproc < 1 or measure_steps < 1 or tb_samples < 1:
        raise UserError(f"--nproc {nproc}, --measure-steps {measure_steps}, --tb-samples {tb_samples}: each must be >= 1")
    if not dry_run and exporter is None:
        raise UserError("run_paper: no exporter given")
    resolve_device(device)  # a bad or missing device fails here, before anything runs

    # the data first: a missing or incomplete data root is one error before anything runs
    public = cfg.data.dataset in PUBLISHED_SIZES
    if dry_run and public and cfg.data.data_root is None:
        n_train, n_test = PUBLISHED_SIZES[cfg.data.dataset]
        n_validation = None  # the fraction of the training samples (the labels are not at hand)
        sizes = f"the data set's published split sizes ({n_train:,} / {n_test:,}; no --data-root given)"
    else:
        cfg, train_set, test_set = load_splits(cfg)
        n_train, n_test = len(train_set), len(test_set)
        n_validation = len(stage_split(out, False, train_set.labels, cfg.data, cfg.train.seed)[1])
        sizes = f"{n_train:,} training ({n_validation:,} of them the validation split) / {n_test:,} test samples"
    settings = _settings(cfg, lambdas, finetune_epochs, target, tb_samples, max_drop)
    if out.exists() and not dry_run and force:
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()) and not dry_run:
        _check_settings(out, settings)

    stages = plan_stages(cfg, out, n_train, n_test, lambdas, finetune_epochs, nproc, n_validation)
    echo(f"hqflow paper: {cfg.data.dataset}, {sizes}; {len(lambdas)} lambdas "
         f"({', '.join(f'{v:g}' for v in lambdas)}), "
         + (f"{finetune_epochs} QAT epochs each" if finetune_epochs else "no QAT (the paper's variant)")
         + (f", {nproc} processes (steps per process)" if nproc > 1 else "") + f" -> {out}")
    pending = {s.kind for s in stages if not s.done and (s.steps or s.eval_batches)}
    seconds = None
    if pending:
        kinds = [k for k in STEP_KINDS if k in pending or (k == "eval" and pending)]
        echo(f"measuring {measure_steps} step(s) of each kind ({', '.join(kinds)}) at batch "
             f"{measure_batch or cfg.train.batch_size} on {hardware_name(device)} ...")
        seconds = measure_step_seconds(cfg, measure_steps, 1, measure_batch, kinds, timer, device)
    rows = projection(stages, seconds or {})
    echo(projection_table(rows, seconds, hardware_name(device)))
    if dry_run:
        return PaperResult(stages, rows, seconds, None)

    out.mkdir(parents=True, exist_ok=True)
    atomic_text(out / SETTINGS, json.dumps(settings, indent=2) + "\n")
    _run_training(cfg, out, lambdas, finetune_epochs, nproc, progress, device)
    summary = _finish(out, lambdas, finetune_epochs, target, tb_samples, max_drop, exporter, cfg.data.data_root,
                      progress, echo)
    return PaperResult(stages, rows, seconds, summary)


def _run_training(cfg: Config, out: Path, lambdas: list[float], finetune_epochs: int, nproc: int,
                  progress: bool, device: str) -> None:
    """fp32 training then the sweep, each skipped when complete and resumed when interrupted."""
    from hqflow.search.sweep import sweep
    from hqflow.search.trainer import train

    fp32 = out / "fp32"
    epochs_done, complete = stage_progress(fp32, cfg.train.epochs)
    if not complete:
        resume = (fp32 / "checkpoint.pt").is_file()
        if nproc > 1:
            config_file = out / "config.yaml"
            atomic_text(config_file, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            args = (["train", "--resume"] if resume else ["train", "--config", str(config_file)]) + ["-o", str(fp32)]
            _subprocess(torchrun_argv(nproc, args + ["--device", device] + ([] if progress else ["--quiet"])))
        else:
            train(cfg, fp32, resume=resume, progress=progress, device=device)
    sweep_dir = out / "sweep"
    if _sweep_done(sweep_dir, lambdas):
        return
    resume = sweep_dir.is_dir()
    if nproc > 1:
        args = ["sweep", "--from", str(fp32), "--lambdas", ",".join(f"{v:g}" for v in lambdas),
                "--finetune-epochs", str(finetune_epochs), "-o", str(sweep_dir)] + (["--resume"] if resume else [])
        _subprocess(torchrun_argv(nproc, args + ["--device", device] + ([] if progress else ["--quiet"])))
    else:
        from hqflow.search.checkpoint import load_checkpoint

        fp32_cfg = load_checkpoint(fp32)[0]
        sweep(fp32_cfg, fp32, lambdas, sweep_dir, finetune_epochs=finetune_epochs, progress=progress, resume=resume,
              device=device)


def _subprocess(argv: list[str]) -> None:
    result = subprocess.run(argv)
    if result.returncode != 0:
        raise UserError(f"stage failed (exit status {result.returncode}): {' '.join(argv)}; rerun `hqflow paper` "
                        "with the same options to resume it")


def _sweep_done(sweep_dir: Path, lambdas: list[float]) -> bool:
    if not (sweep_dir / "sweep.json").is_file() or (sweep_dir / INCOMPLETE).exists():
        return False
    try:
        points = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    except (OSError, ValueError, KeyError):
        return False
    return sorted(p["lambda"] for p in points) == sorted(lambdas)


def _finish(out: Path, lambdas: list[float], finetune_epochs: int, target: str, tb_samples: int, max_drop: float,
            exporter, data_root: str | None, progress: bool, echo) -> dict[str, Any]:
    """Reports, the choice, the fixed run (no QAT), the export and the summary."""
    from hqflow.search.report import make_report

    for lam in lambdas:
        folder = lambda_dir(out, lam)
        if not (folder / "report" / "report.json").is_file():
            make_report(folder, fp32_dir=out / "fp32", data_root=data_root, progress=progress)
    doc = json.loads((out / "sweep" / "sweep.json").read_text())
    fp32 = doc["fp32"]
    chosen = choose(doc["points"], None if fp32 is None else fp32["accuracy"], max_drop)
    run = Path(chosen["dir"]) / ("qat" if finetune_epochs else "fixed")
    if not finetune_epochs and not (run / "checkpoint.pt").is_file():
        fix_plan(Path(chosen["dir"]), run)
    export_dir = out / "export"
    if not (export_dir / "graph.json").is_file():
        exporter(run, export_dir, target, tb_samples, data_root)
    rule = (f"the lowest energy within {max_drop:g} points of fp32" if fp32 is not None and
            100 * (fp32["accuracy"] - chosen["accuracy"]) <= max_drop + 1e-9 else
            f"no plan within {max_drop:g} points of fp32: the most accurate")
    summary = {"schema_version": SCHEMA_VERSION, "dataset": json.loads((out / SETTINGS).read_text())["config"]
               ["data"]["dataset"], "fp32": fp32, "points": doc["points"], "chosen": chosen, "rule": rule,
               "export": str(export_dir), "exported_run": str(run), "target": target}
    atomic_text(out / "paper.json", json.dumps(summary, indent=2) + "\n")
    markdown = summary_markdown(summary)
    atomic_text(out / "paper.md", markdown)
    echo(markdown)
    return summary
