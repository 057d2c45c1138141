"""Hardware cost model (45 nm): energy and weight storage of every conv / linear layer.

Per layer and weight format (a `Candidate`), for one inference of one sample over T steps:

    MACs = T * positions * c_in * c_out * k^2        (positions: output pixels or tokens, 1 for the head;
                                                      each op counts its own: Op.weight_counts)
    E    = M * E_mul + A * E_add + S * E_mem         M = A = MACs, S = weight bits
    storage S = c_in * c_out * k^2 * bits

Operation energies come from a table (`tables/energy_45nm.yaml`, Horowitz ISSCC 2014 and
QKeras QTools' DRAM figure), and scale with the operand width as follows:
    fp32:       E_mul = fp32 multiply, E_add = fp32 add
    uniform-b:  E_mul = int32_mult * (b / 32)^2   an array multiplier grows with width^2;
                                                  this fits Horowitz's int8 0.2 pJ within 5 %
    po2-b:      E_mul = int32_add * b / 32         a shift costs an add of the weight's width
    integer accumulation: E_add = int32_add        (a 32-bit accumulator; conservative)
    E_mem = dram_per_bit: every weight bit is read from DRAM once per inference.

The paper's figure counts every MAC. A spiking core only adds where an input is non-zero, so
the sparsity-aware figure scales M and A by the layer's measured input rate (the fraction of
non-zero inputs). Only weight layers are costed: the spike-by-spike SSA products and the LIF
updates are the same for every plan and are left out of both sides of the ratio (`spike_ops` counts
them per op, Op.spike_ops, and `hqflow cost` lists the counts beside the energy).

Two counting options, keys of a table file with these defaults (those of the 45 nm table):
    accumulate_only: false      true: spiking inputs, a MAC is an add of the weight (E_mul = 0
                                for every format; the SNN literature's "AC" operation)
    weight_reads: per_inference per_step: every weight bit is read from DRAM at every time step
                                (S * E_mem * T)
The `paper` table (`tables/energy_paper.yaml`) sets both and takes Horowitz's upper DRAM figure
(2.6 nJ per 64-bit access); at configs/paper.yaml it gives the fp32 split tokenizer / attention
/ mlp of the paper's Fig. 4 within 0.1 point (41.5 / 19.5 / 38.9 against 41.4 / 19.5 / 38.9):
    E = T * (positions * params * fp32_add + params * 32 * dram_per_bit).
A table is named (`45nm`, `paper`: `tables/energy_<name>.yaml`) or given as a YAML path.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from hqflow.config import ModelConfig
from hqflow.errors import UserError
from hqflow.io import read_yaml
from hqflow.numerics import Candidate
from hqflow.ops import OPS
from hqflow.models import topology_of
from hqflow.topology import GROUPS, Topology

TABLES = Path(__file__).with_name("tables")
DEFAULT_TABLE = TABLES / "energy_45nm.yaml"
DEFAULT_TABLE_NAME = "45nm"
WEIGHT_READS = ("per_inference", "per_step")


def table_names() -> tuple[str, ...]:
    """The names of the shipped energy tables (tables/energy_<name>.yaml), sorted."""
    return tuple(sorted(p.stem.removeprefix("energy_") for p in TABLES.glob("energy_*.yaml")))


def resolve_energy_table(table: str | Path | None) -> tuple[str, Path]:
    """(label, file) of an energy table given by name (`45nm`, `paper`), by YAML path, or None (45nm).

    A value without a path separator and without a suffix is a name; anything else is a path.
    The label is the name for a shipped table, else the path as given."""
    if table is None:
        return DEFAULT_TABLE_NAME, DEFAULT_TABLE
    text = str(table)
    if "/" in text or "\\" in text or Path(text).suffix:
        return text, Path(text)
    path = TABLES / f"energy_{text}.yaml"
    if not path.is_file():
        raise UserError(f"--energy-table (search.energy_table): unknown energy table {text!r}: expected one of "
                        f"{', '.join(table_names())} or a YAML file path")
    return text, path


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in pJ (see the table file for the source of each number)."""

    fp32_mult: float
    fp32_add: float
    int32_mult: float
    int8_mult: float
    int32_add: float
    int8_add: float
    dram_per_bit: float
    accumulate_only: bool = False  # spiking inputs: a MAC is an add (E_mul = 0 for every format)
    weight_reads: str = "per_inference"  # or "per_step": the weights are read from DRAM every time step
    name: str = DEFAULT_TABLE_NAME  # the table's name (shipped) or path, for the reports

    def mult(self, c: Candidate) -> float:
        if self.accumulate_only:
            return 0.0
        if c.scheme == "fp32":
            return self.fp32_mult
        if c.scheme == "uniform":
            return self.int32_mult * (c.bits / 32) ** 2
        return self.int32_add * c.bits / 32  # po2: a shift

    def add(self, c: Candidate) -> float:
        return self.fp32_add if c.scheme == "fp32" else self.int32_add


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """Read an energy table: a name (`45nm`, `paper`), a YAML path, or None (45nm).

    The YAML has the EnergyTable energies in pJ and optionally accumulate_only (bool) and
    weight_reads (per_inference or per_step)."""
    label, path = resolve_energy_table(path)
    keys = [f.name for f in fields(EnergyTable) if f.type == "float"]
    raw = read_yaml(path, f"an energy table (YAML with keys {', '.join(keys)} in pJ)")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: an energy table is a mapping of {', '.join(keys)} to pJ, got {type(raw).__name__}")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise UserError(f"{path}: energy table lacks key(s) {', '.join(missing)}")
    for k in keys:
        value = raw[k]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{path}: {k}: expected a finite, non-negative number of pJ, got {value!r}")
    accumulate_only = raw.get("accumulate_only", False)
    if not isinstance(accumulate_only, bool):
        raise UserError(f"{path}: accumulate_only: expected true or false, got {accumulate_only!r}")
    weight_reads = raw.get("weight_reads", "per_inference")
    if weight_reads not in WEIGHT_READS:
        raise UserError(f"{path}: weight_reads: expected one of {', '.join(WEIGHT_READS)}, got {weight_reads!r}")
    return EnergyTable(**{k: float(raw[k]) for k in keys}, accumulate_only=accumulate_only,
                       weight_reads=weight_reads, name=label)


