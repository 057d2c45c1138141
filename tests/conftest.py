"""What several test files share: paths, format lists, the small mixed-format model and graph config,
MAC counting on a real forward pass, and the ways a file gets broken.

Test files import these names (`from conftest import EVERY_FORMAT, mixed_format_model`); pytest puts
this folder on the path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # every test runs on the CPU, GPU or not (--device auto: the CPU)
if os.environ.get("PYTEST_XDIST_WORKER"):  # test workers share the cores: torch's OpenMP threads must not spin
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from hqflow.config import Config, config_from_dict  # noqa: E402
from hqflow.numerics import Candidate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED_DATA = ROOT.parent / "shared" / "data"  # data the team shares beside the repository (may be absent)

# ---- the session: Verilator's runtime library once, build-heavy files first ---------------------------

# markers of the tests that compile (Verilator, Yosys, g++, a wheel): under pytest-xdist (pyproject.toml:
# --dist loadfile --no-loadscope-reorder) their files are handed out first, then the files of few tests (the
# long ones: training, torchrun, kill and resume), so that the many short parametrized tests fill the tail
BUILD_MARKERS = ("rtl", "csim", "wheel")


@pytest.fixture(scope="session", autouse=True)
def verilator_runtime_once(tmp_path_factory):
    """Verilator's runtime library compiled once per session, shared by the xdist workers
    (tests/verilator_objcache.py); left alone when $OBJCACHE names the user's own (ccache)."""
    if os.environ.get("OBJCACHE"):
        yield
        return
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "verilator-runtime"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OBJCACHE", shlex.join([sys.executable, str(Path(__file__).with_name("verilator_objcache.py"))]))
        patch.setenv("HQFLOW_TEST_OBJCACHE", str(folder))
        yield


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist: the files with a build marker first, then by their number of tests (each file's
    own order kept)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    building = {item.path for item in items if any(item.get_closest_marker(m) for m in BUILD_MARKERS)}
    tests = Counter(item.path for item in items)
    items.sort(key=lambda item: (item.path not in building, tests[item.path]))


# ---- weight formats ----------------------------------------------------------------------------------

# every scheme at every width 2..8: po2z from 3 (po2z-2 is the ternary set of a symmetric uniform-2)
EVERY_FORMAT = (["fp32"] + [f"uniform-{b}" for b in range(2, 9)] + [f"po2-{b}" for b in range(2, 9)]
                + [f"po2z-{b}" for b in range(3, 9)])

# the i-th weight layer of a mixed-format model takes MIXED_FORMATS[i % 7]: on GRAPH_CFG sps.conv0
# uniform-2, sps.conv1 po2-2, sps.conv2 po2z-4, sps.conv3 uniform-4, sps.rpe fp32, q uniform-8,
# k po2z-8, v uniform-2, proj po2-2, fc1 po2z-4, fc2 uniform-4, head fp32
MIXED_FORMATS = ["uniform-2", "po2-2", "po2z-4", "uniform-4", "fp32", "uniform-8", "po2z-8"]

# a small model whose lowered graph has every op and (with MIXED_FORMATS) every scheme
GRAPH_CFG: Config = config_from_dict({
    "model": {"img_size": 16, "embed_dim": 32, "num_heads": 2, "depth": 1, "pools": [True, True, False, False],
              "num_classes": 10},
    "data": {"dataset": "digits-dvs", "time_steps": 4},
})


def mixed_format_model(seed: int, cfg: Config = GRAPH_CFG, formats: list[str] = MIXED_FORMATS, **bn_ranges):
    """A QAT-style Spikformer of `cfg` with `formats` spread over its layers, random weights and random
    BN statistics (`bn_ranges`: gamma, beta, mean ranges, as `supernet.random_quantized_model` takes)."""
    from hqflow.search import supernet

    candidates = tuple(Candidate.parse(name) for name in formats)
    return supernet.random_quantized_model(cfg.model, candidates, seed, **bn_ranges)


# ---- counting ----------------------------------------------------------------------------------------


def counted_macs(model: torch.nn.Module, frames: torch.Tensor) -> dict[str, int]:
    """MACs of every conv / linear layer, counted by hooks on a real forward pass over `frames`."""
    counted: dict[str, int] = {}

    def hook(name):
        def count(module, inputs, output):  # every output value costs c_in * k^2 MACs
            counted[name] = counted.get(name, 0) + output.numel() * module.weight[0].numel()
        return count

    hooks = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            model(frames)
    finally:
        for handle in hooks:
            handle.remove()
    return counted


# ---- broken files ------------------------------------------------------------------------------------


def copy_path(src: Path, dst: Path) -> Path:
    """Copy a file or a folder to `dst` (parents created); returns `dst`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst


def write_file(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Keep the first `keep` fraction of the file's bytes (a write cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def random_bytes(path: Path) -> Path:
    """Replace the file by random bytes that are not UTF-8."""
    return write_file(path, os.urandom(256) + b"\xff\xfe")
