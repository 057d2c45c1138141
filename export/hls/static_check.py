"""What can be checked of an exported HLS project's firmware without an HLS tool.

`check_firmware(project)` compiles firmware/*.cpp alone (never the testbench) with g++, in three
variants, and reads the object files back:

    csim      the plain C simulation (the 64-bit model of the ap_int arithmetic)
    csim_ap   -DHQFLOW_AP_ARITHMETIC: the synthesis arithmetic, C-simulation guards
    synthesis -D__SYNTHESIS__: the code an HLS tool sees (pragmas on, the C-simulation trace hook off).
              The open-source ap_types refuse __SYNTHESIS__ (#error), so ap_int.h is included first
              without it (through a one-line prelude); the firmware's own code is compiled with it.
              An HLS tool brings its own ap_types: this variant checks the firmware, not them.

Each compile takes the project Makefile's language and warning flags (MAKEFILE_FLAGS) plus
-fno-exceptions -fno-rtti -fno-threadsafe-statics (HLS has neither exceptions, RTTI nor threads),
-Wvla -Werror=vla (an array sized at run time does not compile), and -O0 -fno-inline
-ffunction-sections -fcallgraph-info, so that every call of the source is a call in the object
(nothing inlined or folded away) and GCC writes its own call graph (a .ci file, GCC 10+).

What it asserts (each failure is one line in Report.violations):
  * every undefined symbol of the object is accounted for: in ALLOWED_SYMBOLS or STATIC_RUNTIME, an
    hls::stream channel operation (STREAM_SHIM stands in for the C-simulation model of hls_stream.h), or the
    C++ runtime's <iostream> initializer when only a vendor header (ap_types) includes <iostream>, or
    referenced only by ap_types' own functions (the open-source ap_private multiplies words wider than
    64 bits through malloc and assert; an HLS tool replaces ap_types with its own), or (C-simulation
    variants only) referenced solely through the trace hook hqflow::trace. Anything else is named with
    its kind: heap (operator new/delete, malloc...), io (printf, FILE, std::cout...), exception
    (__cxa_throw...), rtti, or libcall (any other library function);
  * under synthesis the trace hook does not exist (no hqflow::trace* symbol, no indirect call);
  * no function recurses: the call graph of every function defined in the object (GCC's, so a
    static function calling itself counts too) has no cycle;
  * no function reachable from the top function makes an indirect call (HLS maps no function pointer);
  * no array has a run-time size (-Werror=vla), and the firmware's preprocessed synthesis source
    (its own lines, comments gone) names no new/delete/malloc/alloca/std::vector/std::string;
  * the firmware includes no standard header outside ALLOWED_HEADERS under synthesis.

  * under synthesis, no writable static object: nothing outlives a call of the top (the membranes live in
    registers, all T steps of a neuron together; the line buffers are the kernels' locals);
  * the top's dataflow region in canonical form (dataflow_check.py), and its streams those of the memory
    account (memory.json, memory.py) the export wrote.

Report also lists the static arrays (name, bytes) of the object: the constant tables.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from hqflow.errors import UserError
from hqflow.export import csim
from hqflow.export.hls import memory
from hqflow.export.hls.dataflow_check import STREAM_SHIM, DataflowReport, check_dataflow

# the project Makefile's flags (hls_templates/project/Makefile.j2: CXXFLAGS' language, -Wall -Wextra, AP_QUIET)
MAKEFILE_FLAGS = ("-std=c++17", "-Wall", "-Wextra", "-Wno-uninitialized", "-Wno-maybe-uninitialized")
CHECK_FLAGS = ("-O0", "-fno-inline", "-ffunction-sections", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
               "-Wvla", "-Werror=vla", "-fcallgraph-info")
VARIANTS = {"csim": (), "csim_ap": ("-DHQFLOW_AP_ARITHMETIC",), "synthesis": ("-D__SYNTHESIS__", "-Wno-unknown-pragmas")}

# Undefined symbols the firmware may reference. Vitis HLS synthesizes memcpy and memset (and memmove)
# with a compile-time size as copy / fill loops (its documented C library support: memcpy/memset,
# the math functions through hls_math); g++ also emits them on its own for array and struct copies.
# _GLOBAL_OFFSET_TABLE_ is the linker's, not a call.
ALLOWED_SYMBOLS = frozenset({"memcpy", "memset", "memmove", "_GLOBAL_OFFSET_TABLE_"})
# what a header's `#include <iostream>` costs every object that includes it: a static ios_base::Init
# (GCC 12 and older), registered with __cxa_atexit. Tolerated only when the firmware itself includes
# no <iostream> (the open-source ap_types do, outside __SYNTHESIS__; an HLS tool's own ones do not).
IOSTREAM_INIT = frozenset({"_ZNSt8ios_base4InitC1Ev", "_ZNSt8ios_base4InitD1Ev"})
# g++'s C++ runtime for static objects: a static ap_int buffer (non-trivial constructor and destructor) is
# constructed on first use and its destructor registered with __cxa_atexit. An HLS tool maps static
# variables to registers or memories initialized once; no code of these exists in hardware.
STATIC_RUNTIME = frozenset({"__cxa_atexit", "__dso_handle"})
# standard / vendor headers the firmware may include under synthesis (HLS-supported, no run-time library)
ALLOWED_HEADERS = frozenset({"ap_int.h", "ap_fixed.h", "hls_stream.h", "hls_math.h", "ap_axi_sdata.h", "cstdint",
                             "stdint.h", "cstddef", "stddef.h", "climits", "limits.h", "cstring", "string.h",
                             "type_traits", "limits"})

_KINDS = (  # (kind, pattern on the demangled name), first match wins
    ("heap", r"^operator (new|delete)|^(malloc|calloc|realloc|free|aligned_alloc|posix_memalign|alloca)$"
             r"|std::__throw_bad_alloc|std::allocator|__throw_bad_array_new_length"),
    ("exception", r"^__cxa_(throw|allocate_exception|free_exception|begin_catch|end_catch|rethrow)"
                  r"|^_Unwind_|std::__throw_|^std::terminate"),
    ("rtti", r"typeinfo|__dynamic_cast|__cxa_bad_(cast|typeid)|vtable for __cxxabiv1"),
    ("io", r"printf|^puts$|^putchar|^fputs|^fwrite|^fread|^fopen|^fclose|^fflush|^stdout$|^stderr$|^stdin$|FILE"
           r"|std::cout|std::cerr|std::clog|std::basic_ostream|std::basic_istream|std::ostream|std::ios_base"
           r"|std::basic_ios|^(abort|exit|__assert_fail)$"),
)
_SOURCE_BANNED = re.compile(r"\b(new|delete|malloc|calloc|realloc|free|alloca)\b\s*[\[(]?|std::(vector|string|"
                            r"map|set|list|deque|unique_ptr|shared_ptr|cout|cerr|printf)\b|\bprintf\s*\(")
_TRACE = re.compile(r"(^|\s)hqflow::trace(_hook)?[<(]")
_STATIC_INIT = re.compile(r"__static_initialization_and_destruction|_GLOBAL__sub_I_")
_QUOTED = r'"((?:[^"\\]|\\.)*)"'


@dataclasses.dataclass(frozen=True)
class Function:
    """A function of the call graph: its object-file symbol, C++ name and definition ("file:line", or
    "" for one the object only references)."""
    symbol: str
    name: str
    where: str
    defined: bool


@dataclasses.dataclass(frozen=True)
class VariantReport:
    """One compile of the firmware: its defines, what the object references and defines, and the verdict."""
    variant: str
    flags: tuple[str, ...]
    compiled: bool
    undefined: tuple[tuple[str, str], ...]        # (demangled symbol, how it is accounted for or the violation kind)
    functions: tuple[Function, ...]               # every node of the call graph
    calls: tuple[tuple[str, str], ...]            # (caller symbol, callee symbol), defined callers
    cycles: tuple[tuple[str, ...], ...]           # recursive groups (C++ names)
    trace_functions: tuple[str, ...]              # the C-simulation trace hook's functions present
    arrays: tuple[tuple[str, int], ...]           # static data objects: (C++ name, bytes)
    includes: tuple[str, ...]                     # non-firmware headers the firmware includes itself
    violations: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Report:
    """check_firmware's answer: one VariantReport per variant; ok when none has a violation."""
    project: str
    sources: tuple[str, ...]
    variants: tuple[VariantReport, ...]
    dataflow: DataflowReport | None = None
    memory: dict | None = None  # the export's memory account (memory.json)

    @property
    def violations(self) -> tuple[str, ...]:
        flow = self.dataflow.violations if self.dataflow else ()
        return tuple(f"{v.variant}: {line}" for v in self.variants for line in v.violations) + \
            tuple(f"dataflow: {line}" for line in flow)

    @property
    def ok(self) -> bool:
        return not self.violations

    def variant(self, name: str) -> VariantReport:
        return next(v for v in self.variants if v.variant == name)

    def summary(self) -> str:
        """A few lines for a person: per variant, what was found; then the violations or "static check: ok"."""
        lines = [f"{self.project}: {', '.join(self.sources)}"]
        for v in self.variants:
            own = sum(1 for f in v.functions if f.defined)
            lines.append(f"  {v.variant}: {own} functions, {len(v.calls)} calls, {len(v.cycles)} recursive groups "
                         f"({sum(1 for line in v.violations if line.startswith('recursion'))} in the firmware, the "
                         f"rest inside ap_types), "
                         f"{len(v.arrays)} static arrays ({sum(b for _, b in v.arrays)} bytes), undefined: "
                         + (", ".join(f"{s} [{how}]" for s, how in v.undefined) or "none"))
        lines += self.dataflow.summary() if self.dataflow else []
        lines += ["  " + line for line in memory.account_lines(self.memory)] if self.memory else []
        lines += [f"  violation: {line}" for line in self.violations] or ["static check: ok"]
        return "\n".join(lines)


