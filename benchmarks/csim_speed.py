"""Per-sample time of the g++ C simulation against the NumPy simulator, on the same export.

Both run the testbench's samples: the simulator batched (batch 64, as `hqflow sim`), the C
simulation one sample at a time through the top function (the testbench's own timer, samples
without trace; file reading and comparison excluded). Alternating, --repeats times, in one run.

    python benchmarks/csim_speed.py --export out/demo/l0.5     # an `hqflow export --target hls` folder
    python benchmarks/csim_speed.py                            # a random-weight tiny model, 64 samples
    python benchmarks/csim_speed.py --config configs/paper.yaml --samples 4

The last line is the figure: `csim_speed_ratio: <csim / sim>` (median over the repeats).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from hqflow.export import csim
from hqflow.ir import load_graph
from hqflow.sim.run import run


def random_export(config: Path, folder: Path, samples: int) -> Path:
    """A random-weight model with every default format, exported with random event frames."""
    import torch

    from hqflow.config import load_config
    from hqflow.export.hls import write_project
    from hqflow.export.lower import lower
    from hqflow.search.supernet import random_quantized_model

    cfg = load_config(config).replace("model", num_classes=10)  # random weights: any class count
    with torch.no_grad():
        graph = lower(random_quantized_model(cfg.model), cfg)
    graph.save(folder)
    rng = np.random.default_rng(0)
    res = cfg.model.img_size
    frames = rng.poisson(0.3, (samples, cfg.data.time_steps, 2, res, res)).astype(np.int16)
    write_project(graph, folder / "hls", frames, np.zeros(samples, np.int64), trace_samples=0)
    return folder


def sim_ms(graph, frames: np.ndarray, batch: int = 64) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(frames), batch):
        run(graph, frames[start:start + batch])
    return 1e3 * (time.perf_counter() - t0) / len(frames)


def csim_ms(binary: Path, data: Path) -> float:
    out = subprocess.run([str(binary), str(data)], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"time per sample: ([0-9.]+) ms", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="an HLS export folder (default: a random-weight model)")
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml",
                        help="the random-weight model's config (default: tiny)")
    parser.add_argument("--samples", type=int, default=64, help="samples of the random model's testbench")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export = args.export or random_export(args.config, Path(tmp) / "model", args.samples)
        project = csim.project_dir(export)
        graph = load_graph(export)
        subprocess.run(["make", "--no-print-directory", "-C", str(project), "csim", f"CXX={csim.compiler()}",
                        f"AP_TYPES={csim.ap_types_dir()}"], check=True, capture_output=True)
        binary = next((project / "build").glob("*_csim"))
        data = project / "tb" / "data"
        frames = np.loadtxt(data / "inputs.txt", dtype=np.int64, ndmin=2)
        frames = frames.reshape(len(frames), graph.time_steps, *graph.nodes[0].shape)
        ratios = []
        for repeat in range(args.repeats):
            sim, cpp = sim_ms(graph, frames), csim_ms(binary, data)
            ratios.append(cpp / sim)
            print(f"repeat {repeat}: sim {sim:.2f} ms/sample, csim {cpp:.2f} ms/sample, ratio {cpp / sim:.2f}x "
                  f"({len(frames)} samples)")
        print(f"csim_speed_ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
