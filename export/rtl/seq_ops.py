"""The layer-sequential top's cores, one `SeqOp` per DeployGraph op: the Verilog module, its parameters
and memory files, the buffer it writes, and its cycle formula (cycles of one time step, start edge to
done edge, as the core's Verilog header documents it and `hqflow rtlsim` checks). `export/rtl/top.py`
wires them; no code branches on an op's name (`SEQ_OPS` is checked against hqflow.ops.OPS at import).
Their resources are hqflow/fpga_cores.py's (`FPGA_CORES`, the same ops; the search evaluates them
without a graph, so they live in the core package).

    op          module              buffer written (values a word, bits)       cycles of one step (G = ceil(O / P))
    input       (none: the loader)  the frame, 1, bits of max_count            -
    conv_lif    hqflow_conv_lif     P spikes                                   C H W + nnz (9 G + 1) + H W G + 4
    linear_lif  hqflow_linear_lif   P spikes                                   N (C + G + 2) + nnz (G + 1) + 2
    maxpool     hqflow_maxpool      1 spike                                    C H W + floor((W - 1) / 2) + 2
    add         hqflow_add          1 sum, bits of value_max                   SIZE + 2
    tokens      (none: an alias)    its input's buffer                         (hqflow_tokens.v alone: C H W + 2)
    ssa         hqflow_ssa          1 spike                                    4 N D + HEADS + 2
    head        hqflow_head         (none: it streams the logits)              N C + 1, the last step N C + C G + CLASSES + 2
nnz: the nonzero values of the core's input in the step (the weighted cores are event-driven).
"""

from __future__ import annotations

import math
import re

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.rtl import memfiles
from hqflow.ir import DeployGraph, Node
from hqflow.ops import check_backend, common, implementation

__all__ = ["SCHEME_CODE", "SEQ_MODULES", "SEQ_OPS", "SeqOp", "check_window", "choose_pack_lanes", "ident",
           "seq_op", "ssa_lif_consts", "value_bits"]

SCHEME_CODE = {"uniform": 0, "po2": 1, "fp32": 2}


def ident(name: str) -> str:
    """A node's Verilog identifier (the same in both architectures)."""
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def value_bits(value_max: int) -> int:
    """Bits of the unsigned values 0..value_max (at least 1)."""
    return max(1, int(value_max).bit_length())


def hex_literal(value: int, width: int) -> str:
    """`value` as a `width`-bit Verilog literal (two's complement)."""
    return f"{width}'h{int(value) % (1 << width):x}"


def choose_pack_lanes(bits: int, outputs: int, requested: int) -> int:
    """P for a weighted node feeding a buffer: the largest power of two <= `requested` that its ROM
    word allows (memfiles.allowed_lanes) and that divides `outputs`."""
    return max(p for p in memfiles.allowed_lanes(bits) if p <= requested and p & (p - 1) == 0 and outputs % p == 0)


def check_window(node: Node, kernel: int, stride: int, padding: int, what: str) -> None:
    """UserError unless `node`'s window (attrs kernel_size, stride, padding) is the one the core implements."""
    got = tuple(int(node.attrs.get(key, default)) for key, default in
                (("kernel_size", kernel), ("stride", stride), ("padding", padding)))
    if got != (kernel, stride, padding):
        raise UserError(f"node {node.name}: {node.op} with kernel {got[0]}, stride {got[1]}, padding {got[2]}; "
                        f"the RTL {what} core implements kernel {kernel}, stride {stride}, padding {padding}")


def ssa_lif_consts(graph: DeployGraph, node: Node) -> numerics.LifConsts:
    """The attention LIF's constants, checked to be one channel's (both architectures' ssa cores have one)."""
    consts = common.lif_consts(node.attrs, graph.node_tensors(node.name))
    if len({int(v) for v in consts.bias_int}) > 1 or len({int(v) for v in consts.thr_int}) > 1 \
            or len({int(v) for v in consts.sign}) > 1:
        raise UserError(f"node {node.name}: the attention LIF has per-channel constants; the RTL ssa core has one")
    return consts


