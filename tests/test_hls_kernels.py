"""The HLS kernel library and backend table, without a whole model: the ROM codes and their C++ decode
against hqflow.numerics in every format, the op table and its templates, the typed configs against
the kernels' documented default structs, and every kernel compiled with its defaults."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from hqflow import numerics
from hqflow.export import csim
from hqflow.export.hls import HlsOptions, pack_rom, rom_codes, write_project
from hqflow.ir import DeployGraph, Node
from hqflow.numerics import Candidate

from conftest import EVERY_FORMAT
from test_hls import _weights, random_layer_graph


def _rom_graph(rng, name: str, shape=(37, 4), max_shift: int = 60) -> tuple[DeployGraph, Node]:
    """A one-node graph holding random code tables of a format (every zero point, sign and shift kind)."""
    codes, extra = _weights(rng, Candidate.parse(name), shape, max_shift)
    node = Node("n", "linear_lif", ("x",), (1, shape[0]), {"format": name, **extra})
    return DeployGraph((node,), {f"n/{k}": v for k, v in codes.items()}, 1, 1), node


def test_rom_codes_decode_to_w_eff():
    """The ROM words of every format unpack and decode (numerics.rom, the one definition) to the graph's w_eff."""
    rng = np.random.default_rng(1)
    for name in EVERY_FORMAT:
        graph, node = _rom_graph(rng, name)
        rom, bits = rom_codes(graph, node)
        zero_point = node.attrs.get("zero_point", 0)
        codes = numerics.unpack_rom(pack_rom(rom, bits), bits, rom.shape[1])
        np.testing.assert_array_equal(numerics.rom_decode(Candidate.parse(name), codes, zero_point),
                                      graph.w_eff(node).T)


@pytest.mark.csim
@pytest.mark.parametrize("flags", [(), ("-DHQFLOW_AP_ARITHMETIC",)], ids=["model64", "ap_arithmetic"])
def test_cpp_decode_matches_numerics(tmp_path, flags):
    """The kernels' decode (hqflow_weights.h: accumulate_row over packed words, each scheme's product) gives
    x * numerics.rom_decode of every code, for a spike (x = 1) and a 2-bit count (x = 3), in every format."""
    from hqflow.export.hls import KERNELS, weight_scheme

    rng = np.random.default_rng(2)
    lines = ['#include <cstdio>', '#include "hqflow_weights.h"',
             "template <class WEIGHT, unsigned N, class x_t, unsigned ROWS, unsigned WORDS>",
             "void decode(const hqflow::rom_word_t (&rom)[ROWS][WORDS], unsigned x) {",
             "    for (unsigned r = 0; r < ROWS; r++) {",
             "        long long acc[N] = {0};",
             "        hqflow::accumulate_row<WEIGHT, N, 1, long long, x_t>(acc, rom[r], x_t(x));",
             '        for (unsigned o = 0; o < N; o++) std::printf("%lld ", acc[o]);',
             '        std::printf("\\n");', "    }", "}"]
    calls, expected = [], []
    for i, name in enumerate(EVERY_FORMAT):
        graph, node = _rom_graph(rng, name)
        rom, bits = rom_codes(graph, node)
        words = pack_rom(rom, bits)
        rows = ", ".join("{" + ", ".join(f"{int(w)}ULL" for w in row) + "}" for row in words)
        lines.append(f"static const hqflow::rom_word_t rom_{i}[{words.shape[0]}][{words.shape[1]}] = {{{rows}}};")
        scheme = weight_scheme(name, node.attrs.get("zero_point"))
        w_eff = numerics.rom_decode(Candidate.parse(name), rom, node.attrs.get("zero_point", 0))
        for x, x_t in ((1, "ap_uint<1>"), (3, "ap_uint<2>")):
            calls.append(f"    decode<{scheme}, {rom.shape[1]}, {x_t}>(rom_{i}, {x});")
            expected.append(x * w_eff)
    lines += ["int main() {", *calls, "    return 0;", "}"]
    (tmp_path / "decode.cpp").write_text("\n".join(lines) + "\n")
    cmd = [csim.compiler(), "-std=c++17", "-O1", "-Wall", "-Wextra", *flags, "-isystem", str(csim.ap_types_dir()),
           "-I", str(KERNELS), str(tmp_path / "decode.cpp"), "-o", str(tmp_path / "decode")]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    out = subprocess.run([str(tmp_path / "decode")], capture_output=True, text=True, check=True).stdout
    np.testing.assert_array_equal(np.array(out.split(), np.int64), np.concatenate(expected).ravel())
    assert len(set(np.concatenate(expected).ravel().tolist())) > 100  # many distinct weights, not a constant


