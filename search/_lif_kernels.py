"""The fused LIF's CPU kernels (numba): one pass over the membrane per direction, every element's
T steps in a loop, elements in parallel. float32 throughout, no fast-math (no contraction into FMA,
no reassociation), so every operation rounds as torch's does: bitwise the same as spikingjelly.

Arrays are [T, n] (the time-major tensor with the rest flattened) and [n] (a membrane), C-contiguous.
Equations and gradient: search/lif.py. Compiled on first use and cached beside this file
(numba's cache=True; a read-only install compiles once per process, about a second).
"""

from __future__ import annotations

from numba import float32, njit, prange


@njit(parallel=True, cache=True)
def lif_forward(x, v0, has_v0, tau, th, alpha, spikes, z, v_out):  # pragma: no cover - compiled
    """x [T, n], v0 [n] (read when has_v0, else V = 0) -> spikes [T, n], Z = (H - th) alpha [T, n],
    v_out [n] (the membrane after the last step)."""
    steps, n = x.shape
    for i in prange(n):
        v = v0[i] if has_v0 else float32(0.0)
        for t in range(steps):
            if t == 0 and not has_v0:
                h = x[t, i] / tau  # 0 + (x - 0) / tau, bit for bit
            else:
                h = v + (x[t, i] - v) / tau
            z[t, i] = (h - th) * alpha
            if h >= th:
                spikes[t, i] = float32(1.0)
                v = float32(0.0)
            else:
                spikes[t, i] = float32(0.0)
                v = h
        v_out[i] = v


@njit(parallel=True, cache=True)
def lif_backward(gs, s, spikes, gv, has_gv, tau, alpha, gx, gv0):  # pragma: no cover - compiled
    """dL/dS gs [T, n], s = sigmoid(Z) [T, n], spikes [T, n], dL/dV_final gv [n] (read when has_gv)
    -> dL/dX gx [T, n], dL/dV_init gv0 [n]."""
    steps, n = gs.shape
    one = float32(1.0)
    for i in prange(n):
        carry = gv[i] if has_gv else float32(0.0)
        has = has_gv
        for t in range(steps - 1, -1, -1):
            st = s[t, i]
            gh = gs[t, i] * (((one - st) * st) * alpha)  # dL/dS sg, sg = (1 - s) s alpha
            if has and spikes[t, i] == float32(0.0):
                gh = gh + carry  # + dL/dV (1 - S): the reset's spike detached
            g = gh / tau
            gx[t, i] = g
            carry = gh - g  # dL/dV[t-1] = dL/dH - dL/dH / tau
            has = True
        gv0[i] = carry
