"""Cost of a supernet search step against a fixed-plan QAT step, on the same model and batch.

Three kinds of training step (forward, backward, optimiser update), timed side by side,
interleaved, on one random batch:
    qat       every layer fixed to one format (uniform-4)
    supernet  the search's weight step: every layer a Gumbel mixture of the five candidate
              formats, one conv per layer on the mixed weight sum_k g_k Q_k(w) (hqflow's design)
    alpha     the search's alpha step: hard (one-hot) sample, gradient to the alphas only
    naive     the weight step computed as sum_k g_k layer(x; Q_k(w)): one conv per candidate
and, with --peak-memory, the peak resident memory of one full search step (alpha step + weight
step) at batch 1 and the configuration's own T, in a fresh process.

    python benchmarks/search_step.py                                      # tiny config
    python benchmarks/search_step.py --config configs/paper.yaml --batch 2 --time-steps 4

The last line is the figure: `search_step_ratio: <supernet / qat>`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from hqflow.config import load_config
from hqflow.numerics import DEFAULT_CANDIDATES, Candidate
from hqflow.search import supernet
from hqflow.search.model import Spikformer


def naive_forward(self, x):
    """sum_k g_k * layer(x; Q_k(w)): one convolution per candidate (for comparison only)."""
    g = F.gumbel_softmax(self.alpha, tau=self.tau, hard=self.hard)
    outs = []
    for k, q in enumerate(self.quantizers):
        w = q(self.weight)
        y = self._conv_forward(x, w, self.bias) if isinstance(self, torch.nn.Conv2d) else F.linear(x, w, self.bias)
        outs.append(g[k] * y)
    return sum(outs)


def build(kind: str, cfg):
    torch.manual_seed(0)
    model = Spikformer(cfg.model)
    if kind == "qat":
        supernet.apply_formats(model, {n: Candidate("uniform", 4) for n in supernet.weight_layers(model)})
        return model, torch.optim.AdamW(model.parameters(), lr=1e-4)
    supernet.to_supernet(model, DEFAULT_CANDIDATES)
    if kind == "alpha":  # the search's step 1: hard sample, only the alphas are updated
        supernet.set_sampling(model, tau=1.0, hard=True, learn_alpha=True)
        return model, torch.optim.Adam(supernet.alpha_parameters(model), lr=1e-2)
    supernet.set_sampling(model, tau=1.0, hard=False, learn_alpha=False)  # step 2: the weight step
    if kind == "naive":
        for m in supernet.searchable(model).values():
            m.forward = naive_forward.__get__(m)
    return model, torch.optim.AdamW(supernet.weight_parameters(model), lr=1e-4)


def step(model, opt, x, y) -> float:
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def peak_memory_mib(config: str, batch: int, time_steps: int | None) -> float:
    """Peak RSS (MiB) of a fresh process that runs one alpha step and one weight step.

    Read from /proc/self/status (VmHWM, the high-water mark of this process image): getrusage's
    ru_maxrss survives fork and exec and would include the parent's memory.
    """
    code = f"""
import torch, torch.nn.functional as F
from hqflow.config import load_config
from hqflow.numerics import DEFAULT_CANDIDATES
from hqflow.search import supernet
from hqflow.search.model import Spikformer
cfg = load_config({config!r}).replace("model", num_classes=10)
T = {time_steps!r} or cfg.data.time_steps
model = supernet.to_supernet(Spikformer(cfg.model), DEFAULT_CANDIDATES)
x = torch.rand({batch}, T, 2, cfg.model.img_size, cfg.model.img_size)
y = torch.zeros({batch}, dtype=torch.long)
for hard in (True, False):
    supernet.set_sampling(model, 1.0, hard)
    F.cross_entropy(model(x), y).backward()
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--time-steps", type=int, help="overrides the config's T")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-naive", action="store_true", help="skip the one-conv-per-candidate baseline")
    parser.add_argument("--peak-memory", action="store_true", help="also measure one search step's peak RSS")
    args = parser.parse_args()

    cfg = load_config(args.config).replace("model", num_classes=10)  # random data: any class count
    t = args.time_steps or cfg.data.time_steps
    x = torch.rand(args.batch, t, 2, cfg.model.img_size, cfg.model.img_size) * 2
    y = torch.randint(0, cfg.model.num_classes, (args.batch,))
    kinds = ["qat", "supernet", "alpha"] + ([] if args.no_naive else ["naive"])
    runs = {k: build(k, cfg) for k in kinds}
    for k in kinds:  # warm-up
        step(*runs[k], x, y)
    times = {k: [] for k in kinds}
    for _ in range(args.repeats):  # interleaved, so that machine noise hits all kinds alike
        for k in kinds:
            times[k].append(step(*runs[k], x, y))
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.config}: batch {args.batch}, T {t}, {args.repeats} interleaved repeats, median seconds per step")
    for k in kinds:
        print(f"  {k:9s} {median[k]:8.3f} s   {median[k] / median['qat']:.2f}x qat")
    if args.peak_memory:  # the configuration's own T, batch 1
        print(f"peak RSS of one search step (alpha + weight step), batch 1, T {cfg.data.time_steps}: "
              f"{peak_memory_mib(args.config, 1, None):.0f} MiB")
    print(f"search_step_ratio: {median['supernet'] / median['qat']:.3f}")


if __name__ == "__main__":
    main()