# ---- the HLS backend: a table over ops, typed configs ---------------------------------------------


def test_hls_table_covers_every_ir_op(monkeypatch):
    """Every op of the IR has an entry (config builder, call template); a missing one is named at once."""
    from hqflow.export.hls import HLS_OPS, check_ops, supported_ops
    from hqflow.ops import OPS

    assert len(OPS) >= 8 and set(supported_ops()) == set(OPS)
    check_ops()
    monkeypatch.setitem(HLS_OPS, "rtl_only_op", HLS_OPS["add"])
    with pytest.raises(ValueError, match=r"the HLS backend .* implements op 'rtl_only_op', which hqflow.ops"):
        check_ops()
    monkeypatch.delitem(HLS_OPS, "rtl_only_op")
    monkeypatch.delitem(HLS_OPS, "ssa")
    with pytest.raises(ValueError, match=r"the HLS backend .* has no implementation of op 'ssa'"):
        check_ops()


def test_a_graph_op_without_an_entry_is_refused_before_writing(tmp_path, monkeypatch):
    from hqflow.export.hls import HLS_OPS

    graph, frames = random_layer_graph(np.random.default_rng(0), "conv_lif", "uniform-4")
    monkeypatch.delitem(HLS_OPS, "conv_lif")
    with pytest.raises(ValueError, match=r"has no implementation of op 'conv_lif'"):
        write_project(graph, tmp_path / "p", frames, np.zeros(len(frames), np.int64))
    assert not list(tmp_path.iterdir())  # nothing written, not even the folder


def test_output_types_come_from_the_stored_value_ranges():
    """A node's C++ type is the unsigned type of its stored value_max (the head's: attrs.logit_bits); a graph
    without the stored ranges is refused."""
    import dataclasses

    from hqflow.export.hls import node_views

    graph, _ = random_layer_graph(np.random.default_rng(3), "conv_lif", "po2-4")
    views = {view.name: view for view in node_views(graph, HlsOptions())}
    x_max = graph.node("input").value_max
    assert views["input"].type == ("hqflow::spike_t" if x_max == 1 else f"ap_uint<{x_max.bit_length()}>")
    assert views["layer"].type == "hqflow::spike_t"
    assert views["head"].type == f"ap_int<{graph.node('head').attrs['logit_bits']}>"
    bare = dataclasses.replace(graph, nodes=tuple(dataclasses.replace(n, value_max=None) for n in graph.nodes))
    with pytest.raises(ValueError, match="node 'input': no value_max"):
        node_views(bare, HlsOptions())


def test_each_op_names_its_kernel_and_header():
    """top.cpp.j2 names no op and no kernel: each process call comes from its op's HlsOp (kernel, header),
    and the header it names defines that kernel."""
    from hqflow.export.hls import HLS_OPS, KERNELS, TEMPLATES

    top = (TEMPLATES / "project" / "top.cpp.j2").read_text()
    assert "p.call" in top
    for op, entry in HLS_OPS.items():
        assert f"'{op}'" not in top and f'"{op}"' not in top, op
        if entry.kernel is None:  # no process: the input port's stream, the tokens alias
            assert op in ("input", "tokens") and entry.header is None, op
            continue
        assert f"hqflow::{entry.kernel}" not in top, op
        assert re.search(rf"\b{entry.kernel}\(", (KERNELS / entry.header).read_text()), (op, entry)


