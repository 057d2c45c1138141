"""Lowering: a trained Spikformer (fp32, or QAT with a plan) -> DeployGraph (integers only).

Each conv / linear layer with its BN and LIF becomes one `conv_lif` / `linear_lif` node:
    weights   the layer's format's code tables (numerics.weight_codes), w_eff * weight_scale = Q(w)
    BN fold   a_c = gamma_c / sqrt(var_c + eps), b_c = beta_c - a_c * mean_c
    LIF       numerics.fold_lif(a, b, weight_scale, theta, bias_frac_bits, T): integer bias,
              exact per-channel threshold, sign (negative gamma flips the comparison)
    widths    x_max (the largest input value, from the node that feeds it), acc_bits from
              numerics.acc_bound, v_bits from numerics.membrane_bits
The SSA product and its LIF are exact (`ssa`) for any attn_scale and attn_threshold > 0 (the
threshold attn_threshold / attn_scale is compared exactly, in rational arithmetic), max pooling
of spikes is an OR, the residual adds are integer adds, the head sums over tokens and steps.
Unquantized layers (an fp32 run) lower as 32-bit fixed point.

What the integer model implements, and what the lowering therefore refuses (a UserError naming the
config key or the module, never a graph that computes something else): LIF neurons with tau = 2,
decay_input, hard reset to 0 and a threshold > 0 (model.tau, model.v_threshold,
model.attn_threshold); an attention scale > 0 (model.attn_scale); 2 input channels, the ON and OFF
event counts of hqflow's frames (model.in_channels); finite weights and BN statistics; constants and
widths within 64 bits.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hqflow import numerics
from hqflow.config import Config
from hqflow.errors import UserError
from hqflow.io import replace_dir, require_complete
from hqflow.ir import DeployGraph, Node, validate
from hqflow.numerics import Candidate
from hqflow.search.model import Spikformer, neuron
from hqflow.search.trainer import load_checkpoint

BIAS_FRAC_BITS = 16  # fractional bits of the LIF and head biases (the scheme's one rounding), in
# accumulator units; an fp32 layer's accumulator already has 2^-f weight resolution (f ~ 31), so
# its biases get none: that keeps its membrane within 64 bits for the NumPy simulator.


def _bias_frac_bits(fmt: Candidate) -> int:
    return 0 if fmt.scheme == "fp32" else BIAS_FRAC_BITS
MAX_COUNT = np.iinfo(np.int16).max  # input frames are int16 event counts
LIF_TAU = 2.0  # the integer LIF's charge H = (V + X) / 2 is a shift
INPUT_CHANNELS = 2  # hqflow's event frames: OFF and ON counts


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_semantics(model: Spikformer, cfg: Config) -> None:
    """Refuse a model whose semantics the integer model does not implement exactly (module docstring)."""
    mc = cfg.model
    if mc.tau != LIF_TAU:
        raise UserError(f"model.tau: {mc.tau}; the integer LIF implements tau = 2 only (its charge (V + X) / 2 is "
                        "a shift); retrain with model.tau 2")
    for key in ("v_threshold", "attn_threshold", "attn_scale"):
        if not _positive(getattr(mc, key)):
            raise UserError(f"model.{key}: {getattr(mc, key)!r}; the integer model needs a finite value > 0")
    if mc.in_channels != INPUT_CHANNELS:
        raise UserError(f"model.in_channels: {mc.in_channels}; the deployed input is hqflow's event frames "
                        f"[T, {INPUT_CHANNELS}, H, W] (OFF and ON counts)")
    if mc.num_classes < 1:
        raise UserError(f"model.num_classes: {mc.num_classes}; the head needs at least one class")
    for name, m in model.named_modules():
        if isinstance(m, neuron.BaseNode):
            theta = mc.attn_threshold if name.endswith("attn_lif") else mc.v_threshold
            found = {"type": type(m).__name__, "tau": getattr(m, "tau", None), "decay_input":
                     getattr(m, "decay_input", None), "v_reset": m.v_reset, "v_threshold": m.v_threshold}
            wanted = {"type": "LIFNode", "tau": LIF_TAU, "decay_input": True, "v_reset": 0.0, "v_threshold": theta}
            for key, value in wanted.items():
                if found[key] != value:
                    raise UserError(f"module {name}: {key} {found[key]!r}; the integer LIF implements {key} {value!r}")
        if hasattr(m, "scale") and name.endswith(".attn") and m.scale != mc.attn_scale:
            raise UserError(f"module {name}: attention scale {m.scale!r}, but model.attn_scale is {mc.attn_scale!r}")


def _format(layer: nn.Module) -> tuple[Candidate, dict]:
    """The layer's deployed format and its quantizer parameters for the current weight."""
    if hasattr(layer, "candidates"):
        if layer.choice is None:
            raise UserError("a searched supernet has no single format per layer: export its finetuned run "
                            "(`hqflow finetune --plan ...`)")
        quantizer = layer.quantizers[layer.choice]
        return layer.candidates[layer.choice], quantizer.params(layer.weight.detach())
    return Candidate("fp32", 32), {}


