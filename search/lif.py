"""A fused multi-step LIF neuron: spikingjelly's LIFNode, the same numbers, less CPU time.

The model's neuron (tau > 1, decay_input, hard reset to v_reset = 0, detach_reset, the default
Sigmoid surrogate with alpha 4) runs over a time-major input X [T, B, ...] (any shape after T):

    charge   H[t] = V[t-1] + (X[t] - V[t-1]) / tau          V[-1] = 0 after a reset
    fire     S[t] = H[t] >= V_th                             (spikes 0.0 / 1.0, X's dtype)
    reset    V[t] = H[t] (1 - S[t])                          (hard reset to 0)

Backward (BPTT through the T steps), with the surrogate derivative of the Heaviside step
sg(z) = alpha * sigmoid(alpha z) (1 - sigmoid(alpha z)), z = H[t] - V_th, alpha = 4, and the reset's
spike detached (detach_reset: dV[t]/dS[t] carries no gradient), from the last step to the first:

    dL/dH[t]   = dL/dS[t] sg(H[t] - V_th) + dL/dV[t] (1 - S[t])
    dL/dX[t]   = dL/dH[t] / tau
    dL/dV[t-1] = dL/dH[t] - dL/dH[t] / tau                  (dL/dV[T-1]: the gradient of the final V)

`MultiStepLIF` is one autograd.Function over the whole [T, ...] tensor, no autograd graph per step,
Z = (H - V_th) alpha and the spikes saved for the backward. On CPU with numba (a dependency) each
direction is one compiled pass (search/_lif_kernels.py: chunks of elements in parallel, the T steps in
turn over a chunk, vectorized; the sigmoid stays torch's, per step); without numba, a Python loop over
T of torch ops (about five per step forward, four backward). spikingjelly 2.0's CPU path builds an
autograd graph of about a dozen ops per step (charge, surrogate spike, reset, the stacks).

Exactness: every float op is the one spikingjelly does, on the same per-step operands and in an
order that rounds the same (IEEE +, -, *, / of two operands do not depend on the order of a sum of
two terms; the sigmoid runs per step, on tensors of the size spikingjelly gives it). So spikes,
membranes and gradients are bitwise equal to spikingjelly's (tests/test_lif.py checks torch.equal);
the only difference is the sign of a zero in a reset membrane or a masked gradient (-0.0 against
0.0), which compares equal and changes no later value.

`LIFNode` (this module's) is a subclass of spikingjelly's LIFNode: the same constructor, the same
state (`v`, `reset()`), no parameters or buffers (state_dict keys unchanged), the same type name
(the lowering checks it); its multi-step forward takes the fused path whenever the settings are the
ones above and falls back to spikingjelly's otherwise (soft reset, decay_input False,
detach_reset False, another surrogate, store_v_seq, a non-float32 input or neuron precision).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

# torch logs a warning about the missing GPU compiler when spikingjelly imports; it is noise on CPU.
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)

from spikingjelly.activation_based import neuron, surrogate  # noqa: E402
from torch import Tensor  # noqa: E402


try:  # the kernels: one pass over the membrane per direction; without numba, torch ops step by step
    from hqflow.search import _lif_kernels as _kernels
except ImportError:  # pragma: no cover - numba is a dependency; a broken install still trains
    _kernels = None


def _seq(t: Tensor) -> np.ndarray:
    """A contiguous CPU float32 tensor [T, ...] as a NumPy view [T, n] (no copy)."""
    return t.detach().numpy().reshape(t.shape[0], -1)


def _flat(t: Tensor) -> np.ndarray:
    """A contiguous CPU float32 membrane [...] as a NumPy view [n] (no copy)."""
    return t.detach().numpy().reshape(-1)


class MultiStepLIF(torch.autograd.Function):
    """(x_seq [T, ...] float32, v_init [...] or None (= zeros), tau, v_threshold, alpha)
    -> (spikes [T, ...] float32, v_final [...]); hard reset to 0, decay_input, detach_reset,
    Sigmoid surrogate with `alpha`. See the module docstring for the equations and the gradient.

    Saved for the backward: Z = (H - V_th) alpha [T, ...] (the surrogate's argument) and the spikes."""

    @staticmethod
    def forward(ctx, x_seq: Tensor, v_init: Tensor | None, tau: float, v_threshold: float, alpha: float):
        x = x_seq.contiguous()
        if v_init is not None:
            v_init = v_init.contiguous()
        if _kernels is not None and x.device.type == "cpu":
            spikes, z, v = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x[0])
            v0 = v if v_init is None else v_init
            _kernels.lif_forward(_seq(x), _flat(v0), v_init is not None, np.float32(tau),
                                 np.float32(v_threshold), np.float32(alpha), _seq(spikes), _seq(z), _flat(v))
        else:
            spikes, z, v = _forward_torch(x, v_init, tau, v_threshold, alpha)
        ctx.tau, ctx.alpha = tau, alpha
        ctx.has_v_init = v_init is not None
        ctx.save_for_backward(z, spikes)
        return spikes, v

    @staticmethod
    def backward(ctx, g_spikes: Tensor | None, g_v: Tensor | None):
        z, spikes = ctx.saved_tensors
        if g_spikes is None:
            g_spikes = torch.zeros_like(z)
        # s = sigmoid(Z) per step, by torch as spikingjelly computes it: the vectorized and the scalar
        # sigmoid kernels may differ in the last bit, so it sees the same per-step tensors
        s = torch.empty_like(z)
        for t in range(z.shape[0]):
            torch.sigmoid(z[t], out=s[t])
        # spikingjelly's gradient is a stack of per-step tensors, each with the memory layout of dL/dS[t]
        # (when that is dense); the layers below reduce over it in an order that depends on the layout,
        # so it is kept: contiguous dL/dS in the kernels' own layout, dense steps copied into it
        dense_steps = g_spikes.is_contiguous() or torch.empty_like(g_spikes[0]).stride() == g_spikes[0].stride()
        if _kernels is None or z.device.type != "cpu" or not dense_steps:
            grad_x, g_v0 = _backward_torch(g_spikes, g_v, s, spikes, ctx.tau, ctx.alpha)
        else:
            gs = g_spikes.contiguous()
            g_v = None if g_v is None else g_v.contiguous()
            grad_x = torch.empty_like(z)
            g_v0 = torch.empty_like(z[0])
            _kernels.lif_backward(_seq(gs), _seq(s), _seq(spikes), _flat(g_v0 if g_v is None else g_v),
                                  g_v is not None, np.float32(ctx.tau), np.float32(ctx.alpha),
                                  _seq(grad_x), _flat(g_v0))
            if not g_spikes.is_contiguous():
                grad_x = torch.stack([torch.empty_like(g_spikes[t]).copy_(grad_x[t]) for t in range(len(grad_x))])
        return grad_x, (g_v0 if ctx.has_v_init else None), None, None, None


