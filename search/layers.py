"""The torch side of every DeployGraph op, one `TorchOp` each: the modules a step of the op creates, its
float forward pass and its lowering rule (the torch modules -> the op's integer node).

    modules(step, cfg)               the step's torch modules, one per name in step.modules
    forward(model, step, *x)         its float output, time-major: maps [T, B, C, H, W], tokens [T, B, N, C]
    lower(builder, step, modules)    its DeployGraph node, built through export/lower.py's builder
                                     (builder.add, builder.weights, builder.nodes, builder.time_steps)

The torch model (search/model.py) creates and runs its topology's steps by TORCH_OPS, the lowering
(export/lower.py) walks them by it: the torch side of an op is here and nowhere else.

What the lowering implements (export/lower.py's check_semantics refuses anything else): each conv /
linear layer with its BN and LIF becomes one node,
    weights   the layer's format's code tables (numerics.weight_codes), w_eff * weight_scale = Q(w)
    BN fold   a_c = gamma_c / sqrt(var_c + eps), b_c = beta_c - a_c * mean_c
    LIF       numerics.fold_lif(a, b, weight_scale, theta, bias_frac_bits, T): integer bias,
              exact per-channel threshold, sign (negative gamma flips the comparison)
the attention's scale and threshold fold into its LIF (compared exactly, in rational arithmetic), the
head's bias folds into logit units.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hqflow import numerics
from hqflow.config import ModelConfig
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.ops import check_backend
from hqflow.search.lif import LIFNode
from hqflow.topology import Attention, MaxPool, Step, WeightLayer

BIAS_FRAC_BITS = 16  # fractional bits of the LIF and head biases (the scheme's one rounding), in
# accumulator units; an fp32 layer's accumulator already has 2^-f weight resolution (f ~ 31), so
# its biases get none: that keeps its membrane within 64 bits for the NumPy simulator.
MAX_COUNT = np.iinfo(np.int16).max  # input frames are int16 event counts
RESIDUAL_FRAC_BITS = 16  # the membrane shortcut's fixed point: residual values are integers in 2^-16 units


def lif(cfg: ModelConfig, v_threshold: float | None = None) -> LIFNode:
    """Multi-step LIF: H = V + (X - V) / tau;  S = H >= V_th;  V = H * (1 - S).

    search/lif.py's LIFNode: spikingjelly's LIFNode with a fused forward and backward over T, bitwise
    equal to spikingjelly's on spikes, membranes and gradients."""
    return LIFNode(tau=float(cfg.tau), v_threshold=cfg.v_threshold if v_threshold is None else v_threshold,
                   v_reset=0.0, decay_input=True, detach_reset=True, step_mode="m")


def per_step(module, x: Tensor) -> Tensor:
    """Apply a stateless layer to a time-major tensor [T, B, ...] by folding T into the batch."""
    y = module(x.flatten(0, 1))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


