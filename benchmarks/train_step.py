"""Training step with spikingjelly's LIFNode against hqflow's fused LIF (search/lif.py), side by side.

Two copies of the same model (same seed, same weights): `old` runs spikingjelly 2.0's LIFNode
(its CPU path builds an autograd graph per time step), `new` runs search/lif.py's LIFNode (one
autograd Function over [T, ...], hand-written BPTT). Each step is the real one of `hqflow train`:
forward, label-smoothed cross-entropy, backward, AdamW step; and, unless --no-search, the search's
weight step (supernet, soft Gumbel sample, AdamW on the weights). The kinds run interleaved, one
step each in turn, so that the noise of a shared machine hits them alike; the figure is the median
of --repeats steps.

The fused LIF is bitwise equal to spikingjelly's, so the two fp32 copies stay identical step after
step: the benchmark checks that their losses agree exactly (`losses identical: yes`).

--ceiling adds a third fp32 copy whose LIF costs next to nothing (a spike by one comparison, the
gradient passed through unchanged; not a neuron): spikingjelly's step over that one bounds what any
LIF implementation can give on this machine, the rest of the step (convolutions, matrix products,
batch norms, the optimizer) being the same.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/train_step.py                  # tiny config, batch 32
    python benchmarks/train_step.py --config configs/paper.yaml --batch 2

The last line is the figure: `train_step_speedup: <old fp32 step / new fp32 step>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from spikingjelly.activation_based import neuron
from torch import nn

from hqflow.config import load_config
from hqflow.numerics import DEFAULT_CANDIDATES
from hqflow.search import supernet
from hqflow.search import lif
from hqflow.search.lif import LIFNode
from hqflow.search.model import Spikformer

FusedLIF = lif.MultiStepLIF


def build(cfg, fused: bool, search: bool):
    """The model (fused or spikingjelly LIF) and its optimizer, for the fp32 step or the search's weight step."""
    torch.manual_seed(0)
    model = Spikformer(cfg.model)
    if not fused:  # the same modules and state, spikingjelly's own multi-step forward
        for m in model.modules():
            if isinstance(m, LIFNode):
                m.__class__ = neuron.LIFNode
    if search:
        supernet.to_supernet(model, DEFAULT_CANDIDATES)
        supernet.set_sampling(model, tau=1.0, hard=False, learn_alpha=False)  # the weight step
        return model, torch.optim.AdamW(supernet.weight_parameters(model), lr=5e-4)
    return model, torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)


class FreeLIF(torch.autograd.Function):
    """The --ceiling copy's LIF: spikes = x >= V_th, dL/dx = dL/dspikes; no membrane."""

    @staticmethod
    def forward(ctx, x_seq, v_init, tau, v_threshold, alpha):
        return (x_seq >= v_threshold).to(x_seq.dtype), x_seq[0]

    @staticmethod
    def backward(ctx, g_spikes, g_v):
        return g_spikes, None, None, None, None


def step(model, opt, x, y, criterion) -> tuple[float, float]:
    """One training step: (seconds, loss)."""
    t0 = time.perf_counter()
    loss = criterion(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time-steps", type=int, help="overrides the config's T")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-search", action="store_true", help="time the fp32 step only")
    parser.add_argument("--ceiling", action="store_true", help="also time the fp32 step with a free LIF")
    args = parser.parse_args()

    cfg = load_config(args.config).replace("model", num_classes=10)  # random data: any class count
    t = args.time_steps or cfg.data.time_steps
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (args.batch, t, 2, cfg.model.img_size, cfg.model.img_size), generator=g).float()
    y = torch.randint(0, cfg.model.num_classes, (args.batch,), generator=g)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    kinds = [("fp32", False), ("fp32", True)] + ([] if args.no_search else [("search", False), ("search", True)])
    kinds += [("ceiling", True)] if args.ceiling else []
    runs = {k: build(cfg, fused=k[1], search=k[0] == "search") for k in kinds}
    losses = {k: [] for k in kinds}
    times = {k: [] for k in kinds}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for k in kinds:
            lif.MultiStepLIF = FreeLIF if k[0] == "ceiling" else FusedLIF
            seconds, loss = step(*runs[k], x, y, criterion)
            times[k] += [seconds] if repeat else []
            losses[k].append(loss)
    lif.MultiStepLIF = FusedLIF
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.config}: batch {args.batch}, T {t}, {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"median seconds per step (min - max)")
    for stage in dict.fromkeys(k[0] for k in kinds if k[0] != "ceiling"):
        old, new = median[(stage, False)], median[(stage, True)]
        spread = {f: f"{min(times[(stage, f)]):.3f} - {max(times[(stage, f)]):.3f}" for f in (False, True)}
        print(f"  {stage:7s} spikingjelly LIF {old:7.3f} s ({spread[False]})   fused LIF {new:7.3f} s "
              f"({spread[True]})   {old / new:.2f}x")
    if args.ceiling:
        free = median[("ceiling", True)]
        print(f"  ceiling a free LIF {free:7.3f} s: at most {median[('fp32', False)] / free:.2f}x for any LIF")
    same = losses[("fp32", False)] == losses[("fp32", True)]
    print(f"fp32 losses identical over {len(losses[('fp32', True)])} steps: {'yes' if same else 'NO'}")
    print(f"train_step_speedup: {median[('fp32', False)] / median[('fp32', True)]:.2f}")


if __name__ == "__main__":
    main()