class SeqOp:
    """An op's place in the sequential top. `build(graph, node, reads, lanes)` checks the node and returns
    what the top needs: `module`, `params` (Verilog), `lanes` (P), `files` (memory file name -> text),
    `consts` (Verilog literals of the instance), and its buffer: `bits` of its values (None: it writes
    none) and `pack` values a word (default 1). reads: the buffers of its inputs (their `bits`), in
    order; lanes: the most output channels a cycle. `cycles(params, nonzero, last)`: one step's."""

    op = ""
    module = ""
    has_core = True
    frame = False  # the top's input: the loader writes its buffer from the input stream, one frame a step
    alias = False  # no buffer of its own: its readers read its input's (the identity in the RTL layout)
    logits = False  # the top's output: the last core, streaming the logits (out_valid ...) at the last step
    single_layer = False  # a core the single-layer testbench (layer.py) runs alone

    def build(self, graph: DeployGraph, node: Node, reads: list, lanes: int) -> dict:
        raise NotImplementedError

    def cycles(self, params: dict, nonzero: int, last: bool) -> int:
        """Cycles of the core in one time step; params: its Verilog parameters; nonzero: the nonzero
        values of its input in the step; last: the last step."""
        raise ValueError(f"no cycle formula for op {self.op!r}: it has no core")

    def layer_params(self, graph: DeployGraph, node: Node, parallel: int, files: str) -> dict:
        """Verilog parameters of the node's core alone with P = parallel lanes, its memory files named
        `files` + weights.mem, bias.mem, thr.mem, sign.mem (layer.py)."""
        singles = " or ".join(op for op, seq in SEQ_OPS.items() if seq.single_layer)
        raise UserError(f"node {node.name}: op {node.op}, expected {singles} for a single-layer core")


class Input(SeqOp):
    """The frames: [C, H, W] event counts, read by the loader from the input stream (no core)."""

    op = "input"
    has_core = False
    frame = True

    def build(self, graph, node, reads, lanes):
        if len(node.shape) != 3:
            raise UserError(f"node {node.name}: input of shape {node.shape}; the RTL top reads [C, H, W] frames")
        return {"bits": value_bits(node.value_max)}


class Tokens(SeqOp):
    """[C][H][W] -> [H*W][C]: the identity in the channels-last layout (no core in the top; the
    standalone hqflow_tokens.v of the spike-ops testbench has the cycle formula)."""

    op = "tokens"
    has_core = False
    alias = True

    def build(self, graph, node, reads, lanes):
        if len(graph.node(node.inputs[0]).shape) != 3:
            raise UserError(f"node {node.name}: tokens of a {graph.node(node.inputs[0]).shape} input")
        return {}

    def cycles(self, params, nonzero, last):
        p = params
        return p["C"] * p["H"] * p["W"] + 2


