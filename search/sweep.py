"""`hqflow sweep`: one search per hardware-cost weight lambda, and the accuracy / energy trade-off.

For each lambda the search writes `OUT/lambda_<lambda>/` (and, with finetune_epochs > 0, QAT
into `OUT/lambda_<lambda>/qat/`). After every lambda the sweep rewrites

    sweep.json   {"schema_version", "fp32": {accuracy, energy_pct, avg_weight_bits, dir} | null,
                  "points": [{lambda, accuracy, accuracy_source, energy_pct, storage_pct,
                              avg_weight_bits, dir, pareto}]}
    pareto.png   accuracy vs energy (% of fp32, every MAC), the Pareto front connected
    pareto_fpga.png  accuracy vs estimated LUT and vs DSP, each Pareto front connected

Each point (and fp32) also carries the FPGA resource estimate of its plan (`hqflow.fpga`, the
shipped table, the default lanes; the weighted layers' cores, as `hqflow hwreport` gives them):
lut, ff, dsp, bram (BRAM36), and pareto_lut / pareto_dsp, whether it is on the front of accuracy
against LUT / DSP (pareto stays the front against energy).

Accuracy is a fraction: the QAT run's last epoch when finetuned, else the derived plan's at the
end of the search (accuracy_source "search, before finetune").

A sweep killed or failing mid-way leaves its finished lambdas complete, the current one as its
last complete epoch (INCOMPLETE, resumable: `hqflow.io.RunFolder`), sweep.json listing the
finished ones, and an INCOMPLETE marker in OUT. `resume=True` continues it: a complete lambda
folder is read, not searched again; an incomplete one is resumed; a missing one is searched.
A fresh sweep that fails before any search has completed an epoch leaves no OUT.

Under `torchrun --nproc_per_node N` every lambda is searched (and finetuned) data-parallel by all
N ranks, one lambda after the other (`quant_search`, "Devices and processes"), and rank 0 alone
writes OUT's files. Why not one lambda per rank: each point is then the same whatever N and
however many lambdas there are (no rank idles when N does not divide their number), resuming is
the single-process logic unchanged, and a lambda's search on N GPUs is N times the batch of one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hqflow import fpga
from hqflow.config import Config
from hqflow.cost import layer_shapes
from hqflow.errors import UserError
from hqflow.io import INCOMPLETE, atomic_text, check_output_dir, read_incomplete, read_json, require_complete
from hqflow.plan import load_plan
from hqflow.search import quant_search
from hqflow.numerics import Candidate
from hqflow.search.hwreport import design_resources
from hqflow.search.plots import pareto_front, plot_pareto, plot_pareto_fpga
from hqflow.search.distributed import barrier, resolve_device, start_distributed
from hqflow.search.report import read_last_metrics

SCHEMA_VERSION = 1


def sweep(cfg: Config, init: str | Path | None, lambdas: list[float], out: str | Path, finetune_epochs: int = 0,
          force: bool = False, progress: bool = True, resume: bool = False, device="cpu",
          amp: bool = False) -> list[dict[str, Any]]:
    """Search (and optionally finetune) for every lambda of `lambdas`; returns the points of sweep.json.

    `force` replaces each lambda's folder (each one only once its new search has an epoch);
    `resume` continues a killed sweep in `out` (see the module docstring); `device`, `amp`: as
    `quant_search.run_search`."""
    out = Path(out)
    device = resolve_device(device)
    is_main = start_distributed(device)[0] == 0
    if not lambdas:
        raise UserError("sweep: no lambda given")
    if len(set(lambdas)) != len(lambdas):
        raise UserError(f"sweep: lambdas {lambdas} repeat a value")
    if finetune_epochs < 0:
        raise UserError(f"sweep: finetune_epochs must be >= 0, got {finetune_epochs}")
    if resume and force:
        raise UserError("sweep: --resume and --force exclude each other")
    configs = [cfg.replace("search", hw_lambda=float(lam)) for lam in lambdas]  # bad values fail here, first
    fp32 = None
    if init is not None:
        run = Path(init).parent if Path(init).is_file() else Path(init)
        require_complete(run, "--from")
        fp32 = {"accuracy": read_last_metrics(run)["test_acc"], "energy_pct": 100.0, "avg_weight_bits": 32.0,
                "dir": str(run)}
    table = fpga.load_fpga_table()
    if fp32 is not None:
        every = dict.fromkeys((s.name for s in layer_shapes(cfg.model, cfg.data.time_steps)), Candidate.parse("fp32"))
        fp32.update(fpga.total(design_resources(cfg.model, cfg.data.time_steps, every, table)).to_dict())
    if resume:
        if not out.is_dir():
            raise UserError(f"{out}: nothing to resume (no sweep folder there)")
    elif not force:
        check_output_dir(out, force=False)
    created = not out.exists()
    barrier()  # every rank has checked `out` before rank 0 creates it
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_text(out / INCOMPLETE, json.dumps({"lambdas": [float(v) for v in lambdas],
                                                  "resume": f"hqflow sweep --resume -o {out} (same options)"}) + "\n")
    try:
        points = _sweep(configs, init, lambdas, out, finetune_epochs, force, progress, resume, fp32, table,
                        device, amp, is_main)
    except BaseException:
        if is_main and created and not [p for p in out.iterdir() if p.name != INCOMPLETE and not p.name.startswith(".")]:
            shutil.rmtree(out, ignore_errors=True)  # nothing finished: leave nothing
        raise
    if is_main:
        (out / INCOMPLETE).unlink(missing_ok=True)
    return points


def _run(step, folder: Path, resume: bool, *args, **kwargs):
    """Run `step` (search or finetune) into `folder`; with `resume`: skip it when complete, resume it
    when incomplete. Returns the last epoch's test accuracy."""
    if resume and (folder / "checkpoint.pt").is_file():
        complete = read_incomplete(folder) is None
        barrier()  # every rank has read the folder's state before rank 0 changes it
        if complete:
            return read_last_metrics(folder)["test_acc"]
        return step(*args, resume=True, **kwargs)[-1].test_acc
    barrier()
    return step(*args, **kwargs)[-1].test_acc