def _cpp_struct_members(struct: str) -> set[str]:
    """The typedef and constant members of the kernel library's struct hqflow::<struct>, with its bases'."""
    from hqflow.export.hls import KERNELS

    text = "\n".join(path.read_text() for path in sorted(KERNELS.glob("*.h")))
    found = re.search(rf"\nstruct {struct}(?: : ([\w:, ]+))? \{{(.*?)\n\}};", text, re.S)
    assert found, struct
    members = set(re.findall(r"typedef [^;]+? (\w+);", found.group(2)))
    members |= set(re.findall(r"static const unsigned (\w+) = ", found.group(2)))
    for base in filter(None, (b.strip() for b in (found.group(1) or "").split(","))):
        members |= _cpp_struct_members(base.removeprefix("hqflow::"))
    return members


def _config_classes() -> list[type]:
    from hqflow.export.hls.configs import KernelConfig

    classes, todo = [], [KernelConfig]
    while todo:
        for sub in todo.pop().__subclasses__():
            classes.append(sub)
            todo.append(sub)
    return sorted(set(classes), key=lambda cls: cls.__name__)


def test_config_dataclasses_mirror_the_kernel_default_structs():
    """Each typed config declares exactly the members of its kernel's documented default struct."""
    import dataclasses

    classes = _config_classes()
    assert len(classes) >= 7
    for cls in classes:
        assert cls.cpp_base.startswith("hqflow::"), cls
        fields = {field.name for field in dataclasses.fields(cls)}
        assert _cpp_struct_members(cls.cpp_base.removeprefix("hqflow::")) == fields, cls
    # the bases count: wlif_config has the LIF's and the weight ROM's members
    assert {"v_t", "weight", "height", "lanes"} <= _cpp_struct_members("wlif_config")
    assert "v_t" not in _cpp_struct_members("maxpool_config")


def test_kernel_configs_are_typed():
    import dataclasses

    from hqflow.export.hls.ops import AddConfig
    from hqflow.export.hls.cpp_types import CType, ap_int, ap_uint, uint_for, value_type

    words = {"a_word_t": ap_uint(4), "b_word_t": ap_uint(8), "out_word_t": uint_for(2**12 - 1)}
    counts = {"a_bits": 1, "b_bits": 2, "out_bits": 3, "time_steps": 4, "a_signed": 0, "b_signed": 1}
    config = AddConfig(**words, **counts, size=6)
    assert config.typedefs() == [("a_word_t", "ap_uint<4>"), ("b_word_t", "ap_uint<8>"), ("out_word_t", "ap_uint<12>")]
    assert config.constants() == [*counts.items(), ("size", 6)]
    assert value_type(1) == "hqflow::spike_t" and ap_int(35) == "ap_int<35>" and uint_for(0) == "ap_uint<1>"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 7
    with pytest.raises(TypeError, match=r"AddConfig.a_word_t = 'ap_uint<4>': expected a CType"):
        AddConfig(**{**words, "a_word_t": "ap_uint<4>"}, **counts, size=6)  # a plain string is no type
    with pytest.raises(TypeError, match=r"AddConfig.size = -1: expected an int >= 0"):
        AddConfig(**words, **counts, size=-1)
    with pytest.raises(TypeError, match=r"AddConfig.size = 'ap_uint<3>': expected an int"):
        AddConfig(**words, **counts, size=CType("ap_uint<3>"))