class WeightedLif(SeqOp):
    """conv_lif and linear_lif: P output channels a cycle from a weight ROM, then the integer LIF; the
    buffer holds P spikes a word (P divides the channels, so that element i is in word i / P)."""

    single_layer = True

    def outputs(self, node: Node) -> int:
        """O, the output channels."""
        raise NotImplementedError

    def geometry(self, graph: DeployGraph, node: Node) -> dict:
        """The core's shape parameters (after the common ones)."""
        raise NotImplementedError

    def check(self, node: Node) -> None:
        """The node is one the core implements (UserError otherwise)."""

    def layer_params(self, graph, node, parallel, files):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        params = {"P": parallel, "BITS": numerics.rom_code_bits(fmt), "SCHEME": SCHEME_CODE[fmt.scheme],
                  "ZERO_LEVEL": int(fmt.zero_level), "ZP": int(node.attrs.get("zero_point", 0)),
                  "X_BITS": value_bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
                  "V_BITS": int(node.attrs["v_bits"]), "F": int(node.attrs["frac_bits"]),
                  "T": int(node.attrs["frac_bits"]) - int(node.attrs["bias_frac_bits"])}
        params.update(self.geometry(graph, node))
        for key, file in (("ROM", "weights"), ("BIAS", "bias"), ("THR", "thr"), ("SIGN", "sign")):
            params[f"{key}_FILE"] = f'"{files}{file}.mem"'
        return params

    def build(self, graph, node, reads, lanes):
        bits = numerics.rom_code_bits(numerics.Candidate.parse(node.attrs["format"]))
        parallel = choose_pack_lanes(bits, self.outputs(node), lanes)
        name = ident(node.name)
        x_bits = value_bits(node.attrs["x_max"])
        if reads[0].bits > x_bits:
            raise UserError(f"node {node.name}: its input holds {reads[0].bits}-bit values, attrs.x_max "
                            f"{node.attrs['x_max']} only {x_bits} bits; export the run again")
        self.check(node)
        params = self.layer_params(graph, node, parallel, f"mem/{name}_")
        files = {f"{name}_weights.mem": memfiles.rom_lines(graph, node, parallel)[0]}
        for key, text in memfiles.lif_tables(graph, node, parallel).items():
            files[f"{name}_{key}.mem"] = text
        return {"module": self.module, "params": params, "lanes": parallel, "files": files, "pack": parallel,
                "bits": 1}


