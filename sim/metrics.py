"""NeuroBench's metrics (NeuroBench 2.3, Yik et al., Nature Communications 2025) of the integer model: the
deployed DeployGraph run by the NumPy simulator on data, every op counted by its own class (Op.neurons,
Op.synops), the attention included.

By NeuroBench's definitions (its key names):
    footprint             bytes of the model's parameters. NeuroBench multiplies each torch tensor by its
                          element size (4 bytes a fake-quantized fp32 weight); here each deployed table at
                          its real width: a weight at its format's bits (uniform-b, po2-b: b; fp32: 32),
                          every other table (LIF bias and threshold, sign, requantization, head bias) at the
                          narrowest two's complement width of its values.
    connection_sparsity   zero weights / weights of the conv and linear layers (the head's included).
    activation_sparsity   zero outputs / outputs of every spiking neuron, over all steps and samples.
    synaptic_operations   per sample: Dense (every product of a layer, zero inputs and weights included;
                          a convolution's zero padding adds none), Effective_MACs and Effective_ACs (the
                          products whose input and weight are both non-zero: ACs where the layer's input
                          of the batch is in {-1, 0, 1}, MACs elsewhere). NeuroBench counts conv and
                          linear layers only; `hqflow.synaptic_operations_all` adds the attention's spike
                          products (Op.synops, neurobench False).
    membrane_updates      per sample: every neuron at the first step, then each neuron whose membrane
                          changed from one step to the next (NeuroBench's pre-fire / post-fire rule).

    metrics(graph, batches) -> dict  (JSON: "neurobench", "hqflow" with its additions, "notes")
    lines(result), markdown(result)     the command's text, the report's section
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from hqflow import numerics
from hqflow.ir import DeployGraph
from hqflow.ops.common import WEIGHT_FIELDS
from hqflow.sim.run import run

NOTES = (
    "footprint: the deployed integers at their real widths (NeuroBench's Footprint counts torch tensors at their "
    "element size, 4 bytes a fake-quantized fp32 weight; hqflow.footprint_fp32 is that rule for the weights)",
    "synaptic_operations: the conv and linear layers, as NeuroBench counts them; hqflow.synaptic_operations_all "
    "adds the attention's spike products, which NeuroBench does not see",
    "membrane_updates, activation_sparsity: every integer LIF, the attention's included",
)


def static_metrics(graph: DeployGraph) -> dict:
    """Footprint (bytes at real widths, and by node), parameters, connection sparsity; no data."""
    bits_by_node: dict[str, int] = {}
    weights = zeros = 0
    for node in graph.nodes:
        tensors = graph.node_tensors(node.name)
        if not tensors:
            continue
        fmt = numerics.Candidate.parse(node.attrs["format"]) if "format" in node.attrs else None
        codes = set(WEIGHT_FIELDS[fmt.scheme]) if fmt else set()
        bits = 0
        if fmt:
            w_eff = graph.w_eff(node)
            weights, zeros = weights + w_eff.size, zeros + int((w_eff == 0).sum())
            bits += w_eff.size * fmt.bits
        for field, array in tensors.items():
            if field not in codes and array.size:
                bits += array.size * numerics.bits_for(int(array.min()), int(array.max()))
        bits_by_node[node.name] = bits
    return {"footprint": sum(bits_by_node.values()) / 8, "parameter_count": weights,
            "connection_sparsity": zeros / weights if weights else 0.0, "footprint_fp32": 4 * weights,
            "footprint_by_layer": {name: bits / 8 for name, bits in bits_by_node.items()}}


class Workload:
    """The workload metrics accumulated over batches (NeuroBench's AccumulatedMetric: totals / samples)."""

    def __init__(self, graph: DeployGraph):
        self.graph = graph
        self.samples = self.correct = 0
        self.spikes, self.outputs, self.updates = defaultdict(int), defaultdict(int), defaultdict(int)
        self.synops: dict[str, dict] = {}
        self.layers: dict[str, None] = {}  # every counted layer's name, in graph order

    def add(self, frames: np.ndarray, labels: np.ndarray | None = None) -> None:
        """One batch: frames [B, T, C, H, W] (integer counts), labels [B] (optional: the accuracy), run by the
        simulator (sim.run), which shows every LIF step and every node's inputs."""
        logits, _ = run(self.graph, frames, watch=self._watch, visit=self._visit)
        self.samples += len(logits)
        if labels is not None:
            self.correct += int((numerics.argmax_first(logits) == np.asarray(labels)).sum())

    def _watch(self, name: str, t: int, before: np.ndarray, after: np.ndarray, spikes: np.ndarray) -> None:
        """One step of the LIF group `name`: its spikes and membrane updates."""
        self.layers.setdefault(name)
        self.updates[name] += after.size if t == 0 else int(np.count_nonzero(after != before))
        self.spikes[name] += int(np.count_nonzero(spikes))
        self.outputs[name] += spikes.size

    def _visit(self, op, node, inputs) -> None:
        """A node that ran: its synaptic operations on these inputs."""
        for ops in op.synops(self.graph, node, *inputs):
            entry = self.synops.setdefault(ops.name, {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0,
                                                      "neurobench": ops.neurobench})
            entry["Effective_ACs" if ops.accumulate else "Effective_MACs"] += ops.effective
            entry["Dense"] += ops.dense
            self.layers.setdefault(ops.name)

    def result(self) -> dict:
        """The metrics per sample so far (NeuroBench's keys; hqflow's additions and the layers under "hqflow")."""
        n = max(self.samples, 1)
        outputs, spikes = sum(self.outputs.values()), sum(self.spikes.values())

        def per_sample(entries: Iterable[dict]) -> dict:
            entries = list(entries)
            return {key: sum(e[key] for e in entries) / n for key in ("Effective_MACs", "Effective_ACs", "Dense")}

        workload = {"activation_sparsity": 1 - spikes / outputs if outputs else 0.0,
                    "synaptic_operations": per_sample(e for e in self.synops.values() if e["neurobench"]),
                    "membrane_updates": sum(self.updates.values()) / n}
        if self.correct or self.samples:
            workload["classification_accuracy"] = self.correct / n
        additions = {"samples": self.samples, "layers": list(self.layers),
                     "synaptic_operations_all": per_sample(self.synops.values()),
                     "synaptic_operations_by_layer": {name: {**per_sample([e]), "neurobench": e["neurobench"]}
                                                      for name, e in self.synops.items()},
                     "activation_sparsity_by_layer": {name: 1 - self.spikes[name] / size
                                                      for name, size in self.outputs.items()},
                     "membrane_updates_by_layer": {name: count / n for name, count in self.updates.items()}}
        return {"workload": workload, "additions": additions}


def metrics(graph: DeployGraph, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Every metric of the integer model `graph` over (frames, labels) batches, as JSON-ready dict."""
    static = static_metrics(graph)
    workload = Workload(graph)
    for frames, labels in batches:
        workload.add(frames, labels)
    done = workload.result()
    neurobench = {"footprint": static["footprint"], "connection_sparsity": static["connection_sparsity"],
                  **done["workload"]}
    hqflow = {key: static[key] for key in ("parameter_count", "footprint_fp32", "footprint_by_layer")}
    return {"neurobench": neurobench, "hqflow": {**hqflow, **done["additions"]}, "notes": list(NOTES)}


def lines(result: dict) -> list[str]:
    """The text of `hqflow metrics`: NeuroBench's figures, hqflow's totals, the per-layer table."""
    nb, hq = result["neurobench"], result["hqflow"]
    ops, every = nb["synaptic_operations"], hq["synaptic_operations_all"]
    out = [f"{hq['samples']} samples" + (f", accuracy {nb['classification_accuracy']:.2%}"
                                         if "classification_accuracy" in nb else ""),
           f"footprint            {nb['footprint']:,.0f} bytes at the deployed widths ({hq['footprint_fp32']:,} "
           f"as fp32 weights; {hq['parameter_count']:,} weights)",
           f"connection_sparsity  {nb['connection_sparsity']:.4f}",
           f"activation_sparsity  {nb['activation_sparsity']:.4f}",
           f"synaptic_operations  Dense {ops['Dense']:,.0f}, Effective_MACs {ops['Effective_MACs']:,.0f}, "
           f"Effective_ACs {ops['Effective_ACs']:,.0f} (conv and linear layers: NeuroBench's)",
           f"  with the attention Dense {every['Dense']:,.0f}, Effective_MACs {every['Effective_MACs']:,.0f}, "
           f"Effective_ACs {every['Effective_ACs']:,.0f} (hqflow's addition)",
           f"membrane_updates     {nb['membrane_updates']:,.0f}", "",
           f"{'layer':<26}{'Dense':>14}{'Eff. MACs':>14}{'Eff. ACs':>14}{'act. sparsity':>15}{'updates':>12}"]
    for name in hq["layers"]:
        s = hq["synaptic_operations_by_layer"].get(name)
        row = (f"{s['Dense']:>14,.0f}{s['Effective_MACs']:>14,.0f}{s['Effective_ACs']:>14,.0f}" if s
               else f"{'':>42}")
        sparsity = hq["activation_sparsity_by_layer"].get(name)
        updates = hq["membrane_updates_by_layer"].get(name)
        out.append(f"{name + ('' if s is None or s['neurobench'] else ' *'):<26}{row}"
                   + (f"{sparsity:>15.4f}{updates:>12,.0f}" if sparsity is not None else ""))
    out += ["* hqflow's addition: not a layer NeuroBench counts", *(f"note: {note}" for note in result["notes"])]
    return out


def markdown(result: dict) -> str:
    """The report's section: NeuroBench's figures and hqflow's additions, then the layers."""
    nb, hq = result["neurobench"], result["hqflow"]
    ops, every = nb["synaptic_operations"], hq["synaptic_operations_all"]
    out = ["## NeuroBench metrics of the integer model", "",
           f"`hqflow metrics` on {hq['samples']} {hq.get('split', 'test')} samples (NeuroBench 2.3's definitions; "
           "per sample).", "", "| metric | value | |", "|---|---:|---|",
           f"| footprint (bytes) | {nb['footprint']:,.0f} | at the deployed widths ({hq['footprint_fp32']:,} as fp32 "
           "weights) |",
           f"| connection sparsity | {nb['connection_sparsity']:.4f} | |",
           f"| activation sparsity | {nb['activation_sparsity']:.4f} | every LIF |"]
    for key in ("Dense", "Effective_MACs", "Effective_ACs"):
        out.append(f"| synaptic operations, {key} | {ops[key]:,.0f} | {every[key]:,.0f} with the attention |")
    out += [f"| membrane updates | {nb['membrane_updates']:,.0f} | |", "",
            "| layer | Dense | Effective MACs | Effective ACs | activation sparsity | membrane updates |",
            "|---|---:|---:|---:|---:|---:|"]
    for name in hq["layers"]:
        s = hq["synaptic_operations_by_layer"].get(name)
        cells = [f"{s[k]:,.0f}" for k in ("Dense", "Effective_MACs", "Effective_ACs")] if s else ["", "", ""]
        sparsity, updates = hq["activation_sparsity_by_layer"].get(name), hq["membrane_updates_by_layer"].get(name)
        cells += [f"{sparsity:.4f}", f"{updates:,.0f}"] if sparsity is not None else ["", ""]
        label = name if s is None or s["neurobench"] else f"{name} (hqflow's addition)"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out + [""] + [f"- {note}" for note in result["notes"]] + [""])
