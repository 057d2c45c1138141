"""The HLS backend's table over the DeployGraph's ops: op name -> HlsOp (config builder, call template).

Adding an op to the HLS backend: a kernel in hls_templates/kernels/ with its documented default
config struct, its config dataclass in configs.py, a builder here and its entry in HLS_OPS, and
the template of its call, hls_templates/project/ops/<op>.cpp.j2. check_ops() names any op of
hqflow.ops.OPS this table lacks, at import and again before a project is written.
"""

from __future__ import annotations

import math

from hqflow.export.hls import cpp_types
from hqflow.export.hls.configs import (AddConfig, ConvLifConfig, HeadConfig, LinearLifConfig, MaxpoolConfig,
                                       SsaConfig, TokensConfig)
from hqflow.export.hls.rom import pack_rom, rom_codes
from hqflow.export.hls.views import OUTPUT_FRAMES, OUTPUT_LOGITS, Emitted, HlsOp, OpContext, Table
from hqflow.ops import check_backend


def _weight_fields(ctx: OpContext) -> tuple[dict, Table]:
    """A weighted node's WeightRomConfig fields and its ROM table."""
    codes, bits = rom_codes(ctx.graph, ctx.node)
    words = pack_rom(codes, bits)
    lanes = cpp_types.ROM_WORD_BITS // bits
    table = Table(cpp_types.ROM_WORD_T, "w", words, f"weights: {ctx.node.attrs['format']}, {bits}-bit codes, "
                  f"{lanes} per word; rows = inputs, lanes = outputs")
    fields = {"in_t": ctx.inputs[0].qualified_type, "acc_t": cpp_types.ap_int(ctx.node.attrs["acc_bits"]),
              "weight": cpp_types.weight_scheme(ctx.node.attrs["format"], ctx.node.attrs.get("zero_point")),
              "row_words": int(words.shape[1]), "reuse_factor": ctx.options.reuse_factor,
              "parallel": min(codes.shape[1], lanes)}  # outputs updated per ROM word
    return fields, table


def _lif_fields(ctx: OpContext) -> tuple[dict, tuple[Table, ...]]:
    """A spiking node's LifConfig fields and its LIF tables (bias_int, thr_int, sign per channel)."""
    tables = tuple(Table(ctype, field, ctx.graph.tensor(ctx.node.name, field), "LIF: " + field)
                   for field, ctype in (("bias_int", cpp_types.INT64_T), ("thr_int", cpp_types.INT64_T),
                                        ("sign", cpp_types.INT8_T)))
    fields = {"v_t": cpp_types.ap_int(ctx.node.attrs["v_bits"]), "frac_bits": int(ctx.node.attrs["frac_bits"]),
              "time_steps": ctx.graph.time_steps}
    return fields, tables


def _window(ctx: OpContext) -> dict[str, int]:
    """A windowed node's kernel_size, stride and padding (attrs)."""
    return {key: int(ctx.node.attrs[key]) for key in ("kernel_size", "stride", "padding")}


def build_input(ctx: OpContext) -> Emitted:
    """The input [C, H, W]: the top function's frames[t]; no kernel, no config."""
    return Emitted()


def build_conv_lif(ctx: OpContext) -> Emitted:
    """x [C, H, W] -> spikes [O, H, W]; the membrane [H][W][O] (channels innermost, as the kernel updates it)."""
    channels, height, width = ctx.source_shape
    weights, rom = _weight_fields(ctx)
    lif, lif_tables = _lif_fields(ctx)
    out_channels = ctx.node.shape[0]
    config = ConvLifConfig(**weights, **lif, in_channels=channels, out_channels=out_channels, height=height,
                           width=width, **_window(ctx))
    return Emitted(config, (rom, *lif_tables), membrane_shape=(height, width, out_channels))


def build_linear_lif(ctx: OpContext) -> Emitted:
    """x [N, C] -> spikes [N, O]; the membrane [N][O]."""
    tokens, channels = ctx.source_shape
    weights, rom = _weight_fields(ctx)
    lif, lif_tables = _lif_fields(ctx)
    config = LinearLifConfig(**weights, **lif, tokens=tokens, in_channels=channels, out_channels=ctx.node.shape[-1])
    return Emitted(config, (rom, *lif_tables), membrane_shape=tuple(ctx.node.shape))


