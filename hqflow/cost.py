"""Hardware cost model (45 nm): energy and weight storage of every conv / linear layer.

Per layer and weight format (a `Candidate`), for one inference of one sample over T steps:

    MACs = T * positions * c_in * c_out * k^2        (positions: output pixels or tokens, 1 for the head)
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
updates are the same for every plan and are left out of both sides of the ratio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hqflow.config import ModelConfig
from hqflow.errors import UserError
from hqflow.io import read_yaml
from hqflow.numerics import Candidate
from hqflow.topology import GROUPS, Topology, spikformer

DEFAULT_TABLE = Path(__file__).with_name("tables") / "energy_45nm.yaml"


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

    def mult(self, c: Candidate) -> float:
        if c.scheme == "fp32":
            return self.fp32_mult
        if c.scheme == "uniform":
            return self.int32_mult * (c.bits / 32) ** 2
        return self.int32_add * c.bits / 32  # po2: a shift

    def add(self, c: Candidate) -> float:
        return self.fp32_add if c.scheme == "fp32" else self.int32_add


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """Read an energy table (YAML with the EnergyTable keys, values in pJ)."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    keys = [f.name for f in fields(EnergyTable)]
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
    return EnergyTable(**{k: float(raw[k]) for k in keys})


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
    topology = model if isinstance(model, Topology) else spikformer(model)
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
    return LayerCost(shape.name, shape.group, c.name, shape.macs, storage,
                     ops * (table.mult(c) + table.add(c)), storage * table.dram_per_bit)


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