def _tool(name: str) -> str:
    if shutil.which(name) is None:
        raise UserError(f"`{name}` not found on PATH: install binutils to run the static check of the firmware")
    return name


def _demangle(symbols: list[str]) -> dict[str, str]:
    if not symbols:
        return {}
    out = subprocess.run([_tool("c++filt")], input="\n".join(symbols), capture_output=True, text=True, check=True)
    return dict(zip(symbols, out.stdout.splitlines()))


def _kind(name: str) -> str:
    return next((kind for kind, pattern in _KINDS if re.search(pattern, name)), "libcall")


def _read_ci(path: Path) -> tuple[dict[str, tuple[str, str, bool]], list[tuple[str, str]]]:
    """GCC's -fcallgraph-info file: {title: (C++ name, where, defined)} and the edges (source, target)."""
    nodes: dict[str, tuple[str, str, bool]] = {}
    edges: list[tuple[str, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        node = re.match(rf"node: {{ title: {_QUOTED} label: {_QUOTED}(.*)}}", line)
        if node:
            label = node.group(2).split("\\n")
            nodes[node.group(1)] = (label[0], label[1] if len(label) > 1 else "", "ellipse" not in node.group(3))
        edge = re.match(rf"edge: {{ sourcename: {_QUOTED} targetname: {_QUOTED}", line)
        if edge:
            edges.append((edge.group(1), edge.group(2)))
    return nodes, edges


def _symbol(title: str) -> str:
    """A .ci title is the symbol, prefixed with "<file>:" for a symbol local to the file. The complete-object
    constructor / destructor (C1, D1) is an alias of the base-object one (C2, D2) that the graph holds."""
    return _unalias(title.rsplit(":", 1)[-1])


def _unalias(symbol: str) -> str:
    return re.sub(r"([CD])1(?=[EI])", r"\g<1>2", symbol) if symbol.startswith("_Z") else symbol


def _relocations(obj: Path) -> list[tuple[str, str]]:
    """(function symbol or "<data>", referenced symbol) for every relocation of the object."""
    text = subprocess.run([_tool("readelf"), "-rW", str(obj)], capture_output=True, text=True, check=True).stdout
    refs, owner = [], "<data>"
    for line in text.splitlines():
        section = re.match(r"Relocation section '\.rela(\S*)'", line)
        if section:
            name = section.group(1)
            owner = next((name[len(p):] for p in (".text.startup.", ".text.hot.", ".text.unlikely.", ".text.")
                          if name.startswith(p)), "<data>" if not name.startswith(".eh_frame") else "<eh>")
            continue
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[0-9a-f]{8,}", fields[0]) and owner != "<eh>":
            refs.append((owner, fields[4]))
    return refs


def _nm(obj: Path, *args: str) -> list[list[str]]:
    out = subprocess.run([_tool("nm"), *args, str(obj)], capture_output=True, text=True, check=True).stdout
    return [line.split(None, 3) for line in out.splitlines() if line.strip()]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups with a cycle (two or more members, or one calling itself); Tarjan, iterative."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]; counter[0] += 1; stack.append(root); on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1; stack.append(child); on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop(); on.discard(member); group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    found.append(sorted(group))
    return found


def _reach(graph: dict[str, set[str]], roots, blocked=frozenset()) -> set[str]:
    seen, todo = set(), [r for r in roots if r not in blocked]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += [n for n in graph.get(node, ()) if n not in blocked and n not in seen]
    return seen


def _own_includes(stderr: str, firmware: Path) -> list[str]:
    """Headers outside firmware/ that a firmware file includes itself (from g++ -H's include tree)."""
    found, parents = set(), {0: True}  # depth -> whether the file at that depth is the firmware's
    for line in stderr.splitlines():
        tree = re.match(r"^(\.+) (.+)$", line)
        if not tree:
            continue
        depth, path = len(tree.group(1)), Path(tree.group(2))
        ours = str(path.resolve()).startswith(str(firmware.resolve()) + "/")
        if parents.get(depth - 1, False) and not ours:
            found.add(path.name)
        parents[depth] = ours
    return sorted(found)


def _source_hits(preprocessed: str, firmware: Path) -> list[str]:
    """file:line: text of each firmware line (after preprocessing) that names a heap, container or I/O facility."""
    hits, current, number = [], None, 0
    root = str(firmware.resolve()) + "/"
    for line in preprocessed.splitlines():
        marker = re.match(r'^# (\d+) "(.*)"', line)
        if marker:
            number, name = int(marker.group(1)), marker.group(2)
            current = name if str(Path(name).resolve()).startswith(root) else None
            continue
        if current is not None and _SOURCE_BANNED.search(line):
            hits.append(f"{Path(current).name}:{number}: {line.strip()[:120]}")
        number += 1
    return hits


def _check_variant(project: Path, sources: list[Path], variant: str, work: Path, top: str) -> VariantReport:
    cxx, ap_types, firmware = csim.compiler(), csim.ap_types_dir(), project / "firmware"
    extra = list(VARIANTS[variant])
    shim = work / "hls_stream_shim.h"  # hls::stream as an HLS tool has it: channel operations, nothing else
    shim.write_text(STREAM_SHIM)
    extra += ["-include", str(shim)]
    if variant == "synthesis":  # the open-source ap_types #error under __SYNTHESIS__: read them without it
        prelude = work / "ap_prelude.h"
        prelude.write_text("#undef __SYNTHESIS__\n#include <ap_int.h>\n#define __SYNTHESIS__ 1\n")
        extra += ["-include", str(prelude)]
    flags = (*MAKEFILE_FLAGS, *CHECK_FLAGS, *extra)
    base = [cxx, *flags, "-isystem", str(ap_types), f"-I{firmware}"]
    violations: list[str] = []
    nodes: dict[str, tuple[str, str, bool]] = {}
    edges: list[tuple[str, str]] = []
    refs: list[tuple[str, str]] = []
    undefined: list[str] = []
    data: list[list[str]] = []
    includes: set[str] = set()
    compiled = True
    for source in sources:
        obj = work / f"{variant}_{source.stem}.o"
        done = subprocess.run([*base, "-H", "-c", str(source), "-o", str(obj)], capture_output=True, text=True,
                              cwd=work)
        if done.returncode != 0:
            compiled = False
            first = next((line for line in done.stderr.splitlines() if re.search(r"\berror\b", line)),
                         done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
            violations.append(f"{source.name} does not compile: {first.strip()}")
            continue
        includes.update(_own_includes(done.stderr, firmware))
        n, e = _read_ci(obj.with_suffix(".ci"))
        nodes.update(n)
        edges += e
        refs += _relocations(obj)
        undefined += [f[-1] for f in _nm(obj, "--undefined-only")]
        data += [f for f in _nm(obj, "-S", "--defined-only") if len(f) == 4 and f[2] in "bBdDrRV"]
        if variant == "synthesis":
            pre = subprocess.run([*base, "-E", str(source)], capture_output=True, text=True, cwd=work)
            violations += [f"heap, container or I/O in the firmware source: {hit}"
                           for hit in _source_hits(pre.stdout, firmware)]
    # the call graph, on symbols; edges from the .ci (every call, local ones too) and the relocations (calls
    # and addresses taken), so that a symbol referenced only as data (stdout, a vtable) is seen as well
    functions = {_symbol(t): (name, where, defined) for t, (name, where, defined) in nodes.items()}
    graph: dict[str, set[str]] = {}
    for source_t, target_t in edges:
        graph.setdefault(_symbol(source_t), set()).add(_symbol(target_t))
    for owner, symbol in refs:
        if not symbol.startswith("."):  # a section symbol: a reference to local data or code by section
            graph.setdefault(_unalias(owner), set()).add(_unalias(symbol))
    undefined = sorted(set(undefined))
    names = _demangle(sorted(set(undefined) | {s for s in graph if s not in functions}))
    names.update(_demangle(sorted(s for s in functions if s.startswith("_Z"))))
    name_of = lambda s: names.get(s, functions[s][0] if s in functions else s)  # noqa: E731
    defined = {s for s, (_, _, d) in functions.items() if d}
    root = str(firmware.resolve()) + "/"
    own = {s for s in defined if str(Path(functions[s][1].rsplit(":", 2)[0]).resolve()).startswith(root)}
    call_graph = {s: {c for c in graph.get(s, ()) if c in defined} for s in defined}
    groups = _cycles(call_graph)
    cycles = [[name_of(s) for s in group] for group in groups]
    # the firmware's own recursion; a cycle inside ap_types (ap_private's << and >> call each other for a
    # negative shift) is the open-source C-simulation library's, which an HLS tool replaces: reported only
    violations += [f"recursion: {' -> '.join(name_of(s) for s in group)}" for group in groups if set(group) & own]
    # who reaches what: from the top function and the static initializers, and from the trace hook
    hooks = {s for s in defined if _TRACE.search(name_of(s))}
    roots = [s for s in defined if re.search(rf"(^|\s){top}\(", name_of(s)) or _STATIC_INIT.search(s)]
    called = {c for s, cs in graph.items() if s != "<data>" for c in cs}
    roots += ["<data>"] + [s for s in own if s not in called and s not in hooks]  # uncalled: checked too
    main = _reach(graph, roots, blocked=hooks if variant != "synthesis" else frozenset())
    hook_only = _reach(graph, hooks) - main
    if not any(re.search(rf"(^|\s){top}\(", name_of(s)) for s in defined) and compiled:
        violations.append(f"no top function {top}() in the object")
    if variant == "synthesis" and hooks:
        violations.append("the C-simulation trace hook is compiled under __SYNTHESIS__: "
                          + ", ".join(sorted(name_of(s) for s in hooks)[:3]))
    for s in sorted(main & defined):
        if "__indirect_call" in graph.get(s, ()):
            violations.append(f"indirect call (a function pointer) in {name_of(s)}")
    static_init = {s for s in main if _STATIC_INIT.search(s)}
    iostream_own = "iostream" in includes
    vendor = str(Path(ap_types).resolve()) + "/"
    accounted: list[tuple[str, str]] = []
    for symbol in undefined:
        users = {s for s in graph if _unalias(symbol) in graph[s]}
        if symbol in ALLOWED_SYMBOLS:
            how = "allowed"
        elif name_of(symbol).startswith("hls::stream<"):
            how = "stream channel"
        elif symbol in STATIC_RUNTIME:
            how = "static-object runtime"
        elif symbol in IOSTREAM_INIT and users and users <= static_init and not iostream_own:
            how = "iostream initializer of ap_types"
        elif users and all(str(Path(functions[u][1].rsplit(":", 2)[0]).resolve()).startswith(vendor)
                           for u in users if u in functions) and users <= set(functions):
            how = "inside ap_types"  # e.g. malloc in the open-source ap_private's > 64-bit multiply
        elif variant != "synthesis" and users and users <= hook_only:
            how = "trace hook (C simulation only)"
        else:
            how = _kind(name_of(symbol))
            where = ", ".join(sorted(name_of(u) for u in users)[:2]) or "unknown"
            violations.append(f"{how}: {name_of(symbol)} (referenced by {where})")
        accounted.append((name_of(symbol), how))
    if variant == "synthesis":
        violations += [f"standard header outside the HLS-supported set included by the firmware: <{h}>"
                       for h in sorted(includes) if h not in ALLOWED_HEADERS]
        # state that outlives a call: a writable static variable (per-neuron or any other); tables are const
        violations += [f"static state (a writable static object: {_demangle([f[3]]).get(f[3], f[3])}, {int(f[1], 16)} "
                       "bytes)" for f in data if f[2] in "bBdD" and not f[3].startswith(("__", "_ZStL8__ioinit", "_ZGV"))]
    arrays = tuple(sorted((_demangle([f[3]]).get(f[3], f[3]) if f[3].startswith("_Z") else f[3], int(f[1], 16))
                          for f in data if not f[3].startswith(("__", "_ZStL8__ioinit", "_ZGV"))))
    return VariantReport(
        variant=variant, flags=flags, compiled=compiled, undefined=tuple(accounted),
        functions=tuple(Function(s, n, w, d) for s, (n, w, d) in sorted(functions.items())),
        calls=tuple(sorted((a, b) for a, bs in call_graph.items() for b in bs)),
        cycles=tuple(tuple(g) for g in cycles), trace_functions=tuple(sorted(name_of(s) for s in hooks)),
        arrays=arrays, includes=tuple(sorted(includes)), violations=tuple(violations))


def check_firmware(export: str | Path, variants=tuple(VARIANTS)) -> Report:
    """Compile the firmware of an HLS project (an export folder or its hls/ folder) in each variant and
    check its object files (module docstring). Needs g++ (or $CXX), nm, readelf, c++filt and ap_types."""
    project = csim.project_dir(export)
    sources = sorted((project / "firmware").glob("*.cpp"))
    if not sources:
        raise UserError(f"{project / 'firmware'}: no .cpp file to check; export the project again")
    tops = [p.stem[:-len("_top")] for p in sources if p.stem.endswith("_top")]
    if len(tops) != 1:
        raise UserError(f"{project / 'firmware'}: {len(tops)} *_top.cpp files, expected one; export the project again")
    with tempfile.TemporaryDirectory(prefix="hqflow_static_") as tmp:
        reports = tuple(_check_variant(project, sources, v, Path(tmp), f"{tops[0]}_top") for v in variants)
        flow = check_dataflow(project, f"{tops[0]}_top", Path(tmp))
    account = json.loads((project / "memory.json").read_text()) if (project / "memory.json").is_file() else None
    return Report(str(project), tuple(p.name for p in sources), reports, flow, account)