KERNEL_DEFAULTS_CPP = """\
#include "hqflow.h"
#include "hqflow_head.h"
#include "hqflow_sdt.h"
#include "hqflow_spike_ops.h"
#include "hqflow_ssa.h"
#include "hqflow_wlif.h"
// every kernel instantiated with its documented default config, one image through each
int main() {
    using namespace hqflow;
    static const long long bias[1] = {0}, thr[1] = {1};
    static const signed char sign[1] = {1};
    static const rom_word_t w[9][1] = {{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}};
    hls::stream<ap_uint<1> > x("x"), conv("conv"), pooled("pooled"), q("q"), k("k"), v("v"), attn("attn"), a("a");
    hls::stream<ap_uint<1> > b("b"), q0("q0"), q1("q1"), q2("q2"), head_in("head_in");
    hls::stream<ap_uint<2> > sum("sum");
    hls::stream<head_config::logit_t> logits("logits");
    x.write(1);
    wlif<wlif_config>(x, conv, w, bias, thr, sign);
    maxpool_or<maxpool_config>(conv, pooled);
    fork<1>(pooled, q0, q1, q2);
    q.write(q0.read());
    k.write(q1.read());
    v.write(q2.read());
    ssa_lif<ssa_config>(q, k, v, attn, bias, thr, sign);
    a.write(attn.read());
    b.write(1);
    add<add_config>(a, b, sum);
    head_in.write(sum.read() != 0);
    head<head_config>(head_in, logits, w, bias);
    // conv: the centre tap's weight 5 - 128 < thr, no spike; so no pooled, attention spike; the add's 0 + 1
    // reaches the head: one count times w_eff 1 - 128
    const long long logit = logits.read().to_int64();
    // the Spike-driven Transformer's: wbn (w_eff 5 - 128, times m 2, plus b 1: -245), lif_stream, sdsa
    static const int m_int[1] = {2};
    static const long long b_int[1] = {1};
    hls::stream<ap_uint<1> > x2("x2"), y2("y2"), s2("s2"), sq("sq"), sk("sk"), sv("sv"), a2("a2");
    x2.write(1);
    wbn<wbn_config>(x2, y2, w, m_int, b_int);
    const bool requantized = y2.read() == 1;  // -245 in one two's complement bit: its low bit, 1
    s2.write(1);
    lif_stream<lif_stream_config>(s2, a2, bias, thr, sign);  // the value -1 never fires
    sq.write(1);
    sk.write(1);
    sv.write(1);
    hls::stream<ap_uint<1> > o2("o2");
    sdsa<sdsa_config>(sq, sk, sv, o2, bias, thr, sign);  // count 1: h = 1 / 2 < 1, no mask
    const bool sdt = requantized && a2.read() == 0 && o2.read() == 0;
    return logit == -127 && sdt && x.empty() && logits.empty() ? 0 : 1;
}
"""


@pytest.mark.csim
@pytest.mark.parametrize("flags", [(), ("-DHQFLOW_AP_ARITHMETIC",)], ids=["model64", "ap_arithmetic"])
def test_kernel_default_configs_compile_clean(tmp_path, flags):
    """The default structs are complete configs: every kernel compiles with its own under C++14, no warning."""
    from hqflow.export.hls import KERNELS

    (tmp_path / "defaults.cpp").write_text(KERNEL_DEFAULTS_CPP)
    cmd = [csim.compiler(), "-std=c++14", "-O0", "-Wall", "-Wextra", "-Wno-uninitialized", "-Wno-maybe-uninitialized",
           *flags, "-isystem", str(csim.ap_types_dir()), "-I", str(KERNELS), str(tmp_path / "defaults.cpp"),
           "-o", str(tmp_path / "defaults")]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0 and "warning" not in build.stderr, build.stderr[-4000:]
    assert subprocess.run([str(tmp_path / "defaults")]).returncode == 0


@pytest.mark.csim
def test_a_window_the_kernel_lacks_fails_to_compile(tmp_path):
    """The window sizes travel in the configs: a wlif config with a 5x5 window stops the build, named."""
    from hqflow.export.hls import KERNELS

    source = KERNEL_DEFAULTS_CPP.replace("int main() {", "struct wide : hqflow::wlif_config {\n"
                                         "    static const unsigned kernel_size = 5;\n};\nint main() {")
    source = source.replace("wlif<wlif_config>(", "wlif<wide>(")
    assert "wlif<wide>(" in source
    (tmp_path / "strided.cpp").write_text(source)
    cmd = [csim.compiler(), "-std=c++14", "-fsyntax-only", "-isystem", str(csim.ap_types_dir()), "-I", str(KERNELS),
           str(tmp_path / "strided.cpp")]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode != 0 and "hqflow::wlif implements a 3x3 window with padding 1" in build.stderr
