"""`hqflow table`: the paper's Table 1 from sweep folders and search folders.

One row per data set and lambda (and one fp32 row per sweep that started from an fp32 run):

    dataset      data.dataset of the run's config.yaml
    lambda       search.hw_lambda ("fp32" for the reference row)
    accuracy     test accuracy (%): the QAT run's last epoch when there is one, else the derived
                 plan's at the end of the search (source column)
    bits         average weight bits (parameter-weighted), plan.json's summary
    compression  32 / bits
    energy_pct   energy, % of the fp32 model (every MAC), plan.json's summary
    storage_pct  weight storage, % of the fp32 model, plan.json's summary
    energy_table the energy table the plan's costs were computed with: the plan's record when it
                 has one, else the config's search.energy_table (unset: the default table's name)
    source       where the accuracy comes from; dir: the run folder

A sweep's rows come from its sweep.json (the lambdas and accuracies) and each lambda folder's
plan.json (the costs), so they are the plans' numbers. Rows are sorted by data set, then lambda
(fp32 first). `to_markdown` and `to_csv` render them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hqflow import cost
from hqflow.config import load_config
from hqflow.errors import UserError
from hqflow.io import atomic_text, read_incomplete, read_json
from hqflow.plan import load_plan
from hqflow.search.report import read_last_metrics
from hqflow.search.sweep import read_points

COLUMNS = ("dataset", "lambda", "accuracy", "bits", "compression", "energy_pct", "storage_pct", "energy_table",
           "source", "dir")


def _energy_table(folder: Path, cfg) -> str:
    raw = read_json(folder / "plan.json", "a plan (plan.json)")
    for where in (raw, raw.get("summary") if isinstance(raw, dict) else None):
        if isinstance(where, dict) and isinstance(where.get("energy_table"), str):
            return where["energy_table"]
    table = cfg.search.energy_table  # the plan predates the record: the config's choice
    return getattr(cost, "DEFAULT_TABLE_NAME", "default") if table is None else str(table)


def search_row(folder: Path, accuracy: float | None = None, source: str | None = None) -> dict[str, Any]:
    """The row of one search folder (plan.json, config.yaml; accuracy from `accuracy` or from the
    folder's QAT run / its own metrics)."""
    folder = Path(folder)
    for name in ("plan.json", "config.yaml"):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: not a search or sweep folder (no {name} and no sweep.json)")
    cfg = load_config(folder / "config.yaml")
    plan = load_plan(folder / "plan.json")
    missing = [k for k in ("avg_weight_bits", "energy_pct", "storage_pct") if k not in plan.summary]
    if missing:
        raise UserError(f"{folder / 'plan.json'}: summary lacks {', '.join(missing)}")
    if accuracy is None:
        qat = folder / "qat"
        if (qat / "metrics.jsonl").is_file() and read_incomplete(qat) is None:
            accuracy, source = read_last_metrics(qat)["test_acc"], "qat"
        else:
            accuracy, source = read_last_metrics(folder)["test_acc"], "search, before finetune"
    bits = float(plan.summary["avg_weight_bits"])
    lam = cfg.search.hw_lambda if plan.hw_lambda is None else plan.hw_lambda
    return {"dataset": cfg.data.dataset, "lambda": float(lam), "accuracy": 100 * float(accuracy),
            "bits": bits, "compression": 32 / bits, "energy_pct": float(plan.summary["energy_pct"]),
            "storage_pct": float(plan.summary["storage_pct"]), "energy_table": _energy_table(folder, cfg),
            "source": source, "dir": str(folder)}


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """The fp32 row (when the sweep has one) and one row per point of sweep_dir/sweep.json."""
    path, data, points = read_points(sweep_dir)
    rows = []
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise UserError(f"{path}: points[{i}]: expected an object, got {p!r}")
        lam, acc = p.get("lambda"), p.get("accuracy")
        for key, value in (("lambda", lam), ("accuracy", acc)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{path}: points[{i}].{key}: expected a number, got {value!r}")
        folder = sweep_dir / f"lambda_{lam:g}"
        if not folder.is_dir():
            raise UserError(f"{path}: points[{i}]: lambda {lam:g} has no folder {folder}")
        row = search_row(folder, acc, str(p.get("accuracy_source", "")))
        if row["lambda"] != float(lam):
            raise UserError(f"{folder / 'plan.json'}: hw_lambda {row['lambda']:g}, but sweep.json's point says {lam:g}")
        rows.append(row)
    fp32 = data.get("fp32")
    if isinstance(fp32, dict) and isinstance(fp32.get("accuracy"), (int, float)):
        rows.insert(0, {"dataset": rows[0]["dataset"], "lambda": "fp32", "accuracy": 100 * float(fp32["accuracy"]),
                        "bits": 32.0, "compression": 1.0, "energy_pct": 100.0, "storage_pct": 100.0,
                        "energy_table": rows[0]["energy_table"], "source": "fp32 run", "dir": str(fp32.get("dir", ""))})
    return rows


def collect(targets: list[str | Path]) -> list[dict[str, Any]]:
    """Rows of every sweep folder (sweep.json) and search folder (plan.json) in `targets`."""
    if not targets:
        raise UserError("table: no sweep or search folder given")
    rows = []
    for target in map(Path, targets):
        if not target.is_dir():
            raise UserError(f"{target}: no such sweep or search folder")
        rows += sweep_rows(target) if (target / "sweep.json").is_file() else [search_row(target)]
    seen = set()
    for r in rows:
        key = (r["dataset"], r["lambda"], r["dir"])
        if key in seen:
            raise UserError(f"{r['dir']}: given twice")
        seen.add(key)
    return sorted(rows, key=lambda r: (r["dataset"], r["lambda"] != "fp32", 0 if r["lambda"] == "fp32" else r["lambda"]))


def _lam(v) -> str:
    return v if isinstance(v, str) else f"{v:g}"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Table 1 as markdown (one line per row, a header, a note on the columns)."""
    lines = ["| data set | λ | accuracy (%) | avg. bits | compression | energy (% of fp32) | storage (% of fp32) "
             "| energy table | accuracy from |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {_lam(r['lambda'])} | {r['accuracy']:.2f} | {r['bits']:.2f} | "
                     f"{r['compression']:.2f}x | {r['energy_pct']:.2f} | {r['storage_pct']:.2f} | "
                     f"{r['energy_table']} | {r['source']} |")
    lines += ["", "compression = 32 / avg. bits; energy and storage in % of the fp32 model, every MAC counted, "
              "with the energy table named; accuracy from the QAT run when there is one."]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Table 1 as CSV (COLUMNS, full precision)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (_lam(r[k]) if k == "lambda" else repr(r[k]) if isinstance(r[k], float) else r[k])
                         for k in COLUMNS})
    return buf.getvalue()


def default_out(targets: list[str | Path]) -> Path:
    """Where the table goes without --out: the first folder's (a sweep's own, a search's report/), as table.md / .csv."""
    first = Path(targets[0])
    return (first if (first / "sweep.json").is_file() else first / "report") / "table"


def write_table(rows: list[dict[str, Any]], out: str | Path) -> tuple[Path, Path]:
    """Write `out`.md and `out`.csv (a .md / .csv suffix of `out` is dropped); returns both paths."""
    out = Path(out)
    if out.suffix in (".md", ".csv"):
        out = out.with_suffix("")
    if out.is_dir():
        raise UserError(f"--out: {out} is a folder; expected a file name (the table goes to {out}.md and {out}.csv)")
    out.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = out.with_name(out.name + ".md"), out.with_name(out.name + ".csv")
    atomic_text(md, to_markdown(rows))
    atomic_text(csv_path, to_csv(rows))
    return md, csv_path
