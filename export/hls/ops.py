"""The HLS backend's table over the DeployGraph's ops: op name -> HlsOp (config builder, kernel, header).

Each builder reads the node's core in the schedule (export/rtl/stream.py, the one the RTL top renders):
its geometry, its folding (lanes P, the attention's kv split) and its placement (ULTRA: its large RAM in
UltraRAM); it gives the kernel's typed config, the node's tables (in the order of the kernel's table
arguments) and the arrays the kernel declares (the memory account). Adding an op to the HLS backend: its
kernel in hls_templates/kernels/<header> with its documented default config struct, and here its config
dataclass, its builder and its HLS_OPS entry. check_ops() names any op of hqflow.ops.OPS this table lacks,
at import and again before a project is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hqflow.export.hls import cpp_types
from hqflow.export.hls.configs import KernelConfig, LifConfig, WeightRomConfig
from hqflow.export.hls.cpp_types import CType
from hqflow.export.hls.rom import pack_rom, rom_codes
from hqflow.export.hls.views import Array, Emitted, HlsOp, OpContext, Table
from hqflow.ops import check_backend

# An array of at most this many bits goes to LUT RAM (BIND_STORAGE impl=lutram), a larger one to block
# RAM unless the schedule put it in UltraRAM: the bound Vitis HLS applies to FIFOs by default (UG1399,
# config_storage: shift registers up to 1,024 bits), applied here to the kernels' arrays as well.
LUTRAM_BITS = 1024
STORAGE = {"bram": cpp_types.CType("hqflow::storage_bram"), "uram": cpp_types.CType("hqflow::storage_uram"),
           "lutram": cpp_types.CType("hqflow::storage_lutram")}


def storage(ctx: OpContext, bits: int) -> str:
    """Where a kernel's large array goes: "uram" where the schedule placed the core's RAMs in UltraRAM,
    "lutram" for at most LUTRAM_BITS bits, else "bram"."""
    if ctx.params.get("ULTRA"):
        return "uram"
    return "lutram" if bits <= LUTRAM_BITS else "bram"


def _word(ctx: OpContext, bits: int) -> cpp_types.CType:
    """A stream word: T values of `bits` bits."""
    return cpp_types.ap_uint(ctx.graph.time_steps * bits)


def _weight_fields(ctx: OpContext) -> tuple[dict, Table]:
    """A weighted node's WeightRomConfig fields and its ROM table."""
    codes, bits = rom_codes(ctx.graph, ctx.node)
    words = pack_rom(codes, bits)
    lanes = cpp_types.ROM_WORD_BITS // bits
    table = Table(cpp_types.ROM_WORD_T, "w", words, f"weights: {ctx.node.attrs['format']}, {bits}-bit codes, "
                  f"{lanes} per word; rows = inputs, lanes = outputs")
    fields = {"in_t": ctx.inputs[0].qualified_type, "acc_t": cpp_types.ap_int(ctx.node.attrs["acc_bits"]),
              "weight": cpp_types.weight_scheme(ctx.node.attrs["format"], ctx.node.attrs.get("zero_point")),
              "row_words": int(words.shape[1]), "reuse_factor": ctx.options.reuse_factor}
    return fields, table


def _lif_fields(ctx: OpContext) -> tuple[dict, tuple[Table, ...]]:
    """A spiking node's LifConfig fields and its LIF tables (bias_int, thr_int, sign per channel)."""
    bias, thr = (ctx.graph.tensor(ctx.node.name, field) for field in ("bias_int", "thr_int"))
    table_t = cpp_types.int_for([int(v) for v in (*bias.ravel(), *thr.ravel())])
    tables = (Table(table_t, "bias_int", bias, "LIF: bias_int"), Table(table_t, "thr_int", thr, "LIF: thr_int"),
              Table(cpp_types.INT8_T, "sign", ctx.graph.tensor(ctx.node.name, "sign"), "LIF: sign"))
    fields = {"v_t": cpp_types.ap_int(ctx.node.attrs["v_bits"]), "frac_bits": int(ctx.node.attrs["frac_bits"]),
              "time_steps": ctx.graph.time_steps, "table_t": table_t}
    return fields, tables


def build_input(ctx: OpContext) -> Emitted:
    """The input [C, H, W]: the top function's input stream; no process."""
    return Emitted()


@dataclass(frozen=True)
class WlifConfig(LifConfig, WeightRomConfig):
    """hqflow::wlif (hqflow_wlif.h): conv 3x3 (padding 1) or linear (a 1x1 window over the tokens), then
    the LIF, streaming: words of T values in, words of T spikes out."""

    cpp_base: ClassVar[str] = "hqflow::wlif_config"
    in_word_t: CType  # ap_uint<T * in_t bits>
    out_word_t: CType  # ap_uint<T>
    storage: CType  # the line buffer's memory: hqflow::storage_bram, _uram or _lutram
    height: int  # H, of the input and the output (linear: N tokens)
    width: int  # W (linear: 1)
    in_channels: int
    out_channels: int
    kernel_size: int  # K: 3 (conv) or 1 (linear), stride 1
    padding: int  # (K - 1) / 2
    lanes: int  # P: output channels a group (the schedule's folding)


