"""sdsa: the Spike-driven Transformer's self-attention (SDSA, Yao et al. 2023): a mask of channels from k
and v, applied to q. No multiplication: ANDs, a count, a LIF.

    inputs q, k, v spikes [N, D] (0/1)  ->  spikes [N, D]
    count[d] = sum_n k[n, d] AND v[n, d]  in [0, N]   (`count`, per step)
    mask[d]  = its LIF (one channel of tables: bias_int 0, thr_int, sign [1]; fold_lif(1, 0, 1, theta, 0, T))
    y[n, d]  = q[n, d] AND mask[d]
"""

from __future__ import annotations

import numpy as np

from hqflow.ops import common
from hqflow.ops.base import Attr, NodeCheck, Op, SynOps


def count(k, v) -> np.ndarray:
    """The attention's count: spikes k, v [..., N, D] -> sum_n k[n, d] AND v[n, d], int64 [..., D] in [0, N]
    (an AND and a count: no multiplication)."""
    return (np.asarray(k, np.int64) & np.asarray(v, np.int64)).sum(axis=-2)


class Sdsa(Op):
    name = "sdsa"
    arity = 3
    attrs = (Attr("x_max", 1, 1, "the largest value of q, k and v: spikes"), *common.LIF_ATTRS)
    metadata = ("theta",)
    tensors = common.LIF_TENSORS
    output = "[tokens, channels]"
    spiking = True

    def validate(self, check: NodeCheck, sources) -> None:
        tokens, _ = common.check_qkv(check, sources)
        common.check_lif(check, 1, 0, tokens)

    def neurons(self, graph, node, q, k, v):
        """The mask's LIF on the count [T, B, D] (its spikes are the mask, not the node's output)."""
        return [common.lif_neurons(graph, node, count(k, v), -1, suffix=".mask")]

    def fired(self, graph, node, inputs, spikes):
        (mask,) = spikes  # [T, B, D]
        return inputs[0] & mask[:, :, None, :]

    def synops(self, graph, node, q, k, v):
        """hqflow's addition: the count's additions, one for each k[n, d] AND v[n, d] (N D dense a step); the
        mask's ANDs with q are no synaptic operations."""
        return [SynOps(f"{node.name}.count", int(count(k, v).sum()), q.size, True, neurobench=False)]

    def spike_ops(self, step, time_steps):
        """Per step: k AND v and its count over the tokens (N D ANDs, N D additions), the mask's LIF (D), q
        AND the mask (N D ANDs)."""
        tokens, dim = step.shape
        return {"adds": tokens * dim * time_steps, "ands": 2 * tokens * dim * time_steps, "updates": dim * time_steps}

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return 1

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"x_max": 1}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"v_bits": common.v_bits(node.shape[0], node.attrs, tensors, 0)}
