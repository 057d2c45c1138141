"""`hqflow sweep`: one search per hardware-cost weight lambda, and the accuracy / energy trade-off.

For each lambda the search writes `OUT/lambda_<lambda>/` (and, with finetune_epochs > 0, QAT
into `OUT/lambda_<lambda>/qat/`). After every lambda the sweep rewrites

    sweep.json   {"schema_version", "fp32": {accuracy, energy_pct, avg_weight_bits, dir} | null,
                  "points": [{lambda, accuracy, accuracy_source, energy_pct, storage_pct,
                              avg_weight_bits, dir, pareto}]}
    pareto.png   accuracy vs energy (% of fp32, every MAC), the Pareto front connected

Accuracy is a fraction: the QAT run's last epoch when finetuned, else the derived plan's at the
end of the search (accuracy_source "search, before finetune").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hqflow.config import Config
from hqflow.errors import UserError
from hqflow.io import atomic_text
from hqflow.plan import load_plan
from hqflow.search import search as searching
from hqflow.search.plots import pareto_front, plot_pareto
from hqflow.search.report import read_last_metrics

SCHEMA_VERSION = 1


def sweep(cfg: Config, init: str | Path | None, lambdas: list[float], out: str | Path, finetune_epochs: int = 0,
          force: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Search (and optionally finetune) for every lambda of `lambdas`; returns the points of sweep.json."""
    out = Path(out)
    if not lambdas:
        raise UserError("sweep: no lambda given")
    if len(set(lambdas)) != len(lambdas):
        raise UserError(f"sweep: lambdas {lambdas} repeat a value")
    if finetune_epochs < 0:
        raise UserError(f"sweep: finetune_epochs must be >= 0, got {finetune_epochs}")
    configs = [cfg.replace("search", hw_lambda=float(lam)) for lam in lambdas]  # bad values fail here, first
    fp32 = None
    if init is not None:
        run = Path(init).parent if Path(init).is_file() else Path(init)
        fp32 = {"accuracy": read_last_metrics(run)["test_acc"], "energy_pct": 100.0, "avg_weight_bits": 32.0,
                "dir": str(run)}
    points: list[dict[str, Any]] = []
    for lam, lam_cfg in zip(lambdas, configs):
        folder = out / f"lambda_{lam:g}"
        last = searching.search(lam_cfg, folder, init=init, force=force, progress=progress)[-1]
        accuracy, source = last.test_acc, "search, before finetune"
        if finetune_epochs:
            history = searching.finetune(folder / "plan.json", folder / "qat", force=force, progress=progress,
                                         epochs=finetune_epochs)
            accuracy, source = history[-1].test_acc, "qat"
        summary = load_plan(folder / "plan.json").summary
        points.append({"lambda": float(lam), "accuracy": accuracy, "accuracy_source": source,
                       "energy_pct": summary["energy_pct"], "storage_pct": summary["storage_pct"],
                       "avg_weight_bits": summary["avg_weight_bits"], "dir": str(folder)})
        front = {id(p) for p in pareto_front(points)}
        for p in points:
            p["pareto"] = id(p) in front
        atomic_text(out / "sweep.json", json.dumps({"schema_version": SCHEMA_VERSION, "fp32": fp32,
                                                     "points": points}, indent=2) + "\n")
        plot_pareto(points, out / "pareto.png", fp32)
    return points