def build_wlif(ctx: OpContext) -> Emitted:
    """conv_lif (x [C, H, W] -> spikes [O, H, W]) and linear_lif (x [N, C] -> spikes [N, O]): hqflow::wlif
    with the core's geometry (linear: N x 1, a 1x1 window) and lanes P."""
    p = ctx.params
    weights, rom = _weight_fields(ctx)
    lif, lif_tables = _lif_fields(ctx)
    in_bits = ctx.inputs[0].bits
    line_bits = ctx.graph.time_steps * in_bits * p["K"] * p["W"] * p["C"]
    where = storage(ctx, line_bits)
    config = WlifConfig(**weights, **lif, in_word_t=_word(ctx, in_bits), out_word_t=_word(ctx, 1),
                        storage=STORAGE[where], height=p["H"], width=p["W"], in_channels=p["C"],
                        out_channels=p["O"], kernel_size=p["K"], padding=p["PAD"], lanes=p["P"])
    arrays = (Array("line", ctx.graph.time_steps * in_bits, p["K"] * p["W"] * p["C"], where),)
    return Emitted(config, (rom, *lif_tables), arrays)


@dataclass(frozen=True)
class SsaConfig(LifConfig):
    """hqflow::ssa_lif (hqflow_ssa.h): spiking self-attention, then the attention LIF."""

    cpp_base: ClassVar[str] = "hqflow::ssa_config"
    word_t: CType  # ap_uint<T>: q, k, v and the output
    acc_t: CType  # ap_int<acc_bits>: q (k^T v), at most tokens * head_dim
    kv_t: CType  # k^T v counts, at most tokens
    storage: CType  # q of every token and k^T v: hqflow::storage_bram, _uram or _lutram
    tokens: int
    dim: int  # D = num_heads * head_dim
    num_heads: int
    head_dim: int
    parallel: int  # k^T v entries updated at once: head_dim / the schedule's kv split