def build_ssa(ctx: OpContext) -> Emitted:
    """q, k, v spikes [N, D] -> spikes [N, D]; heads of D / num_heads channels; the membrane [N][D]."""
    tokens, dim = ctx.node.shape
    heads = int(ctx.node.attrs["num_heads"])
    lif, lif_tables = _lif_fields(ctx)
    config = SsaConfig(**lif, acc_t=cpp_types.ap_int(ctx.node.attrs["acc_bits"]), kv_t=cpp_types.uint_for(tokens),
                       tokens=tokens, dim=dim, num_heads=heads, head_dim=dim // heads, parallel=dim // heads)
    return Emitted(config, lif_tables, membrane_shape=tuple(ctx.node.shape))


def build_maxpool(ctx: OpContext) -> Emitted:
    """spikes [C, H, W] -> spikes [C, H', W'] (the window in attrs)."""
    channels, height, width = ctx.source_shape
    return Emitted(MaxpoolConfig(channels=channels, in_height=height, in_width=width,
                                 out_height=ctx.node.shape[1], out_width=ctx.node.shape[2], **_window(ctx)))


def build_add(ctx: OpContext) -> Emitted:
    """a + b elementwise, both of the node's shape, over prod(shape) values."""
    first, second = ctx.inputs
    return Emitted(AddConfig(a_t=first.qualified_type, b_t=second.qualified_type,
                             out_t=cpp_types.node_type("", ctx.ident), size=math.prod(ctx.node.shape)))


def build_tokens(ctx: OpContext) -> Emitted:
    """x [C, H, W] -> [H W, C], the values unchanged."""
    channels, height, width = ctx.source_shape
    return Emitted(TokensConfig(in_t=ctx.inputs[0].qualified_type, channels=channels, height=height, width=width))


def build_head(ctx: OpContext) -> Emitted:
    """x [N, C] summed over tokens and steps -> logits [K]: (acc << bias_frac_bits) + bias_int, in the width
    of their range (attrs.logit_bits)."""
    tokens, channels = ctx.source_shape
    node, x_max = ctx.node, int(ctx.node.attrs["x_max"])
    bias = ctx.graph.tensor(node.name, "bias_int")
    logit_type = cpp_types.ap_int(node.attrs["logit_bits"])
    weights, rom = _weight_fields(ctx)
    config = HeadConfig(**weights, sum_t=cpp_types.uint_for(x_max), logit_t=cpp_types.node_type("", ctx.ident),
                        tokens=tokens, in_channels=channels, classes=node.shape[0],
                        bias_frac_bits=int(node.attrs["bias_frac_bits"]))
    bias_table = Table(cpp_types.INT64_T, "bias_int", bias, "bias, in logit units")
    return Emitted(config, (bias_table, rom), value_type=logit_type)


HLS_OPS: dict[str, HlsOp] = {
    "input": HlsOp(build_input, "ops/input.cpp.j2", output=OUTPUT_FRAMES),
    "conv_lif": HlsOp(build_conv_lif, "ops/conv_lif.cpp.j2"),
    "linear_lif": HlsOp(build_linear_lif, "ops/linear_lif.cpp.j2"),
    "maxpool": HlsOp(build_maxpool, "ops/maxpool.cpp.j2"),
    "add": HlsOp(build_add, "ops/add.cpp.j2"),
    "tokens": HlsOp(build_tokens, "ops/tokens.cpp.j2"),
    "ssa": HlsOp(build_ssa, "ops/ssa.cpp.j2"),
    "head": HlsOp(build_head, "ops/head.cpp.j2", output=OUTPUT_LOGITS),
}


def supported_ops() -> tuple[str, ...]:
    """The ops the HLS backend implements."""
    return tuple(HLS_OPS)


def check_ops() -> None:
    """ValueError naming an op of the DeployGraph (hqflow.ops.OPS) without an HLS_OPS entry, or an entry
    for an op it does not define."""
    check_backend(HLS_OPS, "the HLS backend (hqflow.export.hls.ops.HLS_OPS)")


check_ops()  # at import: a new op without an HLS entry fails here, not in the middle of an export