class ConvLif(WeightedLif):
    """hqflow_conv_lif.v: 3x3, stride 1, padding 1 over [C, H, W] (channels last)."""

    op = "conv_lif"
    module = "hqflow_conv_lif"

    def outputs(self, node):
        return node.shape[0]

    def geometry(self, graph, node):
        c, h, w = graph.node(node.inputs[0]).shape
        return {"C": c, "H": h, "W": w, "O": self.outputs(node)}

    def check(self, node):
        check_window(node, 3, 1, 1, "conv")

    def cycles(self, params, nonzero, last):
        p = params
        groups = -(-p["O"] // p["P"])
        return p["C"] * p["H"] * p["W"] + nonzero * (9 * groups + 1) + p["H"] * p["W"] * groups + 4


class LinearLif(WeightedLif):
    """hqflow_linear_lif.v: [N, C] tokens, one token at a time."""

    op = "linear_lif"
    module = "hqflow_linear_lif"

    def outputs(self, node):
        return node.shape[1]

    def geometry(self, graph, node):
        n, c = graph.node(node.inputs[0]).shape
        return {"N": n, "C": c, "O": self.outputs(node)}

    def cycles(self, params, nonzero, last):
        p = params
        groups = -(-p["O"] // p["P"])
        return p["N"] * (p["C"] + groups + 2) + nonzero * (groups + 1) + 2


class MaxPool(SeqOp):
    """hqflow_maxpool.v: 3x3, stride 2, padding 1, an OR of spikes."""

    op = "maxpool"
    module = "hqflow_maxpool"

    def build(self, graph, node, reads, lanes):
        check_window(node, 3, 2, 1, "maxpool")
        if reads[0].bits != 1:
            raise UserError(f"node {node.name}: maxpool of {reads[0].bits}-bit values; the RTL core pools spikes")
        c, h, w = graph.node(node.inputs[0]).shape
        return {"module": self.module, "params": {"C": c, "H": h, "W": w}, "bits": 1}

    def cycles(self, params, nonzero, last):
        p = params
        return p["C"] * p["H"] * p["W"] + (p["W"] - 1) // 2 + 1 + 1


class Add(SeqOp):
    """hqflow_add.v: the residual add, elementwise."""

    op = "add"
    module = "hqflow_add"

    def build(self, graph, node, reads, lanes):
        return {"module": self.module, "bits": value_bits(node.value_max),
                "params": {"SIZE": math.prod(node.shape), "A_BITS": reads[0].bits, "B_BITS": reads[1].bits,
                           "OUT_BITS": value_bits(node.value_max)}}

    def cycles(self, params, nonzero, last):
        return params["SIZE"] + 2


class Ssa(SeqOp):
    """hqflow_ssa.v: spiking self-attention and its LIF (one channel's constants, as literals)."""

    op = "ssa"
    module = "hqflow_ssa"

    def build(self, graph, node, reads, lanes):
        tokens, dim = node.shape
        consts = ssa_lif_consts(graph, node)
        v_bits = int(node.attrs["v_bits"])
        sign = {1: "2'b01", -1: "2'b11", 0: "2'b00"}[int(consts.sign[0])]
        return {"module": self.module, "bits": 1,
                "params": {"N": tokens, "D": dim, "HEADS": int(node.attrs["num_heads"]),
                           "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": v_bits, "F": int(node.attrs["frac_bits"]),
                           "T": int(node.attrs["frac_bits"]) - int(node.attrs["bias_frac_bits"])},
                "consts": {"bias": hex_literal(consts.bias_int[0], v_bits),
                           "thr": hex_literal(consts.thr_int[0], v_bits), "sign": sign}}

    def cycles(self, params, nonzero, last):
        p = params
        return 4 * p["N"] * p["D"] + p["HEADS"] + 2


class Head(SeqOp):
    """hqflow_head.v: sums its [N, C] input over tokens and steps, then at the last step the logits,
    P classes a cycle; it writes no buffer (the top streams its logits)."""

    op = "head"
    module = "hqflow_head"
    logits = True

    def build(self, graph, node, reads, lanes):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        bits = numerics.rom_code_bits(fmt)
        parallel = memfiles.choose_lanes(bits, lanes)
        name = ident(node.name)
        tokens, channels = graph.node(node.inputs[0]).shape
        logit_bits = int(node.attrs["logit_bits"])
        bias = graph.tensor(node.name, "bias_int")
        files = {f"{name}_weights.mem": memfiles.rom_lines(graph, node, parallel)[0],
                 f"{name}_bias.mem": memfiles.hex_lines([int(b) % (1 << logit_bits) for b in bias], logit_bits)}
        params = {"N": tokens, "C": channels, "CLASSES": node.shape[0], "P": parallel, "BITS": bits,
                  "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                  "ZP": int(node.attrs.get("zero_point", 0)), "IN_BITS": reads[0].bits,
                  "SUM_BITS": value_bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
                  "LOGIT_BITS": logit_bits, "BF": int(node.attrs["bias_frac_bits"]),
                  "ROM_FILE": f'"mem/{name}_weights.mem"', "BIAS_FILE": f'"mem/{name}_bias.mem"'}
        return {"module": self.module, "params": params, "lanes": parallel, "files": files, "bits": None}

    def cycles(self, params, nonzero, last):
        p = params
        groups = -(-p["CLASSES"] // p["P"])
        return p["N"] * p["C"] + (p["C"] * groups + p["CLASSES"] + 2 if last else 1)


# op -> its core; the template of each op's instance is project/top_ops/<op>.v.j2
SEQ_OPS: dict[str, SeqOp] = {seq.op: seq for seq in (Input(), ConvLif(), LinearLif(), MaxPool(), Add(), Tokens(),
                                                     Ssa(), Head())}
check_backend(SEQ_OPS, "the sequential RTL top (export/rtl/seq_ops.py SEQ_OPS)", complete=False)
SEQ_MODULES: dict[str, SeqOp] = {seq.module: seq for seq in SEQ_OPS.values() if seq.has_core}  # module -> op


def seq_op(node) -> SeqOp:
    """The sequential core of `node`'s op (anything with .name and .op); UserError naming the node and
    the op for an op hqflow.ops does not define or the sequential architecture lacks (use the streaming one)."""
    return implementation(SEQ_OPS, node, "the layer-sequential architecture (--arch sequential; the streaming "
                          "architecture implements every op)")
