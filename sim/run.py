"""Bit-accurate execution of a DeployGraph with NumPy alone: each node's op executes it (Op.execute,
hqflow.ops), every integer op from hqflow.numerics.

Node by node over whole sequences: a value is an integer array [T, B, *shape]; a LIF node
computes the accumulators of all T steps at once, then runs its membrane over the steps
(numerics.lif_run). Products use exact float BLAS where a bound proves them exact (numerics/fast.py).

    run(graph, frames [B, T, 2, H, W] ints) -> logits int64 [B, classes]   (and, on request, a trace
                                                                            {node: [T, B, *shape]})
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.ir import DeployGraph
from hqflow.ops import op_for


def check_frames(graph: DeployGraph, frames) -> np.ndarray:
    """frames as an integer array [B, T, 2, H, W] of the graph's T, size and input range; ValueError else."""
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
    return frames


def run(graph: DeployGraph, frames: np.ndarray, trace: bool = False, watch=None,
        visit=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits int64 [B, classes] of frames [B, T, 2, H, W]; with trace, every node's output [T, B, ...].
    `watch`: sees every LIF step (Op.run); `visit(op, node, inputs)`: called after each node ran."""
    frames = check_frames(graph, frames)
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        op = op_for(node)
        arguments = [values[name] for name in node.inputs] if node.inputs else [frames]  # the input takes frames
        values[node.name] = op.run(graph, node, arguments, watch)
        if visit is not None:
            visit(op, node, arguments)
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
