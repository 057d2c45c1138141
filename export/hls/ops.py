"""The HLS backend's table over the DeployGraph's ops: op name -> HlsOp (config builder, call template).

Each builder reads the node's core in the schedule (export/rtl/stream.py, the one the RTL top renders):
its geometry, its folding (lanes P, the attention's kv split) and its placement (ULTRA: its large RAM in
UltraRAM); it gives the kernel's typed config, the node's tables and the arrays the kernel declares
(the memory account). Adding an op to the HLS backend: a kernel in hls_templates/kernels/ with its
documented default config struct, its config dataclass in configs.py, a builder here and its entry in
HLS_OPS, and the template of its process call, hls_templates/project/ops/<op>.cpp.j2. check_ops()
names any op of hqflow.ops.OPS this table lacks, at import and again before a project is written.
"""

from __future__ import annotations

from hqflow.export.hls import cpp_types
from hqflow.export.hls.configs import AddConfig, HeadConfig, MaxpoolConfig, SsaConfig, WlifConfig
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


def build_maxpool(ctx: OpContext) -> Emitted:
    """spikes [C, H, W] -> spikes [C, H', W'] (the window in attrs), through a line buffer of 3 rows."""
    channels, height, width = ctx.source_shape
    t = ctx.graph.time_steps
    where = storage(ctx, t * 3 * width * channels)
    window = {key: int(ctx.node.attrs[key]) for key in ("kernel_size", "stride", "padding")}
    config = MaxpoolConfig(word_t=_word(ctx, 1), storage=STORAGE[where], channels=channels, in_height=height,
                           in_width=width, out_height=ctx.node.shape[1], out_width=ctx.node.shape[2], **window)
    return Emitted(config, arrays=(Array("line", t, 3 * width * channels, where),))


def build_add(ctx: OpContext) -> Emitted:
    """a + b elementwise at every step, both of the node's shape."""
    first, second = ctx.inputs
    out_bits = cpp_types.value_bits(ctx.node.value_max)
    return Emitted(AddConfig(a_word_t=_word(ctx, first.bits), b_word_t=_word(ctx, second.bits),
                             out_word_t=_word(ctx, out_bits), a_bits=first.bits, b_bits=second.bits,
                             out_bits=out_bits, time_steps=ctx.graph.time_steps, size=ctx.params["SIZE"]))


def build_tokens(ctx: OpContext) -> Emitted:
    """x [C, H, W] -> [H W, C]: its input's stream, channels last, is already the tokens; no process."""
    return Emitted()


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
    return Emitted(config, (bias_table, rom), arrays, value_type=logit_type)


HLS_OPS: dict[str, HlsOp] = {
    "input": HlsOp(build_input, None),
    "conv_lif": HlsOp(build_wlif, "ops/wlif.cpp.j2"),
    "linear_lif": HlsOp(build_wlif, "ops/wlif.cpp.j2"),
    "maxpool": HlsOp(build_maxpool, "ops/maxpool.cpp.j2"),
    "add": HlsOp(build_add, "ops/add.cpp.j2"),
    "tokens": HlsOp(build_tokens, None),
    "ssa": HlsOp(build_ssa, "ops/ssa.cpp.j2"),
    "head": HlsOp(build_head, "ops/head.cpp.j2"),
}


def supported_ops() -> tuple[str, ...]:
    """The ops the HLS backend implements."""
    return tuple(HLS_OPS)


def check_ops() -> None:
    """ValueError naming an op of the DeployGraph (hqflow.ops.OPS) without an HLS_OPS entry, or an entry
    for an op it does not define."""
    check_backend(HLS_OPS, "the HLS backend (hqflow.export.hls.ops.HLS_OPS)")


check_ops()  # at import: a new op without an HLS entry fails here, not in the middle of an export
