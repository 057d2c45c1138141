"""Bit-accurate execution of a DeployGraph with NumPy alone (every integer op from hqflow.numerics).

Node by node over whole sequences: a value is an integer array [T, B, *shape]; a LIF node
computes the accumulators of all T steps at once, then runs its membrane over the steps
(numerics.lif_run). Products use exact float BLAS where a bound proves them exact (sim/fast.py).

    run(graph, frames [B, T, 2, H, W] ints) -> logits int64 [B, classes]   (and, on request, a trace
                                                                            {node: [T, B, *shape]})
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.ir import DeployGraph, Node
from hqflow.ops import check_backend
from hqflow.ops.common import lif_consts
from hqflow.sim import fast


def _conv_lif(graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray:
    """One step's convolution at a time (a generator into lif_run): the working arrays stay one
    step large, which the allocator reuses, instead of T times larger."""
    w_eff = graph.w_eff(node)
    acc_seq = (fast.conv2d_acc(x_t, w_eff, padding=int(node.attrs["padding"])) for x_t in x)
    return numerics.lif_run(acc_seq, lif_consts(node.attrs, graph.node_tensors(node.name)), channel_axis=1)


def _linear_lif(graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray:
    acc = fast.linear_acc(x, graph.w_eff(node))
    return numerics.lif_run(acc, lif_consts(node.attrs, graph.node_tensors(node.name)), channel_axis=-1)


def _ssa(graph: DeployGraph, node: Node, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    y = numerics.ssa_int(q, k, v, int(node.attrs["num_heads"]))
    return numerics.lif_run(y, lif_consts(node.attrs, graph.node_tensors(node.name)), channel_axis=-1)


def _head(graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray:
    acc_sum = fast.linear_acc(x.sum(axis=(0, 2)), graph.w_eff(node))  # sum over T and tokens first
    return numerics.head_logits(acc_sum, graph.tensor(node.name, "bias_int"), int(node.attrs["bias_frac_bits"]))


def _input(graph: DeployGraph, node: Node, frames: np.ndarray) -> np.ndarray:
    """Frames [B, T, C, H, W] -> int64 [T, B, C, H, W]."""
    return frames.swapaxes(0, 1).astype(np.int64)


def _maxpool(graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray:
    pooled = numerics.maxpool_or(x.reshape(-1, *x.shape[2:]), int(node.attrs["kernel_size"]),
                                 int(node.attrs["stride"]), int(node.attrs["padding"]))
    return pooled.reshape(*x.shape[:2], *pooled.shape[1:])


def _add(graph: DeployGraph, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) + b


def _tokens(graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray:
    """[T, B, C, H, W] -> [T, B, H * W, C]."""
    return x.reshape(*x.shape[:3], -1).swapaxes(2, 3)


# One implementation per op (hqflow.ops.OPS): (graph, node, *input values) -> the node's value.
EXECUTORS = {"input": _input, "conv_lif": _conv_lif, "linear_lif": _linear_lif, "maxpool": _maxpool, "add": _add,
             "tokens": _tokens, "ssa": _ssa, "head": _head}
check_backend(EXECUTORS, "the NumPy simulator (hqflow.sim.run.EXECUTORS)")


def run(graph: DeployGraph, frames: np.ndarray, trace: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits int64 [B, classes] of frames [B, T, 2, H, W]; with trace, every node's output [T, B, ...]."""
    frames = np.asarray(frames)
    source = graph.nodes[0]
    expected = (graph.time_steps, *source.shape)
    if frames.ndim != 5 or frames.shape[1:] != expected:
        raise ValueError(f"frames: expected [B, {', '.join(map(str, expected))}] (the graph's T and input shape), "
                         f"got {list(frames.shape)}")
    if frames.dtype.kind not in "iu":
        raise ValueError(f"frames: expected integer event counts, got dtype {frames.dtype}")
    value_max = int(source.value_max)
    if frames.size and (int(frames.min()) < 0 or int(frames.max()) > value_max):
        raise ValueError(f"frames: values in [{int(frames.min())}, {int(frames.max())}], but the graph's widths "
                         f"hold inputs in [0, {value_max}] (the input node's value_max)")
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        arguments = [values[name] for name in node.inputs] if node.inputs else [frames]  # the input takes frames
        values[node.name] = EXECUTORS[node.op](graph, node, *arguments)
    logits = values[graph.nodes[-1].name]
    return logits, (values if trace else {})


def batches(frames_dataset, batch_size: int, limit: int | None = None):
    """(frames [B, T, 2, H, W], labels [B]) batches of a hqflow.data FrameDataset, in order."""
    n = len(frames_dataset) if limit is None else min(limit, len(frames_dataset))
    for start in range(0, n, batch_size):
        items = [frames_dataset[i] for i in range(start, min(n, start + batch_size))]
        yield np.stack([x for x, _ in items]), np.array([y for _, y in items])


def evaluate(graph: DeployGraph, batch_iter) -> tuple[int, int, float]:
    """(correct, samples, seconds) of the integer model over (frames, labels) batches."""
    import time

    correct = samples = 0
    t0 = time.perf_counter()
    for frames, labels in batch_iter:
        logits, _ = run(graph, frames)
        correct += int((numerics.argmax_first(logits) == labels).sum())
        samples += len(labels)
    return correct, samples, time.perf_counter() - t0