def build_ssa(ctx: OpContext) -> Emitted:
    """q, k, v spikes [N, D] -> spikes [N, D]; heads of D / num_heads channels; the kv split of the core."""
    p, t = ctx.params, ctx.graph.time_steps
    lif, lif_tables = _lif_fields(ctx)
    head_dim = p["D"] // p["HEADS"]
    kv_bits = cpp_types.value_bits(p["N"])  # k^T v counts: at most N
    kv_t = cpp_types.ap_uint(kv_bits)
    parallel = head_dim // p.get("SPLIT", 1)
    where = storage(ctx, t * p["N"] * p["D"] + t * p["D"] * head_dim * kv_bits)
    config = SsaConfig(**lif, word_t=_word(ctx, 1), acc_t=cpp_types.ap_int(ctx.node.attrs["acc_bits"]), kv_t=kv_t,
                       storage=STORAGE[where], tokens=p["N"], dim=p["D"], num_heads=p["HEADS"], head_dim=head_dim,
                       parallel=parallel)
    arrays = (Array("q", t, p["N"] * p["D"], where),
              Array("kv", parallel * kv_bits, t * p["D"] * head_dim // parallel, where),  # reshaped: a word per access
              Array("k", t, p["D"], "auto"), Array("v", t, p["D"], "auto"))
    return Emitted(config, lif_tables, arrays)


@dataclass(frozen=True)
class MaxpoolConfig(KernelConfig):
    """hqflow::maxpool_or (hqflow_spike_ops.h): 3x3, stride 2, padding 1, of spikes."""

    cpp_base: ClassVar[str] = "hqflow::maxpool_config"
    word_t: CType  # ap_uint<T>
    storage: CType  # the line buffer's memory
    channels: int
    in_height: int
    in_width: int
    out_height: int  # (in_height - 1) / 2 + 1
    out_width: int
    bits: int  # of each value: 1 (spikes: an OR) or more (a max per value)
    is_signed: int  # the values two's complement
    kernel_size: int  # the window (attrs); the kernel implements 3, stride 2, padding 1 (a static_assert)
    stride: int
    padding: int


def build_maxpool(ctx: OpContext) -> Emitted:
    """[C, H, W] -> [C, H', W'] (the window in attrs), through a line buffer of 3 rows: of spikes an OR, of
    multi-bit (signed) values a max per value."""
    channels, height, width = ctx.source_shape
    t, source = ctx.graph.time_steps, ctx.inputs[0]
    where = storage(ctx, t * source.bits * 3 * width * channels)
    window = {key: int(ctx.node.attrs[key]) for key in ("kernel_size", "stride", "padding")}
    config = MaxpoolConfig(word_t=_word(ctx, source.bits), storage=STORAGE[where], channels=channels,
                           in_height=height, in_width=width, out_height=ctx.node.shape[1], out_width=ctx.node.shape[2],
                           bits=source.bits, is_signed=int(source.signed), **window)
    return Emitted(config, arrays=(Array("line", t * source.bits, 3 * width * channels, where),))


@dataclass(frozen=True)
class AddConfig(KernelConfig):
    """hqflow::add (hqflow_spike_ops.h): the residual add, elementwise at every step."""

    cpp_base: ClassVar[str] = "hqflow::add_config"
    a_word_t: CType
    b_word_t: CType
    out_word_t: CType
    a_bits: int
    b_bits: int
    out_bits: int  # holds the sum's range
    time_steps: int
    a_signed: int  # a's values two's complement (the membrane shortcut's)
    b_signed: int
    size: int  # elements an image


def build_add(ctx: OpContext) -> Emitted:
    """a + b elementwise at every step, both of the node's shape."""
    first, second = ctx.inputs
    out_bits = cpp_types.value_bits(ctx.node.value_max) + (first.signed or second.signed)  # two's complement
    return Emitted(AddConfig(a_word_t=_word(ctx, first.bits), b_word_t=_word(ctx, second.bits),
                             out_word_t=_word(ctx, out_bits), a_bits=first.bits, b_bits=second.bits,
                             out_bits=out_bits, time_steps=ctx.graph.time_steps, a_signed=int(first.signed),
                             b_signed=int(second.signed), size=ctx.params["SIZE"]))


def build_tokens(ctx: OpContext) -> Emitted:
    """x [C, H, W] -> [H W, C]: its input's stream, channels last, is already the tokens; no process."""
    return Emitted()


@dataclass(frozen=True)
class HeadConfig(WeightRomConfig):
    """hqflow::head (hqflow_head.h): sums over tokens and steps, then the logits."""

    cpp_base: ClassVar[str] = "hqflow::head_config"
    in_word_t: CType  # ap_uint<T * in_t bits>
    sum_t: CType  # the input summed over tokens and steps
    logit_t: CType  # the logits' type (their range)
    time_steps: int
    tokens: int
    in_channels: int
    classes: int
    bias_frac_bits: int  # logits = (acc << bias_frac_bits) + bias_int


def build_head(ctx: OpContext) -> Emitted:
    """x [N, C] summed over tokens and steps -> logits [K]: (acc << bias_frac_bits) + bias_int, in the width
    of their range (attrs.logit_bits)."""
    tokens, channels = ctx.source_shape
    node, x_max = ctx.node, int(ctx.node.attrs["x_max"])
    bias = ctx.graph.tensor(node.name, "bias_int")
    logit_type = cpp_types.ap_int(node.attrs["logit_bits"])
    weights, rom = _weight_fields(ctx)
    sum_t = cpp_types.uint_for(x_max)
    config = HeadConfig(**weights, in_word_t=_word(ctx, ctx.inputs[0].bits), sum_t=sum_t,
                        logit_t=cpp_types.node_type("", ctx.ident), time_steps=ctx.graph.time_steps, tokens=tokens,
                        in_channels=channels, classes=node.shape[0], bias_frac_bits=int(node.attrs["bias_frac_bits"]))
    bias_table = Table(cpp_types.INT64_T, "bias_int", bias, "bias, in logit units")
    arrays = (Array("x_sum", cpp_types.value_bits(x_max), channels, "auto"),
              Array("acc", int(node.attrs["acc_bits"]), node.shape[0], "auto"))
    return Emitted(config, (rom, bias_table), arrays, value_type=logit_type)


@dataclass(frozen=True)
class WbnConfig(WeightRomConfig):
    """hqflow::wbn (hqflow_sdt.h): conv_bn / linear_bn, wlif's window and accumulation, then the requantization
    (acc * m_int + b_int) >> shift to fixed point (no LIF): words of T two's complement values out."""

    cpp_base: ClassVar[str] = "hqflow::wbn_config"
    in_word_t: CType
    out_word_t: CType  # ap_uint<T * out_bits>
    storage: CType
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel_size: int
    padding: int
    lanes: int
    time_steps: int
    out_bits: int
    shift: int


def build_wbn(ctx: OpContext) -> Emitted:
    """conv_bn / linear_bn: hqflow::wbn with the core's geometry and lanes; tables: the ROM, m_int (32-bit), b_int."""
    p, t = ctx.params, ctx.graph.time_steps
    weights, rom = _weight_fields(ctx)
    in_bits, out_bits = ctx.inputs[0].bits, p["OUT_BITS"]
    where = storage(ctx, t * in_bits * p["K"] * p["W"] * p["C"])
    config = WbnConfig(**weights, in_word_t=_word(ctx, in_bits), out_word_t=_word(ctx, out_bits),
                       storage=STORAGE[where], height=p["H"], width=p["W"], in_channels=p["C"], out_channels=p["O"],
                       kernel_size=p["K"], padding=p["PAD"], lanes=p["P"], time_steps=t, out_bits=out_bits,
                       shift=p["SHIFT"])
    tensors = ctx.graph.node_tensors(ctx.node.name)
    tables = (rom, Table(cpp_types.CType("int"), "m_int", tensors["m_int"], "requantization multipliers"),
              Table(cpp_types.INT64_T, "b_int", tensors["b_int"], "requantization offsets (with 2^(shift - 1))"))
    arrays = (Array("line", t * in_bits, p["K"] * p["W"] * p["C"], where),)
    return Emitted(config, tables, arrays)


@dataclass(frozen=True)
class LifStreamConfig(LifConfig):
    """hqflow::lif_stream (hqflow_sdt.h): a LIF alone on a stream of T (signed) values a word."""

    cpp_base: ClassVar[str] = "hqflow::lif_stream_config"
    in_word_t: CType
    out_word_t: CType
    acc_t: CType  # ap_int<in_bits + 1>: one input value
    in_bits: int
    in_signed: int
    size: int


def build_lif(ctx: OpContext) -> Emitted:
    """lif: one channel of LIF tables for every element of its input."""
    lif, tables = _lif_fields(ctx)
    source = ctx.inputs[0]
    is_signed = int(source.signed)
    config = LifStreamConfig(**lif, in_word_t=_word(ctx, source.bits), out_word_t=_word(ctx, 1),
                             acc_t=cpp_types.ap_int(source.bits + 1 - is_signed), in_bits=source.bits, in_signed=is_signed,
                             size=ctx.params["SIZE"])
    return Emitted(config, tables)


@dataclass(frozen=True)
class SdsaConfig(LifConfig):
    """hqflow::sdsa (hqflow_sdt.h): q AND the LIF of the count of k AND v over the tokens."""

    cpp_base: ClassVar[str] = "hqflow::sdsa_config"
    word_t: CType
    acc_t: CType  # a count as the LIF reads it
    count_t: CType
    storage: CType
    tokens: int
    dim: int


def build_sdsa(ctx: OpContext) -> Emitted:
    p, t = ctx.params, ctx.graph.time_steps
    lif, tables = _lif_fields(ctx)
    count_bits = p["COUNT_BITS"]
    where = storage(ctx, t * p["N"] * p["D"])
    config = SdsaConfig(**lif, word_t=_word(ctx, 1), acc_t=cpp_types.ap_int(count_bits + 1),
                        count_t=cpp_types.ap_uint(count_bits), storage=STORAGE[where], tokens=p["N"], dim=p["D"])
    arrays = (Array("q", t, p["N"] * p["D"], where), Array("count", t * count_bits, p["D"], "auto"),
              Array("mask", t, p["D"], "auto"))
    return Emitted(config, tables, arrays)


HLS_OPS: dict[str, HlsOp] = {
    "input": HlsOp(build_input),
    "conv_lif": HlsOp(build_wlif, "wlif", "hqflow_wlif.h"),
    "linear_lif": HlsOp(build_wlif, "wlif", "hqflow_wlif.h"),
    "maxpool": HlsOp(build_maxpool, "maxpool_or", "hqflow_spike_ops.h"),
    "add": HlsOp(build_add, "add", "hqflow_spike_ops.h"),
    "tokens": HlsOp(build_tokens),
    "ssa": HlsOp(build_ssa, "ssa_lif", "hqflow_ssa.h"),
    "head": HlsOp(build_head, "head", "hqflow_head.h"),
    "conv_bn": HlsOp(build_wbn, "wbn", "hqflow_sdt.h"),
    "linear_bn": HlsOp(build_wbn, "wbn", "hqflow_sdt.h"),
    "lif": HlsOp(build_lif, "lif_stream", "hqflow_sdt.h"),
    "sdsa": HlsOp(build_sdsa, "sdsa", "hqflow_sdt.h"),
}


def supported_ops() -> tuple[str, ...]:
    """The ops the HLS backend implements."""
    return tuple(HLS_OPS)


def check_ops() -> None:
    """ValueError naming an op of the DeployGraph (hqflow.ops.OPS) without an HLS_OPS entry, or an entry
    for an op it does not define."""
    check_backend(HLS_OPS, "the HLS backend (hqflow.export.hls.ops.HLS_OPS)")


check_ops()  # at import: a new op without an HLS entry fails here, not in the middle of an export
