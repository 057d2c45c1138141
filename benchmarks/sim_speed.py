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
from hqflow.search import supernet
from hqflow.search.model import Spikformer
from hqflow.sim.run import run


def measure(config: str, batch: int, repeats: int) -> float:
    cfg = load_config(config).replace("model", num_classes=10)  # random weights: any class count
    t = cfg.data.time_steps
    model = supernet.random_quantized_model(cfg.model)
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
