"""Per-sample time of the Verilator model of the whole RTL top against the C simulation, same model, same frames.

A random-weight model with every default format (as `csim_speed.py` builds it) is written both as
the HLS project and as the RTL top (`hqflow export --target rtl`). Timed, after the builds, alternating:

    csim   the C simulation's own timer (the whole model, one sample at a time through the top)
    rtl    the Verilator testbench's wall time (the whole top, cycle by cycle, logits compared; no
           traced sample), divided by samples

Both run the whole model; the RTL run also reads its vectors from text files inside the timed region.
Cycle-accurate simulation is expected to be far slower than C: the figure says by how much.

    python benchmarks/rtl_speed.py                       # tiny, 4 samples
    python benchmarks/rtl_speed.py --samples 8 --lanes 16

The last line is the figure: `rtl_speed_ratio: <rtl / csim>` (median over the repeats).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from csim_speed import csim_ms  # noqa: E402  (the C simulation's timer, shared)

from hqflow.export import csim  # noqa: E402
from hqflow.export.rtl import project, verilator  # noqa: E402


def export_both(config: Path, folder: Path, samples: int, lanes: int) -> tuple[Path, Path]:
    """The random model's HLS project (folder/hls) and RTL top (folder/rtl), same frames."""
    import torch

    from hqflow.config import load_config
    from hqflow.export.hls import write_project
    from hqflow.export.lower import lower
    from hqflow.search.supernet import random_quantized_model

    cfg = load_config(config).replace("model", num_classes=10)  # random weights: any class count
    with torch.no_grad():
        graph = lower(random_quantized_model(cfg.model), cfg)
    graph.save(folder)
    res = cfg.model.img_size
    frames = np.random.default_rng(0).poisson(0.3, (samples, cfg.data.time_steps, 2, res, res)).astype(np.int16)
    write_project(graph, folder / "hls", frames, np.zeros(samples, np.int64), trace_samples=0)
    project.write_rtl(graph, folder / "rtl", frames, 0, project.RtlOptions(lanes=lanes, arch="sequential"))
    return folder / "hls", folder / "rtl"


def rtl_ms(executable: Path, rtl: Path, samples: int) -> float:
    t0 = time.perf_counter()
    result = verilator.run(executable, [str(samples), "0"], rtl)
    if not result.stdout.endswith("mismatches: 0\n"):
        raise SystemExit(f"the RTL top disagrees with the simulator: {result.stdout[-300:]}")
    return 1e3 * (time.perf_counter() - t0) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hls, rtl = export_both(args.config, Path(tmp) / "model", args.samples, args.lanes)
        subprocess.run(["make", "--no-print-directory", "-C", str(hls), "csim", f"CXX={csim.compiler()}",
                        f"AP_TYPES={csim.ap_types_dir()}"], check=True, capture_output=True)
        binary = next((hls / "build").glob("*_csim"))
        executable = project.build(rtl.resolve())
        ratios = []
        for repeat in range(args.repeats):
            cpp, hdl = csim_ms(binary, hls / "tb" / "data"), rtl_ms(executable, rtl, args.samples)
            ratios.append(hdl / cpp)
            print(f"repeat {repeat}: csim {cpp:.2f} ms/sample (whole model), Verilator {hdl:.1f} ms/sample "
                  f"(whole top, P {args.lanes}), ratio {hdl / cpp:.0f}x "
                  f"({args.samples} samples)")
        print(f"rtl_speed_ratio: {statistics.median(ratios):.1f}")


if __name__ == "__main__":
    main()
