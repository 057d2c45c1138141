"""The import graph: which part of hqflow may know which.

    core    hqflow/*            knows no stage; never imports torch (a DeployGraph is checked and
                                run on a machine with NumPy alone)
    search  search/            the PyTorch stage: knows the core, not export or sim
    sim     sim/               NumPy and the core only
    export  export/            knows everything but the CLI
    cli     hqflow/cli/        the top

Every import counts, also those inside functions. Module-level imports form no cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"hqflow": "hqflow", "search": "hqflow.search", "export": "hqflow.export", "sim": "hqflow.sim"}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _part(module: str) -> str:
    if module == "hqflow.cli" or module.startswith("hqflow.cli."):
        return "cli"
    for part in ("search", "export", "sim"):
        if module == f"hqflow.{part}" or module.startswith(f"hqflow.{part}."):
            return part
    return "core"


def _imports(path: Path, module: str, top_level_only: bool = False) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{base}" if base else package
            submodules = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
            names |= submodules
            if len(submodules) < len(node.names):  # `from package import submodule` needs only the submodule
                names.add(base)
    return names


ALLOWED = {  # part -> the hqflow parts it may import
    "core": {"core"},
    "search": {"core", "search"},
    "sim": {"core", "sim"},
    "export": {"core", "search", "sim", "export"},
    "cli": {"core", "search", "sim", "export", "cli"},
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_respect_the_layers(module):
    part = _part(module)
    for name in _imports(MODULES[module], module):
        if name.split(".")[0] == "hqflow":
            assert _part(name) in ALLOWED[part], f"{module} ({part}) imports {name} ({_part(name)})"
        elif part in ("core", "sim"):
            assert name.split(".")[0] != "torch", f"{module} ({part}) imports torch"
            if part == "sim":
                assert name.split(".")[0] in STDLIB | {"numpy"}, f"{module} (sim) imports {name}"


def test_the_product_never_imports_the_dev_tooling():
    """hqflow.export.rtl.dev (the core tests' Verilator models, the FPGA table's calibration) is imported by
    tests, benchmarks and itself only."""
    dev = "hqflow.export.rtl.dev"
    assert f"{dev}.layer" in MODULES and f"{dev}.calibrate" in MODULES
    for module, path in MODULES.items():
        if not module.startswith(dev):
            found = [n for n in _imports(path, module) if n == dev or n.startswith(dev + ".")]
            assert not found, f"{module} imports {found}"


def test_no_import_cycles():
    graph = {m: {n for n in _imports(p, m, top_level_only=True) if n in MODULES and n != m}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycle = stack[stack.index(name):] + [name]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if name not in state:
                visit(name, stack + [name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", ["hqflow.export.rtl.project", "hqflow.export.rtl.diagram", "hqflow.export.rtl.stream",
                                    "hqflow.export.rtl.memfiles", "hqflow.export.hls", "hqflow.export.hls.cpp_types",
                                    "hqflow.export.lower", "hqflow.export.csim"])
def test_each_entry_module_imports_first(module):
    """Imported first in a fresh interpreter (as a CLI command imports it lazily), each module loads: an import
    cycle through a package's __init__ that a whole-suite import order hides fails here."""
    import subprocess

    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True, text=True)


def test_a_violation_is_caught(tmp_path):
    """The check reads what it claims to: a search module importing the simulator is named."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from hqflow.sim.run import run\n")
    assert "hqflow.sim.run" in _imports(path, "hqflow.search.bad")
    assert _part("hqflow.sim.run") not in ALLOWED["search"]
