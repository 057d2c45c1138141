"""The weighted ops' streaming core (hqflow_stream_wlif.v): conv_lif and linear_lif, their parameters,
memory files, cycle formula (the LIF unit beside the accumulation), folding hooks and hardware terms."""

from __future__ import annotations

import math

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.rtl import memfiles
from hqflow.export.rtl.stream_base import (MAX_LIF_CHUNKS, MAX_STREAM_LANES, StreamOp, ident, lane_dsp,
                                           mul_latency, selects, value_bits)
from hqflow.export.rtl.stream_memories import Memory, memory_table, window_counts, window_memories
from hqflow.export.rtl.top import SCHEME_CODE, _check_window
from hqflow.ir import DeployGraph, Node
from hqflow.resources import rom_tail

__all__ = ["WEIGHTED_OPS", "ConvLif", "LinearLif", "WeightedLif", "rom_order"]


class WeightedLif(StreamOp):
    """conv_lif (3x3, stride 1, padding 1) and linear_lif (a 1x1 window over the tokens as an N x 1
    image): hqflow_stream_wlif.v."""

    module = "hqflow_stream_wlif"
    ultra_ram = True
    lut_memories = True
    lut_terms = ("fixed", "acc", "lif", "membrane", "words", "window", "decode", "products", "select")
    ff_terms = ("fixed", "registers", "pipeline", "window")  # the datapath's register bits counted; the list walk

    def _geometry(self, graph: DeployGraph, node: Node) -> dict:
        """H, W, C of its input image, O outputs, K the window, PAD its padding."""
        raise NotImplementedError

    def _per_pixel(self, words: np.ndarray) -> np.ndarray:
        """[B, H, W]: nonzero input elements per pixel, from words [B, ...] (nonzero at some step)."""
        raise NotImplementedError

    def lane_choices(self, graph, node, lanes):
        """Powers of two up to `lanes`, none beyond the first that covers every output. (The core takes
        any P: a ROM line is one lane group's codes. Measured on the demo at --target-fps 3600, any P
        folds every core to just within the interval and the latency rises, 104,442 cycles against
        85,150, for an estimated 9 % fewer LUTs.)"""
        outputs = self._geometry(graph, node)["O"]
        powers = [1 << b for b in range(min(lanes, MAX_STREAM_LANES).bit_length()) if 1 << b <= lanes]
        return [p for p in powers if p < outputs] + [p for p in powers if p >= outputs][:1]

    def params(self, graph, node, inputs, lanes, lut_memories: bool = True):
        """Its Verilog parameters; with lut_memories, ROM_TAIL: the weight ROM's last lines held in LUTs,
        where hqflow.resources.rom_tail finds that cheaper than the block RAM they would take (0: none),
        and LIST_LUTRAM 1: the line buffer's lists of nonzero elements in LUT RAM."""
        fmt = numerics.Candidate.parse(node.attrs["format"])
        x_bits = value_bits(node.attrs["x_max"])
        if inputs and inputs[0].bits > x_bits:
            raise UserError(f"node {node.name}: its input holds {inputs[0].bits}-bit values, attrs.x_max "
                            f"{node.attrs['x_max']} only {x_bits} bits; export the run again")
        name = ident(node.name)
        lanes, lif_lanes = lanes if isinstance(lanes, tuple) else (lanes, lanes)
        params = {**self._geometry(graph, node), "P": lanes, "LIF_LANES": lif_lanes,
                  "BITS": numerics.rom_code_bits(fmt),
                  "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                  "ZP": int(node.attrs.get("zero_point", 0)), "X_BITS": x_bits, "X_MAX": int(node.attrs["x_max"]),
                  "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": int(node.attrs["v_bits"]),
                  "F": int(node.attrs["frac_bits"]), "T": graph.time_steps}
        for key, file in (("ROM", "weights"), ("CHARGE", "charge"), ("FIRE", "fire"), ("NEG", "neg")):
            params[f"{key}_FILE"] = f'"mem/{name}_{file}.mem"'
        rom = self.memories(params)[0]
        params["ROM_TAIL"] = rom_tail(rom.width, rom.depth, memory_table()) if lut_memories else 0
        params["LIST_LUTRAM"] = int(lut_memories)
        # products a DSP multiplier would not take: a pipelined tree in LUTs (hqflow_mul)
        params["MUL_TREE"] = int(lane_dsp(params["SCHEME"], params["BITS"], x_bits, params["X_MAX"]) == 0)
        if params["ROM_TAIL"]:
            params["ROM_TAIL_FILE"] = f'"mem/{name}_weights_tail.mem"'
        return params

    def build(self, graph, node, inputs, lanes, lut_memories: bool = True):
        params = self.params(graph, node, inputs, lanes, lut_memories)
        name = ident(node.name)
        lanes, lif_lanes = params["P"], params["LIF_LANES"]
        lines = memfiles.group_lines(graph, node, lanes)[0].splitlines(keepends=True)
        lines = [lines[k] for k in rom_order(params)]
        head = len(lines) - params["ROM_TAIL"]
        files = {f"{name}_weights.mem": "".join(lines[:head])}
        if params["ROM_TAIL"]:
            files[f"{name}_weights_tail.mem"] = "".join(lines[head:])
        for key, text in memfiles.lif_step_tables(graph, node, lif_lanes).items():
            files[f"{name}_{key}.mem"] = text
        return {"params": params, "files": files, "lanes": lanes, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        """The header's formula: per output row 1 + (T M + 3) + the row's groups, the first A + 1, the
        others max(A + 1, T M + 3) (the LIF unit of the group before still busy), A = 3 K + NNZ_px + 2 +
        mul_latency (multi-bit inputs' products).
        nnz: per output pixel the nonzero elements of its window ([HO WO], row-major), or their sum over
        the image (spread evenly), None: every element nonzero."""
        p = params
        ho, wo = p["H"] + 2 * p["PAD"] - p["K"] + 1, p["W"] + 2 * p["PAD"] - p["K"] + 1
        groups = -(-p["O"] // p["P"])
        lif = time_steps * (p["P"] // p.get("LIF_LANES", p["P"])) + 3  # the LIF unit's cycles a group
        if nnz is None:  # every element nonzero: each window's taps inside the image, C elements each
            nnz = window_counts(np.full((1, p["H"], p["W"]), p["C"]), p["K"], p["PAD"])
        per_pixel = np.broadcast_to(np.asarray(nnz, dtype=np.float64).reshape(-1) / (1 if np.ndim(nnz) else ho * wo),
                                    (ho * wo,))
        work = 3 * p["K"] + per_pixel.reshape(ho, wo) + 3 + mul_latency(p.get("X_BITS", 1), p.get("X_MAX"))  # A + 1 per pixel
        rows = groups * np.maximum(work, lif).sum(axis=1) + work[:, 0] - np.maximum(work[:, 0], lif)
        return float(np.sum(rows + 1 + lif))

    def cycle_params(self, graph, node, inputs, lanes):
        x_max = int(node.attrs["x_max"])
        return {**self._geometry(graph, node), "P": lanes, "X_BITS": value_bits(x_max), "X_MAX": x_max}

    def lif_lanes(self, params, time_steps, nnz, target):
        """P / chunks for the most chunks (up to MAX_LIF_CHUNKS passes a step) that still meet `target`:
        the LIF is the widest adder of the core, and its unit works while the next group accumulates."""
        lanes = params["P"]
        fewest = lanes
        for chunks in range(2, MAX_LIF_CHUNKS + 1):
            if lanes % chunks == 0 and math.ceil(self.cycles({**params, "LIF_LANES": lanes // chunks}, time_steps,
                                                             nnz)) <= target:
                fewest = lanes // chunks
        return fewest

    def memories(self, params):
        p = params
        lif, groups = p["LIF_LANES"], -(-p["O"] // p["P"])
        tables = groups * (p["P"] // lif)
        rows = p["K"] * p["K"] * p["C"]
        return [Memory("weights", p["P"] * p["BITS"], rows * groups, True, tail=p.get("ROM_TAIL", 0)),  # a group a line
                Memory("charge", lif * p["V_BITS"], tables, True), Memory("fire", lif * (p["V_BITS"] + 3), tables, True),
                Memory("neg", lif, tables, True),
                *window_memories(p, p["K"] + 1, p["T"] * p["X_BITS"], lists=True)]

    def terms(self, params):
        """accumulators (P x T x ACC: adder and register, the LIF unit's copy and its chunk multiplexer),
        the LIF (LIF_LANES x V: charge, fire, reset), the membranes (P x V), the spike words (P x T: the
        group's and the output bank), the walk over the column's lists (K rows of counts and list
        entries, clog2(C + 1) bits each: their registers and multiplexers), the lanes' weight decode
        (P x BITS) and, for multi-bit inputs that stay out of DSP48s, the products in LUTs
        (P x T x X_BITS x BITS) or the 0 / w / 2 w selects (P x T x ACC); for the FFs, the register bits
        of the datapath together (one coefficient: the terms above scale alike at a fixed T) and those of
        its pipeline (the codes read, the LIF unit's chunk, I and D, the pipelined products' registers).
        P counts the live lanes only (min(P, O))."""
        p = params
        lanes = min(p["P"], p["O"])  # lanes past the outputs are dead in every group: synthesis removes them
        select = selects(p["X_BITS"], p.get("X_MAX"))
        in_luts = p["X_BITS"] > 1 and not select and not lane_dsp(p["SCHEME"], p["BITS"], p["X_BITS"])
        acc, membrane, words = lanes * p["T"] * p["ACC_BITS"], lanes * p["V_BITS"], lanes * p["T"]
        lif = min(p["LIF_LANES"], lanes)
        latency = mul_latency(p["X_BITS"], p.get("X_MAX"))  # the products' registers: about ACC a lane and step each
        pipeline = lanes * p["BITS"] + lif * (2 * p["V_BITS"] + 3 + p["ACC_BITS"]) + acc * latency
        return {"fixed": 1.0, "acc": acc, "lif": lif * p["V_BITS"],
                "membrane": membrane, "words": words, "window": p["K"] * p["C"].bit_length(), "decode": lanes * p["BITS"],
                "products": lanes * p["T"] * p["X_BITS"] * p["BITS"] if in_luts else 0.0,
                "select": lanes * p["T"] * p["ACC_BITS"] if select else 0.0,
                "registers": 2 * acc + membrane + 2 * words,  # both accumulators, membranes, words and bank
                "pipeline": pipeline}

    def dsp(self, params):
        lanes = min(params["P"], params["O"])
        return lanes * params["T"] * lane_dsp(params["SCHEME"], params["BITS"], params["X_BITS"], params.get("X_MAX"))

    def nnz(self, graph, node, x):
        """Per sample and output pixel (row-major), the nonzero input elements of its window: [B, HO WO]."""
        g = self._geometry(graph, node)
        per_pixel = self._per_pixel(np.asarray(x != 0).any(axis=0)).astype(np.int64)
        return window_counts(per_pixel, g["K"], g["PAD"]).reshape(len(per_pixel), -1)


def rom_order(params: dict) -> np.ndarray:
    """The weight ROM's lines as the core reads them: line ((i K + j) G + g) C + c holds tap (c, i, j) of
    lane group g (channels innermost: an element's line is a base per (i, j, g) plus its channel), which
    is line ((c K + i) K + j) G + g of memfiles.group_lines (numerics.rom's row order, G lines a row)."""
    k, c, g = params["K"], params["C"], -(-params["O"] // params["P"])
    return np.arange(c * k * k * g).reshape(c, k, k, g).transpose(1, 2, 3, 0).reshape(-1)


class ConvLif(WeightedLif):
    """conv_lif: 3x3, stride 1, padding 1 over a [C, H, W] input."""

    def _geometry(self, graph, node):
        _check_window(node, 3, 1, 1, "conv")
        c, h, w = graph.node(node.inputs[0]).shape
        return {"H": h, "W": w, "C": c, "O": node.shape[0], "K": 3, "PAD": 1}

    def _per_pixel(self, words):
        return words.sum(axis=1)  # [B, C, H, W] -> [B, H, W]


class LinearLif(WeightedLif):
    """linear_lif: a 1x1 window over the [N, C] tokens as an N x 1 image."""

    def _geometry(self, graph, node):
        n, c = graph.node(node.inputs[0]).shape
        return {"H": n, "W": 1, "C": c, "O": node.shape[1], "K": 1, "PAD": 0}

    def _per_pixel(self, words):
        return words.sum(axis=2)[:, :, None]  # [B, N, C] -> [B, N, 1]: a token is a pixel


WEIGHTED_OPS: dict[str, StreamOp] = {"conv_lif": ConvLif(), "linear_lif": LinearLif()}
