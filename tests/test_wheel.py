"""A regular (non-editable) install exports and C-simulates.

The wheel is built from a copy of the package folders that pyproject.toml names, installed into a
temporary virtual environment, and run from a folder outside the repository, so that nothing can
come from the source tree: the kernel headers, the testbench header, the Jinja templates and the
energy table must all ship as package data and be found through the installed package. The
temporary environment reuses this environment's installed dependencies (torch, numpy, hls4ml's
ap_types, ...) through a .pth line, added after the wheel is installed; everything stays offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.wheel, pytest.mark.csim]

# Run by the temporary environment's python in a folder outside the repository: a random quantized
# tiny model saved as a run (config, weights and plan), as a QAT run would leave it.
MAKE_RUN = """
import dataclasses
import sys
from pathlib import Path

import torch

from hqflow.config import load_config
from hqflow.plan import LayerPlan, QuantPlan
from hqflow.search import supernet

cfg = load_config(sys.argv[1])
cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=10))  # digits-dvs
formats = supernet.DEFAULT_CANDIDATES[1:] + supernet.DEFAULT_CANDIDATES[:1]
model = supernet.random_quantized_model(cfg.model, formats)
layers = supernet.weight_layers(model)
plan = QuantPlan(tuple(LayerPlan(n, formats[i % len(formats)]) for i, n in enumerate(layers)), formats)
Path("run").mkdir()
torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "plan": plan.to_dict()}, "run/checkpoint.pt")
"""

WHERE = """
import hqflow, hqflow.cost, hqflow.export.hls as hls
print(hqflow.__file__)
print(hls.__file__)
print(hls.TEMPLATES)
print(hqflow.cost.DEFAULT_TABLE)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # -O1: the C simulation compiles in a third of the default -O3's time (test_hls compiles with the defaults)
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "CXXFLAGS": "-std=c++17 -O1"}


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _source_copy(dest: Path) -> None:
    """pyproject.toml, README.md and every folder its package-dir maps, without build leftovers."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = sorted(set(project["tool"]["setuptools"]["package-dir"].values()))
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    for folder in folders:
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_wheel_install_exports_and_csims(tmp_path):
    # the wheel, built offline from a copy of the sources (the repository is left untouched)
    _source_copy(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp_path / "dist", tmp_path / "src"], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("hqflow-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data = [f"hqflow/hls_templates/{p.relative_to(ROOT / 'hls_templates')}"
            for sub in ("kernels", "tb", "project") for p in sorted((ROOT / "hls_templates" / sub).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts]
    data += [f"hqflow/tables/{p.name}" for p in sorted((ROOT / "hqflow" / "tables").glob("*.yaml"))]
    data += [f"hqflow/export/hls/{p.name}" for p in sorted((ROOT / "export" / "hls").glob("*.py"))]  # a subpackage
    assert any(f.endswith("kernels/hqflow_wlif.h") for f in data) and any(f.endswith("hls/writer.py") for f in data), data
    assert len(data) > 30 and not [f for f in data if f not in shipped], sorted(set(data) - shipped)

    # a fresh environment (without pip of its own: this environment's pip installs into it) with the
    # wheel; then this environment's dependencies appended to its path
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         tmp_path)
    assert (venv / "bin" / "hqflow").read_text().startswith(f"#!{python}")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_reuse_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))

    # from a folder outside the repository, everything comes from the installed package
    work = tmp_path / "work"
    work.mkdir()
    where = _run([python, "-c", WHERE], work).stdout.split()
    assert all(Path(p).resolve().is_relative_to(site.resolve()) for p in where), (where, site)
    assert not any(Path(p).resolve().is_relative_to(ROOT) for p in where), where
    assert (Path(where[2]) / "kernels" / "hqflow.h").is_file() and Path(where[3]).is_file(), where

    _run([python, "-c", MAKE_RUN, ROOT / "configs" / "tiny.yaml"], work)
    hqflow = venv / "bin" / "hqflow"
    _run([hqflow, "export", "run", "--target", "hls", "-o", "exp", "--tb-samples", "4", "--trace-samples", "1"],
         work)
    assert (work / "exp" / "hls" / "firmware" / "kernels" / "hqflow.h").is_file()
    result = _run([hqflow, "csim", "exp"], work)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "mismatches: 0", result.stdout[-3000:]
    assert "spikformer: 4 samples" in result.stdout