def token_bn(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """BatchNorm1d over the channel axis of tokens [T, B, N, C]."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def bn_factors(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A BN's (a, b) in float32 [C]: a_c = gamma_c / sqrt(var_c + eps), b_c = beta_c - a_c * mean_c (eval mode)."""
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    shift = (bn.bias.detach().double() - torch.from_numpy(scale) * bn.running_mean.detach().double()).numpy()
    return scale.astype(np.float32), shift.astype(np.float32)


def bias_frac_bits(fmt: Candidate) -> int:
    return 0 if fmt.scheme == "fp32" else BIAS_FRAC_BITS


class TorchOp:
    """An op's torch side; the defaults: no modules, the step's node built from its inputs alone."""

    def modules(self, step: Step, cfg: ModelConfig) -> list[nn.Module]:
        return []

    def forward(self, model: nn.Module, step: Step, *x: Tensor) -> Tensor:
        raise NotImplementedError

    def lower(self, builder, step: Step, modules: dict[str, nn.Module]):
        """A step without weights or constants (maxpool, add, tokens): its op computes everything."""
        return builder.add(step)


class Input(TorchOp):
    def forward(self, model, step, frames):
        return frames.transpose(0, 1).float()  # [B, T, 2, H, W] -> time-major

    def lower(self, builder, step, modules):
        return builder.add(step, {"max_count": MAX_COUNT})


class WeightedLif(TorchOp):
    """A conv / linear layer (no bias), its BN and LIF; lowered with the BN folded into the integer LIF."""

    def lower(self, builder, step: WeightLayer, modules):
        attrs, codes, weight_scale = builder.weights(step.name, modules[step.name])
        bn_scale, bn_shift = bn_factors(modules[step.bn])
        time_steps = builder.time_steps
        try:
            consts = numerics.fold_lif(bn_scale, bn_shift, weight_scale,
                                       step.theta, bias_frac_bits(Candidate.parse(attrs["format"])), time_steps)
        except ValueError as err:
            raise UserError(f"layer {step.name} (model.v_threshold {step.theta}, data.time_steps {time_steps}): "
                            f"folding its BN into the integer LIF: {err}") from None
        attrs.update(theta=step.theta, frac_bits=consts.frac_bits, bias_frac_bits=consts.bias_frac_bits)
        tensors = {**codes, "bias_int": consts.bias_int, "thr_int": consts.thr_int, "sign": consts.sign}
        inputs_max = builder.nodes[step.source].value_max
        return builder.add(step, attrs, tensors, f" ({attrs['format']}, inputs up to {inputs_max}, T {time_steps})",
                           "; give this layer a narrower or quantized format in the plan")


class ConvLif(WeightedLif):
    def modules(self, step: WeightLayer, cfg):
        conv = nn.Conv2d(step.c_in, step.c_out, step.kernel_size, step.stride, step.padding, bias=step.bias)
        return [conv, nn.BatchNorm2d(step.c_out), lif(cfg, step.theta)]

    def forward(self, model, step, x):
        conv, bn, neurons = (model.get_submodule(m) for m in step.modules)
        return neurons(per_step(lambda z: bn(conv(z)), x))


class LinearLif(WeightedLif):
    def modules(self, step: WeightLayer, cfg):
        return [nn.Linear(step.c_in, step.c_out, bias=step.bias), nn.BatchNorm1d(step.c_out), lif(cfg, step.theta)]

    def forward(self, model, step, x):
        linear, bn, neurons = (model.get_submodule(m) for m in step.modules)
        return neurons(token_bn(bn, linear(x)))


class MaxPool2d(TorchOp):
    def modules(self, step: MaxPool, cfg):
        return [nn.MaxPool2d(kernel_size=step.kernel_size, stride=step.stride, padding=step.padding)]

    def forward(self, model, step, x):
        return per_step(model.get_submodule(step.module), x)


class Add(TorchOp):
    def forward(self, model, step, a, b):
        return a + b


class Tokens(TorchOp):
    def forward(self, model, step, x):
        return x.flatten(3).transpose(2, 3).contiguous()  # [T, B, C, H, W] -> [T, B, H W, C]


class Ssa(TorchOp):
    """Spikes q, k, v [T, B, N, D] -> per head (q @ k^T @ v) * scale -> attention LIF [T, B, N, D]; lowered
    with its scale and threshold folded into the LIF (one channel, no BN, no bias)."""

    def modules(self, step: Attention, cfg):
        return [lif(cfg, v_threshold=step.threshold)]

    def forward(self, model, step, *qkv):
        t, b, n, d = qkv[0].shape
        q, k, v = (s.reshape(t, b, n, step.num_heads, d // step.num_heads).transpose(2, 3) for s in qkv)
        y = (q @ k.transpose(-2, -1) @ v) * step.scale  # [T, B, heads, N, D / heads]
        return model.get_submodule(step.lif)(y.transpose(2, 3).flatten(3))  # [T, B, N, D]

    def lower(self, builder, step: Attention, modules):
        products_max = numerics.ssa_bound(step.num_tokens, step.head_dim)
        context = (f"model.attn_scale {step.scale}, model.attn_threshold {step.threshold} (T {builder.time_steps}, "
                   f"attention products up to {products_max})")
        hint = "; the attention LIF needs its threshold and membrane within 64 bits"
        try:
            consts = numerics.fold_lif(np.ones(1, np.float32), np.zeros(1, np.float32), step.scale, step.threshold,
                                       0, builder.time_steps)
        except ValueError as err:
            raise UserError(f"{context}: {err}{hint}") from None
        attrs = {"num_heads": step.num_heads, "attn_scale": step.scale, "theta": step.threshold,
                 "frac_bits": consts.frac_bits, "bias_frac_bits": 0}
        tables = {"bias_int": consts.bias_int, "thr_int": consts.thr_int, "sign": consts.sign}
        return builder.add(step, attrs, tables, f" ({context})", hint)


class WeightedBn(TorchOp):
    """A conv / linear layer (no bias) and its BN, no LIF (the membrane shortcut); lowered with the BN folded
    into a requantization to RESIDUAL_FRAC_BITS fractional bits (numerics.fold_requant)."""

    def lower(self, builder, step: WeightLayer, modules):
        attrs, codes, weight_scale = builder.weights(step.name, modules[step.name])
        bn_scale, bn_shift = bn_factors(modules[step.bn])
        try:
            acc_max = numerics.acc_bound(builder.nodes[step.source].value_max, numerics.w_eff_from_codes(
                Candidate.parse(attrs["format"]), codes, attrs.get("zero_point", 0)))
            consts = numerics.fold_requant(bn_scale, bn_shift, weight_scale, RESIDUAL_FRAC_BITS, acc_max)
        except ValueError as err:
            raise UserError(f"layer {step.name}: folding its BN into a fixed-point output: {err}") from None
        attrs.update(shift=consts.shift, frac_bits=consts.frac_bits)
        inputs_max = builder.nodes[step.source].value_max
        return builder.add(step, {**attrs}, {**codes, "m_int": consts.m_int, "b_int": consts.b_int},
                           f" ({attrs['format']}, inputs up to {inputs_max})",
                           "; give this layer a narrower or quantized format in the plan")


class ConvBn(WeightedBn):
    def modules(self, step: WeightLayer, cfg):
        conv = nn.Conv2d(step.c_in, step.c_out, step.kernel_size, step.stride, step.padding, bias=step.bias)
        return [conv, nn.BatchNorm2d(step.c_out)]

    def forward(self, model, step, x):
        conv, bn = (model.get_submodule(m) for m in step.modules)
        return per_step(lambda z: bn(conv(z)), x)


class LinearBn(WeightedBn):
    def modules(self, step: WeightLayer, cfg):
        return [nn.Linear(step.c_in, step.c_out, bias=step.bias), nn.BatchNorm1d(step.c_out)]

    def forward(self, model, step, x):
        linear, bn = (model.get_submodule(m) for m in step.modules)
        return token_bn(bn, linear(x))


def _one_channel_lif(builder, step, scale: float, context: str) -> tuple[dict, dict]:
    """The attrs and tables of a LIF of one channel on inputs x_int = x / scale (fold_lif(1, 0, scale, ...))."""
    try:
        consts = numerics.fold_lif(np.ones(1, np.float32), np.zeros(1, np.float32), scale, step.threshold, 0,
                                   builder.time_steps)
    except ValueError as err:
        raise UserError(f"{step.name} ({context}, T {builder.time_steps}): {err}") from None
    attrs = {"theta": step.threshold, "frac_bits": consts.frac_bits, "bias_frac_bits": 0}
    return attrs, {"bias_int": consts.bias_int, "thr_int": consts.thr_int, "sign": consts.sign}


class Lif(TorchOp):
    """A LIF alone on the residual path's values (their fixed point: RESIDUAL_FRAC_BITS fractional bits)."""

    def modules(self, step, cfg):
        return [lif(cfg, step.threshold)]

    def forward(self, model, step, x):
        return model.get_submodule(step.lif)(x)

    def lower(self, builder, step, modules):
        attrs, tables = _one_channel_lif(builder, step, 2.0**-RESIDUAL_FRAC_BITS, f"threshold {step.threshold}")
        return builder.add(step, {**attrs, "in_frac_bits": RESIDUAL_FRAC_BITS}, tables)


class Sdsa(TorchOp):
    """Spike-driven self-attention: spikes q, k, v [T, B, N, D] -> q * LIF(sum_n k * v) [T, B, N, D]."""

    def modules(self, step, cfg):
        return [lif(cfg, step.threshold)]

    def forward(self, model, step, q, k, v):
        mask = model.get_submodule(step.lif)((k * v).sum(dim=2, keepdim=True))  # [T, B, 1, D]
        return q * mask

    def lower(self, builder, step, modules):
        attrs, tables = _one_channel_lif(builder, step, 1.0, f"model.attn_threshold {step.threshold}")
        return builder.add(step, attrs, tables)


class Head(TorchOp):
    """Mean over tokens -> linear (with bias) -> mean over T; lowered with its bias folded into logit units
    (numerics.fold_head) for the tokens it averages."""

    def modules(self, step: WeightLayer, cfg):
        return [nn.Linear(step.c_in, step.c_out, bias=step.bias)]

    def forward(self, model, step, x):
        return model.get_submodule(step.name)(x.mean(2)).mean(0)

    def lower(self, builder, step: WeightLayer, modules):
        layer = modules[step.name]
        attrs, codes, weight_scale = builder.weights(step.name, layer)
        bias_frac = bias_frac_bits(Candidate.parse(attrs["format"]))
        bias = layer.bias.detach().numpy()
        if not np.isfinite(bias).all():
            raise UserError(f"layer {step.name}: its bias holds NaN or infinity")
        num_tokens = builder.nodes[step.source].shape[0]
        try:
            bias_int = numerics.fold_head(bias, weight_scale, num_tokens, builder.time_steps, bias_frac)
        except ValueError as err:
            raise UserError(f"layer {step.name} ({attrs['format']}): {err}") from None
        attrs.update(bias_frac_bits=bias_frac, num_tokens=num_tokens)
        return builder.add(step, attrs, {**codes, "bias_int": bias_int}, f" ({attrs['format']})",
                           "; give the head a narrower format in the plan")


TORCH_OPS: dict[str, TorchOp] = {"input": Input(), "conv_lif": ConvLif(), "linear_lif": LinearLif(),
                                 "maxpool": MaxPool2d(), "add": Add(), "tokens": Tokens(), "ssa": Ssa(), "head": Head(),
                                 "conv_bn": ConvBn(), "linear_bn": LinearBn(), "lif": Lif(), "sdsa": Sdsa()}
check_backend(TORCH_OPS, "the torch model and its lowering (search/layers.py TORCH_OPS)")
