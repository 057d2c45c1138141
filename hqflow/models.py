"""The model families hqflow deploys, by model.family: each one's topology (every step of one inference,
the one description the torch model, the cost model, the lowering and the backends read)."""

from __future__ import annotations

from collections.abc import Callable

from hqflow.config import MODEL_FAMILIES, ModelConfig
from hqflow.topology import Topology, spikformer
from hqflow.topology_sdt import sdt

FAMILIES: dict[str, Callable[[ModelConfig], Topology]] = {"spikformer": spikformer, "sdt": sdt}
if tuple(FAMILIES) != MODEL_FAMILIES:  # the config validates model.family against MODEL_FAMILIES
    raise ValueError(f"hqflow.config.MODEL_FAMILIES {MODEL_FAMILIES} must name the families FAMILIES builds")


def topology_of(cfg: ModelConfig) -> Topology:
    """The topology of the model `cfg` describes, by its family."""
    return FAMILIES[cfg.family](cfg)