def _forward_torch(x: Tensor, v_init: Tensor | None, tau: float, v_threshold: float, alpha: float):
    """MultiStepLIF's forward by torch ops, step by step: x [T, ...] -> (spikes, Z, v_final)."""
    h_seq = torch.empty_like(x)
    fired = torch.empty(x.shape, dtype=torch.bool, device=x.device)  # S[t] as a mask
    v = v_init
    for t in range(x.shape[0]):
        h = h_seq[t]
        if v is None:  # V[-1] = 0: 0 + (X - 0) / tau is X / tau, bit for bit
            torch.div(x[t], tau, out=h)
        else:  # V + (X - V) / tau, in spikingjelly's order
            torch.sub(x[t], v, out=h)
            h.div_(tau)
            h.add_(v)
        torch.ge(h, v_threshold, out=fired[t])
        v = h.masked_fill(fired[t], 0.0)  # H (1 - S)
    z = h_seq.sub_(v_threshold).mul_(alpha)
    return fired.to(x.dtype), z, v


def _backward_torch(g_spikes: Tensor, g_v: Tensor | None, s: Tensor, spikes: Tensor, tau: float, alpha: float):
    """MultiStepLIF's backward by torch ops, step by step, each on spikingjelly's operands (so that
    every gradient gets the memory layout spikingjelly's gets): -> (dL/dX [T, ...], dL/dV[-1])."""
    sg = torch.rsub(s, 1.0).mul_(s).mul_(alpha)  # (1 - s) s alpha
    keep = torch.rsub(spikes, 1.0)  # 1 - S
    grads = [None] * s.shape[0]
    carry = g_v  # dL/dV[t], the membrane after the reset
    for t in range(s.shape[0] - 1, -1, -1):
        g_h = torch.mul(g_spikes[t], sg[t])
        if carry is not None:
            g_h.add_(carry * keep[t])  # dV[t]/dH[t] = 1 - S[t] (spike detached)
        grads[t] = torch.div(g_h, tau)
        carry = g_h - grads[t]  # dL/dV[t-1] = dL/dH - dL/dH / tau
    return torch.stack(grads), carry


def multi_step_lif(x_seq: Tensor, v_init: Tensor | None = None, tau: float = 2.0, v_threshold: float = 1.0,
                   alpha: float = 4.0) -> tuple[Tensor, Tensor]:
    """x_seq [T, ...] float32, v_init [...] (None: a reset membrane) -> (spikes [T, ...], v_final [...])."""
    return MultiStepLIF.apply(x_seq, v_init, tau, v_threshold, alpha)


class LIFNode(neuron.LIFNode):
    """spikingjelly's multi-step LIFNode with a fused forward and backward (`MultiStepLIF`) for the
    model's settings; any other setting runs spikingjelly's own code."""

    def _fused(self, x_seq: Tensor) -> bool:
        sg = self.surrogate_function
        return (self.v_reset == 0.0 and self.decay_input and self.detach_reset and not self.store_v_seq
                and self._neuron_precision is None and x_seq.dtype == torch.float32 and x_seq.dim() >= 2
                and x_seq.shape[0] >= 1 and type(sg) is surrogate.Sigmoid and sg.spiking
                and isinstance(sg.alpha, (int, float))
                and isinstance(self.tau, float) and isinstance(self.v_threshold, (int, float)))

    def multi_step_forward(self, x_seq: Tensor, *args, **kwargs) -> Tensor:
        if args or kwargs or not self._fused(x_seq):
            return super().multi_step_forward(x_seq, *args, **kwargs)
        v = self.v
        if isinstance(v, Tensor) and (v.shape != x_seq.shape[1:] or v.dtype != x_seq.dtype
                                      or v.device != x_seq.device):
            v = None  # spikingjelly starts such a membrane again from v_reset (materialize_states)
        elif not isinstance(v, Tensor):
            v = None if float(v) == 0.0 else torch.full_like(x_seq[0], float(v))
        spikes, v_final = MultiStepLIF.apply(x_seq, v, self.tau, float(self.v_threshold),
                                             float(self.surrogate_function.alpha))
        self._memories["v"] = v_final
        self.v_seq = None
        return spikes