def _sweep(configs: list[Config], init, lambdas: list[float], out: Path, finetune_epochs: int, force: bool,
           progress: bool, resume: bool, fp32: dict | None, table: fpga.FpgaTable, device="cpu", amp: bool = False,
           is_main: bool = True) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    for lam, lam_cfg in zip(lambdas, configs):
        folder = out / f"lambda_{lam:g}"
        accuracy = _run(quant_search.run_search, folder, resume, lam_cfg, folder, init=init, force=force,
                        progress=progress, device=device, amp=amp)
        source = "search, before finetune"
        if finetune_epochs:
            accuracy = _run(quant_search.run_finetune, folder / "qat", resume, folder / "plan.json", folder / "qat",
                            force=force, progress=progress, epochs=finetune_epochs, device=device, amp=amp)
            source = "qat"
        plan = load_plan(folder / "plan.json")
        summary = plan.summary
        resources = fpga.total(design_resources(lam_cfg.model, lam_cfg.data.time_steps, plan.formats(), table))
        points.append({"lambda": float(lam), "accuracy": accuracy, "accuracy_source": source,
                       "energy_pct": summary["energy_pct"], "storage_pct": summary["storage_pct"],
                       "avg_weight_bits": summary["avg_weight_bits"], "dir": str(folder), **resources.to_dict()})
        for key, flag in (("energy_pct", "pareto"), ("lut", "pareto_lut"), ("dsp", "pareto_dsp")):
            front = {id(p) for p in pareto_front(points, key)}
            for p in points:
                p[flag] = id(p) in front
        if not is_main:
            continue
        atomic_text(out / "sweep.json", json.dumps({"schema_version": SCHEMA_VERSION, "fp32": fp32,
                                                     "points": points}, indent=2) + "\n")
        plot_pareto(points, out / "pareto.png", fp32)
        plot_pareto_fpga(points, out / "pareto_fpga.png", fp32)
    return points

def read_points(sweep_dir: Path) -> tuple[Path, dict, list]:
    """(path, document, points) of sweep_dir/sweep.json; UserError unless points is a non-empty list."""
    path = Path(sweep_dir) / "sweep.json"
    data = read_json(path, "a sweep's sweep.json")
    points = data.get("points") if isinstance(data, dict) else None
    if not isinstance(points, list) or not points:
        raise UserError(f"{path}: points: expected a non-empty list of the sweep's lambdas")
    return path, data, points