@dataclass(frozen=True)
class LayerShape:
    """A weight layer's geometry for one sample: `positions` outputs per channel and step, T steps."""

    name: str
    group: str  # one of GROUPS
    c_in: int
    c_out: int
    taps: int  # kernel^2 weights per input and output channel (1 for linear)
    positions: int
    time_steps: int

    @property
    def params(self) -> int:
        return self.c_in * self.c_out * self.taps

    @property
    def macs(self) -> int:
        return self.time_steps * self.positions * self.params


def layer_shapes(model: ModelConfig | Topology, time_steps: int) -> list[LayerShape]:
    """Every conv / linear layer of a topology (or the Spikformer of a config), in execution order."""
    topology = model if isinstance(model, Topology) else topology_of(model)
    return [LayerShape(layer.name, layer.group, layer.c_in, layer.c_out, layer.taps, layer.positions, time_steps)
            for layer in topology.layers]


@dataclass(frozen=True)
class LayerCost:
    name: str
    group: str
    candidate: str
    macs: int
    storage_bits: int
    compute_pj: float
    memory_pj: float

    @property
    def energy_pj(self) -> float:
        return self.compute_pj + self.memory_pj


def layer_cost(shape: LayerShape, c: Candidate, table: EnergyTable, input_rate: float = 1.0) -> LayerCost:
    """Energy and storage of one layer in format `c`; `input_rate` < 1 counts only non-zero inputs."""
    ops = shape.macs * input_rate
    storage = shape.params * c.bits
    reads = shape.time_steps if table.weight_reads == "per_step" else 1
    return LayerCost(shape.name, shape.group, c.name, shape.macs, storage,
                     ops * (table.mult(c) + table.add(c)), storage * table.dram_per_bit * reads)


def cost_matrix(shapes: list[LayerShape], candidates: tuple[Candidate, ...], table: EnergyTable) -> list[list[float]]:
    """Energy in pJ of every layer [L] in every candidate format [K] (the search's cost table)."""
    return [[layer_cost(s, c, table).energy_pj for c in candidates] for s in shapes]


def summarize(costs: list[LayerCost], reference: list[LayerCost]) -> dict:
    """Totals of `costs` against `reference` (the fp32 model): energy and storage, % and split by group."""
    def total(cs, attr, group=None):
        return sum(getattr(c, attr) for c in cs if group is None or c.group == group)

    e, e_ref = total(costs, "energy_pj"), total(reference, "energy_pj")
    s, s_ref = total(costs, "storage_bits"), total(reference, "storage_bits")
    params = sum(c.storage_bits for c in reference) / 32
    return {
        "energy_uj": e * 1e-6, "energy_fp32_uj": e_ref * 1e-6, "energy_pct": 100 * e / e_ref,
        "storage_kib": s / 8192, "storage_fp32_kib": s_ref / 8192, "storage_pct": 100 * s / s_ref,
        "avg_weight_bits": s / params,
        "energy_pct_by_group": {g: 100 * total(costs, "energy_pj", g) / e_ref for g in GROUPS},
        "storage_pct_by_group": {g: 100 * total(costs, "storage_bits", g) / s_ref for g in GROUPS},
        "layers": [asdict(c) | {"energy_pj": c.energy_pj} for c in costs],
    }


