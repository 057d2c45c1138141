"""`hqflow metrics`: NeuroBench's metrics (hqflow.sim.metrics) of the integer model of a run (lowered in
memory) or of an export folder, on a split of its data set; `hqflow report`: the quantization report with
them as a section (metrics.json beside report.md)."""

from __future__ import annotations

import json
from pathlib import Path

from hqflow.data import data_root_for, load_dataset
from hqflow.errors import UserError
from hqflow.io import atomic_text
from hqflow.ir import DeployGraph, load_graph
from hqflow.search.report import make_report
from hqflow.sim.metrics import markdown, metrics
from hqflow.sim.run import batches


def graph_of(source: str | Path) -> tuple[DeployGraph, str | None, str]:
    """(graph, the data root recorded, where) of an export folder (graph.json) or a finished run (its
    checkpoint, lowered as `hqflow export` does)."""
    source = Path(source)
    if (source / "graph.json").is_file():
        graph = load_graph(source)
        return graph, graph.meta.get("data_root"), str(source / "graph.json")
    if (source / "checkpoint.pt").is_file():
        from hqflow.export.lower import lowered

        cfg, graph = lowered(source)
        return graph, cfg.data.data_root, str(source / "config.yaml")
    raise UserError(f"{source}: neither an export folder (graph.json) nor a run (checkpoint.pt)")


def measure(source: str | Path, split: str = "test", data_root: str | Path | None = None, limit: int | None = None,
            batch_size: int = 64) -> tuple[dict, str]:
    """(the metrics dict, which data root was read) of `source` on the first `limit` samples of `split`."""
    graph, recorded, where = graph_of(source)
    root, which = data_root_for(data_root, recorded, where)
    frames = load_dataset(graph.meta["dataset"], split, graph.time_steps, graph.meta["model"]["img_size"], root)
    result = metrics(graph, batches(frames, batch_size, limit))
    result["hqflow"].update(source=str(source), dataset=graph.meta["dataset"], split=split)
    return result, which


def report(search_dir: str | Path, qat_dir: str | Path | None = None, fp32_dir: str | Path | None = None,
           out_dir: str | Path | None = None, data_root: str | None = None, device: str = "cpu") -> dict:
    """search.report.make_report, and for a QAT run the metrics of its integer model on the test split
    (metrics.json, the section "NeuroBench metrics" of report.md, "metrics" in the result)."""
    result = make_report(search_dir, qat_dir=qat_dir, fp32_dir=fp32_dir, out_dir=out_dir, data_root=data_root,
                         device=device)
    if result["qat_dir"] is None:
        return result
    out = Path(out_dir) if out_dir is not None else Path(search_dir) / "report"
    measured, _ = measure(result["qat_dir"], "test", data_root)
    result["markdown"] += "\n" + markdown(measured)
    atomic_text(out / "metrics.json", json.dumps(measured, indent=2) + "\n")
    atomic_text(out / "report.md", result["markdown"])
    return result | {"metrics": measured}