class _Builder:
    def __init__(self, model: Spikformer, cfg: Config):
        self.model, self.cfg, self.t = model, cfg, cfg.data.time_steps
        self.nodes: list[Node] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.x_max: dict[str, int] = {}

    def add(self, name: str, op: str, inputs: tuple[str, ...], shape: tuple[int, ...], x_max: int,
            attrs: dict | None = None, tensors: dict[str, np.ndarray] | None = None) -> str:
        self.nodes.append(Node(name, op, inputs, tuple(int(s) for s in shape), attrs or {}))
        self.tensors.update({f"{name}/{k}": v for k, v in (tensors or {}).items()})
        self.x_max[name] = x_max
        return name

    def weights(self, name: str, layer: nn.Module, x_max: int) -> tuple[dict, dict, np.ndarray, float]:
        fmt, params = _format(layer)
        w = layer.weight.detach().numpy().astype(np.float32)
        if not np.isfinite(w).all():
            raise UserError(f"layer {name}: its weights hold NaN or infinity")
        try:
            codes = numerics.weight_codes(w, fmt, params)
            w_eff, weight_scale = numerics.effective_weight(w, fmt, params)
        except ValueError as err:
            raise UserError(f"layer {name} ({fmt.name}): {err}") from None
        bound = numerics.acc_bound(x_max, w_eff)
        if numerics.bits_for(-bound, bound) > 64:
            raise UserError(f"layer {name} ({fmt.name}, inputs up to {x_max}): its accumulator range +-{bound} "
                            "needs more than 64 bits; give this layer a narrower format in the plan")
        attrs = {"format": fmt.name, "weight_scale": weight_scale, "x_max": x_max,
                 "acc_bits": numerics.bits_for(-bound, bound), "qkeras": fmt.qkeras()}
        if fmt.scheme == "uniform":
            attrs["zero_point"] = int(params["zero_point"])
        return attrs, codes, w_eff, weight_scale

    def lif_node(self, name: str, op: str, source: str, layer: nn.Module, bn: nn.Module, theta: float,
                 shape: tuple[int, ...]) -> str:
        x_max = self.x_max[source]
        attrs, codes, w_eff, weight_scale = self.weights(name, layer, x_max)
        a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
        b = (bn.bias.detach().double() - torch.from_numpy(a) * bn.running_mean.detach().double()).numpy()
        bound = numerics.acc_bound(x_max, w_eff)
        try:
            consts = numerics.fold_lif(a.astype(np.float32), b.astype(np.float32), weight_scale, theta,
                                       _bias_frac_bits(Candidate.parse(attrs["format"])), self.t)
        except ValueError as err:
            raise UserError(f"layer {name} (model.v_threshold {theta}, data.time_steps {self.t}): folding its BN "
                            f"into the integer LIF: {err}") from None
        try:
            v_bits = numerics.membrane_bits(-bound, bound, consts)
        except ValueError as err:
            raise UserError(f"layer {name} ({attrs['format']}, inputs up to {x_max}, T {self.t}): {err}; "
                            "give this layer a quantized format in the plan") from None
        attrs.update(theta=theta, frac_bits=consts.frac_bits, bias_frac_bits=consts.bias_frac_bits, v_bits=v_bits)
        tensors = {**codes, "bias_int": consts.bias_int, "thr_int": consts.thr_int, "sign": consts.sign}
        return self.add(name, op, (source,), shape, 1, attrs, tensors)


