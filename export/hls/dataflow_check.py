"""The dataflow region of an HLS project's top function, read as an HLS tool reads it, and checked for the
canonical form (Vitis HLS, UG1399 "dataflow"), with the memory account beside it.

The top's source is preprocessed as under synthesis (-D__SYNTHESIS__: the C simulation's traces gone,
the pragmas present), its body split into statements and each one classified: a pragma, `using
namespace`, an hls::stream declaration, or a process call (a kernel template's call). Each call's
arguments are matched to the kernel's parameters (the kernel library's signatures in the same source):
a parameter named in* reads a stream, out* writes one, anything else is a constant table. Checked:

  * the body holds `#pragma HLS DATAFLOW` and nothing but those four kinds of statement (no loop, no
    condition around a process, no variable or array, nothing static);
  * every stream of the region has exactly one producer and one consumer, the input port one consumer
    and the output port one producer; every producer is called before its consumer (no feedback);
  * no table or array is passed to two processes;
  * the streams' word widths and depths (the STREAM pragmas) are those of the memory account the export
    wrote (memory.json), which maps each to LUTs, block RAM or UltraRAM.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hqflow.export import csim

__all__ = ["STREAM_SHIM", "DataflowReport", "check_dataflow"]

# The open-source hls_stream.h is a C-simulation model (a std::deque, typeid for its name: it does not
# compile under -fno-rtti). The check compiles the firmware against this stand-in instead, the channel
# operations an HLS tool implements itself, declared and never defined: each read, write and empty test
# is an undefined symbol of the object, accounted for as a "stream channel".
STREAM_SHIM = """#ifndef X_HLS_STREAM_SIM_H
#define X_HLS_STREAM_SIM_H
namespace hls {
template <class T>
class stream {
  public:
    stream();
    explicit stream(const char *name);
    T read();
    void read(T &value);
    void write(const T &value);
    bool empty();
    bool full();
};
}  // namespace hls
#endif
"""


@dataclass(frozen=True)
class DataflowReport:
    processes: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # (kernel, streams read, streams written)
    streams: dict  # name -> (width, depth)
    violations: tuple[str, ...]

    def summary(self) -> list[str]:
        return [f"  dataflow: {len(self.processes)} processes, {len(self.streams)} streams"
                + (" in canonical form" if not self.violations else "")]


def _split_top(text: str, sep: str = ",") -> list[str]:
    """`text` split at `sep` outside (), <>, [] and {}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def _body(text: str, top: str) -> str | None:
    """The body of the definition of function `top` in `text`."""
    for found in re.finditer(rf"\bvoid\s+{top}\s*\(", text):
        at, depth = found.end() - 1, 0
        for i in range(at, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                rest = text[i + 1:].lstrip()
                if rest.startswith("{"):
                    start = len(text) - len(rest)
                    depth = 0
                    for j in range(start, len(text)):
                        depth += {"{": 1, "}": -1}.get(text[j], 0)
                        if depth == 0:
                            return text[start + 1:j]
                break
    return None


def _statements(body: str) -> list[str]:
    """Pragma lines and `;`-terminated statements; a braced block is one statement (a violation)."""
    out, current, depth = [], "", 0
    for line in body.splitlines():
        if line.strip().startswith("#pragma") and depth == 0 and not current.strip():
            out.append(" ".join(line.split()))
            continue
        for ch in line + "\n":
            current += ch
            depth += {"{": 1, "}": -1, "(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and ch in ";}":
                if current.strip():
                    out.append(" ".join(current.split()))
                current = ""
    return out


def _signatures(text: str) -> dict[str, list[list[str]]]:
    """Kernel function name -> the parameter names of each of its overloads ("" for an unnamed one)."""
    found: dict[str, list[list[str]]] = {}
    for m in re.finditer(r"\bvoid\s+(\w+)\s*\(([^;{}]*?)\)\s*\{", text):
        names = []
        for param in _split_top(m.group(2)):
            param = re.sub(r"\[.*", "", param).strip()
            words = re.findall(r"[A-Za-z_]\w*", param)
            names.append(words[-1] if len(words) > 1 and not param.endswith((">", "&")) else "")
        found.setdefault(m.group(1), []).append(names)
    return found


def check_dataflow(project: Path, top: str, work: Path) -> DataflowReport:
    """Preprocess firmware/<top>.cpp as under synthesis and check its dataflow region (module docstring)."""
    prelude = work / "dataflow_prelude.h"
    prelude.write_text("#undef __SYNTHESIS__\n#include <ap_int.h>\n#define __SYNTHESIS__ 1\n")
    (work / "dataflow_shim.h").write_text(STREAM_SHIM)
    source = project / "firmware" / f"{top}.cpp"
    cmd = [csim.compiler(), "-std=c++17", "-E", "-P", "-D__SYNTHESIS__", "-include", str(work / "dataflow_shim.h"),
           "-include", str(prelude), "-isystem", str(csim.ap_types_dir()), f"-I{project / 'firmware'}", str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return DataflowReport((), {}, (f"{source.name} does not preprocess: {done.stderr.strip()[:200]}",))
    text = done.stdout
    body = _body(text, top)
    if body is None:
        return DataflowReport((), {}, (f"no definition of {top}() in {source.name}",))
    signatures = _signatures(text)
    violations: list[str] = []
    streams: dict[str, list] = {}  # name -> [width, depth]
    readers: dict[str, list[int]] = {"in": []}
    writers: dict[str, list[int]] = {"out": []}
    tables: dict[str, list[int]] = {}
    processes = []
    dataflow = False
    for stmt in _statements(body):
        if stmt.startswith("#pragma"):
            dataflow |= stmt.replace(" ", "").upper() == "#PRAGMAHLSDATAFLOW"
            depth = re.match(r"#pragma HLS STREAM variable = (\w+) depth = (\d+)", stmt)
            if depth and depth.group(1) in streams:
                streams[depth.group(1)][1] = int(depth.group(2))
            continue
        if stmt.startswith("using namespace ") or stmt == ";":  # ";": a C-simulation trace, gone under synthesis
            continue
        decl = re.fullmatch(r"hls::stream<\s*ap_u?int<(\d+)>\s*>\s+(\w+)\s*\(\s*\"\w*\"\s*\);", stmt)
        if decl:
            streams[decl.group(2)] = [int(decl.group(1)), 2]
            readers[decl.group(2)], writers[decl.group(2)] = [], []
            continue
        call = re.fullmatch(r"([\w:]+?)(?:\s*<.*>)?\s*\((.*)\);", stmt)
        kernel = call.group(1).split("::")[-1] if call else None
        if not call or kernel not in signatures or re.match(r"(if|for|while|switch|do|return)\b", stmt):
            violations.append(f"not a stream, a pragma or a process call in the dataflow region: {stmt[:100]}")
            continue
        args = _split_top(call.group(2))
        overloads = [names for names in signatures[kernel] if len(names) == len(args) and all(names)]
        if not overloads:
            violations.append(f"{kernel}: no overload of {len(args)} named parameters for the call {stmt[:80]}")
            continue
        index, reads, writes = len(processes), [], []
        for name, arg in zip(overloads[0], args):
            if arg in readers and name.startswith("in"):
                readers[arg].append(index)
                reads.append(arg)
            elif arg in writers and name.startswith("out"):
                writers[arg].append(index)
                writes.append(arg)
            elif arg in streams or arg in ("in", "out"):
                violations.append(f"{kernel}: stream {arg} passed as parameter {name} (neither in* nor out*)")
            else:
                tables.setdefault(arg, []).append(index)
        processes.append((kernel, tuple(reads), tuple(writes)))
    if not dataflow:
        violations.append(f"{top}(): no #pragma HLS DATAFLOW")
    for name in streams:
        if len(writers[name]) != 1 or len(readers[name]) != 1:
            violations.append(f"stream {name}: {len(writers[name])} producers and {len(readers[name])} consumers, "
                              "expected one of each")
        elif writers[name][0] > readers[name][0]:
            violations.append(f"stream {name}: consumed by process {readers[name][0]} before its producer "
                              f"{writers[name][0]} runs (feedback, or not in dataflow order)")
    if len(readers["in"]) != 1 or len(writers["out"]) != 1:
        violations.append(f"ports: the input read by {len(readers['in'])} processes, the output written by "
                          f"{len(writers['out'])}; expected one each")
    violations += [f"table or array {name} passed to {len(users)} processes" for name, users in tables.items()
                   if len(users) > 1]
    account = project / "memory.json"
    if not account.is_file():
        violations.append(f"{account.name}: missing (the export writes the memory account there)")
    else:
        fifos = {e["name"]: (e["width"], e["depth"]) for e in json.loads(account.read_text())["entries"]
                 if e["kind"] == "fifo"}
        declared = {name: tuple(wd) for name, wd in streams.items()}
        if fifos != declared:
            diff = sorted(set(fifos.items()) ^ set(declared.items()))[:3]
            violations.append(f"memory account: its streams differ from the top's (width, depth): {diff}")
    return DataflowReport(tuple(processes), {k: tuple(v) for k, v in streams.items()}, tuple(violations))
