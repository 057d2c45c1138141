"""The integer simulator against the float fake-quant PyTorch model, on the same frames.

Measured, not required to be exact: per-node spike agreement (the fraction of equal
spikes over every step, sample and neuron), prediction agreement, and both accuracies; the first
node, step and index where the spikes differ, with both values. The simulator and the model
differ only where a membrane lies within the LIF bias rounding (2^-17 accumulator units) or
float32 rounding of the threshold; a spike that differs then propagates to later nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from hqflow.errors import UserError
from hqflow.ir import DeployGraph
from hqflow.ops import op_for
from hqflow.search.model import Spikformer
from hqflow.sim.run import run


@dataclass
class Comparison:
    samples: int = 0
    agree_predictions: int = 0
    correct_sim: int = 0
    correct_torch: int = 0
    equal_spikes: dict[str, int] = field(default_factory=dict)
    total_spikes: dict[str, int] = field(default_factory=dict)
    first_difference: dict | None = None

    @property
    def prediction_agreement(self) -> float:
        return self.agree_predictions / self.samples

    def spike_agreement(self) -> dict[str, float]:
        return {n: self.equal_spikes[n] / self.total_spikes[n] for n in self.total_spikes}

    def summary(self) -> dict:
        return {"samples": self.samples, "prediction_agreement": self.prediction_agreement,
                "accuracy_sim": self.correct_sim / self.samples, "accuracy_torch": self.correct_torch / self.samples,
                "spike_agreement": self.spike_agreement(), "first_difference": self.first_difference}


@torch.no_grad()
def compare(graph: DeployGraph, model: Spikformer, batches, progress: bool = True) -> Comparison:
    """Run both on every batch (frames int [B, T, 2, H, W], labels [B]) and count agreements; each
    spiking node's spikes are compared with the output of the model's step of the same name."""
    model.eval()
    steps = {step.name for step in model.topology.steps}
    spiking = [n for n in graph.nodes if op_for(n).spiking]
    unknown = [n.name for n in spiking if n.name not in steps]
    if unknown:
        raise UserError(f"graph node {unknown[0]!r} ({len(unknown)} in all) is no spiking step of the model; "
                        "expected the graph exported from this run")
    result = Comparison()
    for frames, labels in tqdm(batches, desc="compare", leave=False, disable=None if progress else True):
        frames, labels = np.asarray(frames), np.asarray(labels)
        logits, trace = run(graph, frames, trace=True)
        captured: dict[str, torch.Tensor] = dict.fromkeys(n.name for n in spiking)
        ref = model.run(torch.from_numpy(frames).float(), record=captured).numpy()
        pred_sim, pred_torch = logits.argmax(1), ref.argmax(1)
        result.samples += len(labels)
        result.agree_predictions += int((pred_sim == pred_torch).sum())
        result.correct_sim += int((pred_sim == labels).sum())
        result.correct_torch += int((pred_torch == labels).sum())
        for node in spiking:
            sim, ref_spikes = trace[node.name], captured[node.name].numpy().astype(np.int64)
            equal = sim == ref_spikes
            result.equal_spikes[node.name] = result.equal_spikes.get(node.name, 0) + int(equal.sum())
            result.total_spikes[node.name] = result.total_spikes.get(node.name, 0) + equal.size
            if result.first_difference is None and not equal.all():
                index = tuple(int(i) for i in np.argwhere(~equal)[0])
                result.first_difference = {"node": node.name, "step": index[0],
                                           "sample": result.samples - len(labels) + index[1],
                                           "index": index[2:], "sim": int(sim[index]),
                                           "torch": int(ref_spikes[index])}
    return result