def lower(model: Spikformer, cfg: Config) -> DeployGraph:
    """The DeployGraph of `model` (eval mode: BN running statistics) for T = cfg.data.time_steps."""
    model = model.eval()
    check_semantics(model, cfg)
    mc, t = cfg.model, cfg.data.time_steps
    g = _Builder(model, cfg)
    res = mc.img_size
    x = g.add("input", "input", (), (mc.in_channels, res, res), MAX_COUNT, {"max_count": MAX_COUNT})
    sps = model.sps
    for i in range(4):
        conv, bn = getattr(sps, f"conv{i}"), getattr(sps, f"bn{i}")
        x = g.lif_node(f"sps.conv{i}", "conv_lif", x, conv, bn, mc.v_threshold, (conv.out_channels, res, res))
        if mc.pools[i]:
            res = (res - 1) // 2 + 1
            x = g.add(f"sps.pool{i}", "maxpool", (x,), (conv.out_channels, res, res), 1)
    rpe = g.lif_node("sps.rpe", "conv_lif", x, sps.rpe, sps.rpe_bn, mc.v_threshold, (mc.embed_dim, res, res))
    x = g.add("sps.add", "add", (x, rpe), (mc.embed_dim, res, res), 2)
    x = g.add("tokens", "tokens", (x,), (res * res, mc.embed_dim), 2)
    n, d = res * res, mc.embed_dim
    for i, block in enumerate(model.blocks):
        attn, mlp, p = block.attn, block.mlp, f"blocks.{i}"
        qkv = [g.lif_node(f"{p}.attn.{s}", "linear_lif", x, getattr(attn, s), getattr(attn, f"{s}_bn"),
                          mc.v_threshold, (n, d)) for s in ("q", "k", "v")]
        bound = numerics.ssa_bound(n, d // mc.num_heads)
        try:
            consts = numerics.fold_lif(np.ones(1, np.float32), np.zeros(1, np.float32), mc.attn_scale,
                                       mc.attn_threshold, 0, t)
            v_bits = numerics.membrane_bits(0, bound, consts)
        except ValueError as err:
            raise UserError(f"model.attn_scale {mc.attn_scale}, model.attn_threshold {mc.attn_threshold} (T {t}, "
                            f"attention products up to {bound}): {err}; the attention LIF needs its threshold "
                            "and membrane within 64 bits") from None
        s = g.add(f"{p}.attn.attn", "ssa", tuple(qkv), (n, d), 1,
                  {"num_heads": mc.num_heads, "attn_scale": mc.attn_scale, "theta": mc.attn_threshold,
                   "frac_bits": consts.frac_bits, "bias_frac_bits": 0, "x_max": 1,
                   "acc_bits": numerics.bits_for(0, bound), "v_bits": v_bits},
                  {"bias_int": consts.bias_int, "thr_int": consts.thr_int, "sign": consts.sign})
        proj = g.lif_node(f"{p}.attn.proj", "linear_lif", s, attn.proj, attn.proj_bn, mc.v_threshold, (n, d))
        x = g.add(f"{p}.add1", "add", (x, proj), (n, d), g.x_max[x] + 1)
        h = g.lif_node(f"{p}.mlp.fc1", "linear_lif", x, mlp.fc1, mlp.fc1_bn, mc.v_threshold, (n, mlp.fc1.out_features))
        h = g.lif_node(f"{p}.mlp.fc2", "linear_lif", h, mlp.fc2, mlp.fc2_bn, mc.v_threshold, (n, d))
        x = g.add(f"{p}.add2", "add", (x, h), (n, d), g.x_max[x] + 1)
    head_x_max = g.x_max[x] * n * t  # the head sums its input over tokens and steps
    attrs, codes, _, weight_scale = g.weights("head", model.head, head_x_max)
    bias_frac = _bias_frac_bits(Candidate.parse(attrs["format"]))
    head_bias = model.head.bias.detach().numpy()
    if not np.isfinite(head_bias).all():
        raise UserError("layer head: its bias holds NaN or infinity")
    try:
        bias_int = numerics.fold_head(head_bias, weight_scale, n, t, bias_frac)
    except ValueError as err:
        raise UserError(f"layer head ({attrs['format']}): {err}") from None
    attrs.update(bias_frac_bits=bias_frac, num_tokens=n)
    g.add("head", "head", (x,), (mc.num_classes,), 0, attrs, {**codes, "bias_int": bias_int})
    graph = DeployGraph(tuple(g.nodes), g.tensors, t, mc.num_classes,
                        {"model": cfg.to_dict()["model"], "dataset": cfg.data.dataset})
    validate(graph, "lowered graph")
    return graph


def export(run: str | Path, out: str | Path, target: str = "numpy", force: bool = False, tb_samples: int = 200,
           trace_samples: int = 2, data_root: str | Path | None = None, hls_options=None) -> tuple[DeployGraph, dict]:
    """Lower a run's checkpoint into folder `out` (built aside, moved into place): the DeployGraph
    (graph.json + tensors.npz), and for target "hls" the C++ project in out/hls with testbench
    vectors for the first tb_samples test samples (every node traced for trace_samples of them).
    Returns the graph and, for "hls", the testbench summary."""
    out = Path(out)
    if target not in ("numpy", "hls"):
        raise UserError(f"export target {target!r}: expected numpy or hls")
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder exists; pass --force to replace it")
    if tb_samples < 1 or trace_samples < 0:
        raise UserError(f"--tb-samples {tb_samples} must be >= 1 and --trace-samples {trace_samples} >= 0")
    require_complete(Path(run), "the run")
    cfg, model, _ = load_checkpoint(run)
    with torch.no_grad():
        graph = lower(model, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    summary: dict = {}
    try:
        graph.save(tmp)
        if target == "hls":
            from hqflow.data import load_dataset
            from hqflow.export.hls import write_project

            frames = load_dataset(cfg.data.dataset, "test", cfg.data.time_steps, cfg.model.img_size,
                                  None if data_root is None else str(data_root))
            n = min(tb_samples, len(frames))
            items = [frames[i] for i in range(n)]
            summary = write_project(graph, tmp / "hls", np.stack([x for x, _ in items]),
                                    np.array([y for _, y in items]), trace_samples, hls_options)
        replace_dir(tmp, out)  # the previous export stays until the new one is whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return graph, summary
