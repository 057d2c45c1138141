"""Per-sample time of the integer NumPy simulator against fp32 PyTorch inference of the same model.

For each configuration: a model with the default five formats spread over its layers (random
weights, random BN statistics; speed does not depend on training), lowered to a DeployGraph; both
run on the same random event frames, alternating, in one process. The simulator computes exact
integer products through float64 BLAS where numerics proves every partial sum below 2^53, and
does not skip zero spikes.

    python benchmarks/sim_speed.py                       # tiny (batch 32) and paper (batch 2)

The last line is the figure: `sim_speed_ratio_<config>: <sim / torch>` for the last config.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hqflow.config import load_config
from hqflow.export.lower import lower
from hqflow.numerics import DEFAULT_CANDIDATES
from hqflow.search import supernet
from hqflow.search.model import Spikformer
from hqflow.sim.run import run


def quantized_model(cfg):
    torch.manual_seed(0)
    model = Spikformer(cfg.model)
    names = list(supernet.weight_layers(model))
    # the five formats in turn, starting after fp32: an fp32 first layer fed by int16 event counts
    # would need a membrane wider than 64 bits at T 16 (the lowering refuses it)
    supernet.apply_formats(model, {n: DEFAULT_CANDIDATES[(i + 1) % 5] for i, n in enumerate(names)})
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.6)
                m.running_var.uniform_(0.05, 0.5)
    return model.eval()


def measure(config: str, batch: int, repeats: int) -> float:
    cfg = load_config(config)
    t = cfg.data.time_steps
    model = quantized_model(cfg)
    graph = lower(model, cfg)
    frames = np.random.default_rng(0).poisson(0.5, (batch, t, 2, cfg.model.img_size, cfg.model.img_size))
    frames = frames.astype(np.int16)
    x = torch.from_numpy(frames).float()
    fp32 = Spikformer(cfg.model).eval()  # fp32 inference of the same architecture
    times = {"sim": [], "torch": []}
    with torch.no_grad():
        run(graph, frames), fp32(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(graph, frames)
            times["sim"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fp32(x)
            times["torch"].append(time.perf_counter() - t0)
    sim, ref = (1000 * statistics.median(times[k]) / batch for k in ("sim", "torch"))
    print(f"{config}: batch {batch}, T {t}: simulator {sim:.2f} ms/sample, fp32 PyTorch {ref:.2f} ms/sample, "
          f"ratio {sim / ref:.2f}x")
    return sim / ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["configs/tiny.yaml", "configs/paper.yaml"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios = {c: measure(c, b, args.repeats) for c, b in zip(args.configs, args.batches)}
    for c, r in ratios.items():
        name = c.rsplit("/", 1)[-1].removesuffix(".yaml")
        print(f"sim_speed_ratio_{name}: {r:.3f}")


if __name__ == "__main__":
    main()
