"""QuantPlan: the per-layer weight format the search chose (`plan.json`, search -> export).

    {
      "schema_version": 1,
      "hw_lambda": 0.5,
      "candidates": ["fp32", "po2-2", "po2z-4", "uniform-2", "uniform-4"],
      "layers": {
        "sps.conv0": {"format": "po2-2", "scheme": "po2", "bits": 2, "zero_level": false,
                      "qkeras": "quantized_po2(2)",
                      "probabilities": {"fp32": 0.01, "po2-2": 0.93, ...},
                      "macs": 165888, "storage_bits": 288, "energy_pj": 23456.7},
        ...
      },
      "summary": {"avg_weight_bits": 2.4, "energy_pct": 9.1, ...}
    }

Keys are the model's stable layer names. `format` decides; `scheme`, `bits` and `zero_level`
restate it for readers and must agree with it; everything else is information. A person may
edit a plan by hand: `load_plan` checks every field and `check_layers` that the plan covers
exactly the model's layers, each error naming the file, the layer, the key and the value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hqflow.errors import UserError
from hqflow.io import atomic_text, read_json
from hqflow.numerics import Candidate

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LayerPlan:
    name: str
    candidate: Candidate
    probabilities: dict[str, float] = field(default_factory=dict)
    macs: int = 0
    storage_bits: int = 0
    energy_pj: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"format": c.name, "scheme": c.scheme, "bits": c.bits, "zero_level": c.zero_level,
                "qkeras": c.qkeras(), "probabilities": self.probabilities,
                "macs": self.macs, "storage_bits": self.storage_bits, "energy_pj": self.energy_pj}


@dataclass(frozen=True)
class QuantPlan:
    layers: tuple[LayerPlan, ...]
    candidates: tuple[Candidate, ...] = ()
    hw_lambda: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def formats(self) -> dict[str, Candidate]:
        return {lp.name: lp.candidate for lp in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "hw_lambda": self.hw_lambda,
                "candidates": [c.name for c in self.candidates],
                "layers": {lp.name: lp.to_dict() for lp in self.layers}, "summary": self.summary}

    def save(self, path: str | Path) -> None:
        atomic_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    def check_layers(self, names: list[str], where: str = "plan") -> None:
        """The plan must name exactly the model's layers `names`."""
        have = [lp.name for lp in self.layers]
        unknown = [n for n in have if n not in names]
        missing = [n for n in names if n not in have]
        if unknown:
            raise UserError(f"{where}: layer(s) {', '.join(unknown)} not in the model "
                            f"(its layers: {', '.join(names)})")
        if missing:
            raise UserError(f"{where}: no format for layer(s) {', '.join(missing)}")


def uniform_plan(names: list[str], candidate: Candidate) -> QuantPlan:
    """Every layer in the same format (a baseline, or a starting point to edit)."""
    return QuantPlan(tuple(LayerPlan(n, candidate) for n in names), (candidate,))


def _number(value: Any, at: str, integer: bool = False, upper: float | None = None) -> float:
    """A finite, non-negative JSON number (an integer if `integer`, at most `upper` if given)."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok or (upper is not None and value > upper):
        what = "a non-negative integer" if integer else "a finite number >= 0" + ("" if upper is None else f" and <= {upper}")
        raise UserError(f"{at}: expected {what}, got {value!r}")
    return value


def plan_from_dict(raw: Any, where: str) -> QuantPlan:
    """Validate a parsed plan: every error names `where`, the layer and the key."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a plan is a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{where}: schema_version {version!r}; this hqflow reads version {SCHEMA_VERSION}")
    layers = raw.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise UserError(f"{where}: 'layers' must be a non-empty object of layer name -> format")
    plans = []
    for name, entry in layers.items():
        at = f"{where}: layers.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("format"), str):
            raise UserError(f"{at}: needs a 'format' string (e.g. \"uniform-4\")")
        try:
            c = Candidate.parse(entry["format"])
        except UserError as err:
            raise UserError(f"{at}.format: {err}") from None
        for key, value in (("scheme", c.scheme), ("bits", c.bits), ("zero_level", c.zero_level)):
            if key in entry and entry[key] != value:
                raise UserError(f"{at}.{key}: {entry[key]!r} contradicts format {c.name!r} ({key} {value!r})")
        probs = entry.get("probabilities", {})
        if not isinstance(probs, dict):
            raise UserError(f"{at}.probabilities: expected an object of format -> probability, got {probs!r}")
        probs = {k: float(_number(v, f"{at}.probabilities.{k}", upper=1.0)) for k, v in probs.items()}
        plans.append(LayerPlan(name, c, probs, int(_number(entry.get("macs", 0), f"{at}.macs", integer=True)),
                               int(_number(entry.get("storage_bits", 0), f"{at}.storage_bits", integer=True)),
                               float(_number(entry.get("energy_pj", 0.0), f"{at}.energy_pj"))))
    names = raw.get("candidates", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}: candidates: expected a list of format names, got {names!r}")
    try:
        candidates = tuple(Candidate.parse(n) for n in names)
    except UserError as err:
        raise UserError(f"{where}: candidates: {err}") from None
    lam = raw.get("hw_lambda")
    if lam is not None:
        lam = float(_number(lam, f"{where}: hw_lambda"))
    summary = raw.get("summary", {})
    if not isinstance(summary, dict):
        raise UserError(f"{where}: summary: expected an object, got {summary!r}")
    return QuantPlan(tuple(plans), candidates, lam, summary)


def load_plan(path: str | Path) -> QuantPlan:
    """Read and validate a plan.json (see the module docstring for its fields)."""
    return plan_from_dict(read_json(path, "a plan (plan.json)"), str(path))