# Class counts of the data sets (hqflow.data.DATASETS), for costing a config whose model.num_classes
# is 0 ("the data set's") without loading the data: the head's size only.
CLASS_COUNTS = {"digits-dvs": 10, "dvs128-gesture": 11, "cifar10-dvs": 10, "n-caltech101": 101}
SPLIT_GROUPS = ("tokenizer", "attention", "mlp")  # the groups of the paper's split (the head is < 0.1 %)


SPIKE_OP_KINDS = {"adds": "additions", "ands": "ANDs", "updates": "membrane updates", "compares": "comparisons"}


def spike_ops(model: ModelConfig | Topology, time_steps: int) -> dict[str, dict[str, int]]:
    """Per op, the operations of one sample besides the weight layers' multiply-accumulates (Op.spike_ops:
    the attention's spike products or counts, the residual adds, the neurons, the pools), by kind. The same
    for every plan: reported beside the energy model, which counts weight layers only (the paper's rule)."""
    topology = model if isinstance(model, Topology) else topology_of(model)
    totals: dict[str, dict[str, int]] = {}
    for step in topology.steps:
        for kind, count in OPS[step.op].spike_ops(step, time_steps).items():
            totals.setdefault(step.op, {}).setdefault(kind, 0)
            totals[step.op][kind] += count
    return totals


def fp32_breakdown(model: ModelConfig, time_steps: int, table: EnergyTable, dataset: str | None = None) -> dict:
    """`summarize` of the fp32 model of `model` (T = `time_steps`) against itself under `table`.

    A model.num_classes of 0 takes the class count of `dataset` (CLASS_COUNTS; unknown: head of
    0 outputs). Adds "num_classes" and "energy_split" (% of the total energy: tokenizer, attention,
    mlp) to the summary."""
    if model.num_classes == 0 and dataset in CLASS_COUNTS:
        model = replace(model, num_classes=CLASS_COUNTS[dataset])
    fp32 = Candidate.parse("fp32")
    costs = [layer_cost(s, fp32, table) for s in layer_shapes(model, time_steps)]
    summary = summarize(costs, costs)
    summary["num_classes"] = model.num_classes
    summary["energy_split"] = {g: summary["energy_pct_by_group"][g] for g in SPLIT_GROUPS}
    summary["spike_ops"] = spike_ops(model, time_steps)
    return summary


def breakdown_lines(summary: dict, layers: bool = False) -> list[str]:
    """The `hqflow cost` text of an `fp32_breakdown`: per group (and per layer), energy and storage;
    the last line is `energy_split: <tokenizer>/<attention>/<mlp>` in percent, one decimal."""
    e_total, s_total = summary["energy_fp32_uj"], summary["storage_fp32_kib"]
    lines = []
    if layers:
        lines += [f"{'layer':<22}{'group':<11}{'MACs':>14}{'energy uJ':>12}{'energy %':>10}{'storage KiB':>13}"
                  f"{'storage %':>11}"]
        for c in summary["layers"]:
            e_uj, kib = c["energy_pj"] * 1e-6, c["storage_bits"] / 8192
            lines.append(f"{c['name']:<22}{c['group']:<11}{c['macs']:>14,}{e_uj:>12.3f}{100 * e_uj / e_total:>10.2f}"
                         f"{kib:>13.1f}{100 * kib / s_total:>11.2f}")
        lines.append("")
    lines.append(f"{'group':<11}{'energy uJ':>12}{'energy %':>10}{'storage KiB':>13}{'storage %':>11}")
    for g in GROUPS:
        e_pct, s_pct = summary["energy_pct_by_group"][g], summary["storage_pct_by_group"][g]
        lines.append(f"{g:<11}{e_total * e_pct / 100:>12.3f}{e_pct:>10.2f}{s_total * s_pct / 100:>13.1f}{s_pct:>11.2f}")
    lines.append(f"{'total':<11}{e_total:>12.3f}{100:>10.2f}{s_total:>13.1f}{100:>11.2f}")
    if summary.get("spike_ops"):
        lines += ["", "besides the weight layers' MACs, per sample (the same for every plan; not in the energy above):"]
        for op, counts in summary["spike_ops"].items():
            lines.append(f"  {op:<11}" + ", ".join(f"{counts[kind]:,} {words}" for kind, words in SPIKE_OP_KINDS.items()
                                                  if counts.get(kind)))
    lines.append("storage_split: " + "/".join(f"{summary['storage_pct_by_group'][g]:.1f}" for g in SPLIT_GROUPS))
    lines.append("energy_split: " + "/".join(f"{summary['energy_split'][g]:.1f}" for g in SPLIT_GROUPS))
    return lines
