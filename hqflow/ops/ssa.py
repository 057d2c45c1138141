"""ssa: spiking self-attention and its LIF (numerics.ssa_int, then the attention LIF).

    inputs q, k, v spikes [N, D] (0/1)  ->  spikes [N, D]
    y = q_h (k_h^T v_h) per head h of D / num_heads channels, 0 <= y <= ssa_bound(N, D / num_heads);
    the LIF's one channel of tables (bias_int, thr_int, sign [1]) holds attn_scale and the threshold.
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.ops import common
from hqflow.ops.base import Attr, NodeCheck, Op, SynOps


def _bound(node) -> int:
    tokens, dim = node.shape
    return numerics.ssa_bound(tokens, dim // int(node.attrs["num_heads"]))


class Ssa(Op):
    name = "ssa"
    arity = 3
    attrs = (Attr("num_heads", 1, None, "attention heads, dividing the channels"),
             Attr("x_max", 1, 1, "the largest value of q, k and v: spikes"),
             Attr("acc_bits", 1, common.MAX_WIDTH, "the attention product's width in bits"),
             *common.LIF_ATTRS)
    metadata = ("attn_scale", "theta")
    tensors = common.LIF_TENSORS
    output = "[tokens, channels]"
    spiking = True

    def validate(self, check: NodeCheck, sources) -> None:
        tokens, dim = common.check_qkv(check, sources)
        heads = check.attr(self.attrs[0])
        if heads > dim or dim % heads:
            check.fail(f"attrs.num_heads {heads} does not divide the {dim} channels")
        bound = numerics.ssa_bound(tokens, dim // heads)
        if bound > numerics.FLOAT64_EXACT:
            check.fail(f"the attention product reaches {bound}, beyond 2^53 (the simulator's exact range)")
        check.width("acc_bits", 0, bound, "the attention product range")
        common.check_lif(check, 1, 0, bound)

    def neurons(self, graph, node, q, k, v):
        return [common.lif_neurons(graph, node, numerics.ssa_int(q, k, v, int(node.attrs["num_heads"])), -1)]

    def synops(self, graph, node, q, k, v):
        """hqflow's addition (NeuroBench sees no layer here): per head and step, k^T v (an addition for every
        pair of spikes k[n, i], v[n, j]: N hd^2 dense), then q (k^T v) (q[n, i] adds the row kv[i, :]
        where it is non-zero: N hd^2 dense); both accumulate."""
        steps, batch, tokens, dim = q.shape
        heads = int(node.attrs["num_heads"])
        qh, kh, vh = ((s != 0).reshape(steps, batch, tokens, heads, dim // heads).astype(np.float64)
                      for s in (q, k, v))
        kv = np.einsum("tbnhi,tbnhj->tbhij", kh, vh)  # exact: counts below 2^53
        dense = steps * batch * tokens * dim * (dim // heads)
        return [SynOps(f"{node.name}.kv", int(kv.sum()), dense, True, neurobench=False),
                SynOps(f"{node.name}.qkv", int(np.einsum("tbnhi,tbhij->", qh, (kv != 0).astype(np.float64))), dense,
                       True, neurobench=False)]

    def spike_ops(self, step, time_steps):
        """Per head (hd = D / heads channels) and step: k^T v, N hd hd AND-gated additions, and q (k^T v), N hd hd
        more: 2 N D hd additions a step; the LIF of every output."""
        tokens, dim = step.shape
        head_dim = dim // step.num_heads
        return {"adds": 2 * tokens * dim * head_dim * time_steps, "updates": tokens * dim * time_steps}

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return 1

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"x_max": 1}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        bound = _bound(node)
        return {"acc_bits": numerics.bits_for(0, bound), "v_bits": common.v_bits(bound, node.attrs, tensors, 0)}
