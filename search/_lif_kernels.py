"""The fused LIF's CPU kernels (numba): one pass over the membrane per direction. The elements are
cut into chunks of `CHUNK`, the chunks run in parallel; within a chunk the T steps run in turn, each
a loop over the chunk's elements that the compiler vectorizes (branch-free selects, no Python error
checks; about 14x the per-element loop over T it replaced, on AVX-512). float32 throughout, no
fast-math (no contraction into FMA, no reassociation), so every operation rounds as torch's does:
bitwise the same as spikingjelly.

Arrays are [T, n] (the time-major tensor with the rest flattened) and [n] (a membrane), C-contiguous.
Equations and gradient: search/lif.py. Compiled on first use and cached beside this file
(numba's cache=True; a read-only install compiles once per process, about a second).
"""

from __future__ import annotations

from numba import float32, njit, prange

CHUNK = 2048  # elements per parallel task: a chunk's rows of one step stay in the L1 cache


@njit(inline="always", error_model="numpy", boundscheck=False)
def _charge_fire(x, v, tau, th, alpha, spikes, z, first):  # pragma: no cover - compiled
    """One step over a chunk: x [m] -> spikes [m], z [m]; v [m] the membrane, updated in place
    (`first`: the step after a reset, V = 0)."""
    for i in range(x.shape[0]):
        h = x[i] / tau if first else v[i] + (x[i] - v[i]) / tau  # 0 + (x - 0) / tau is x / tau, bit for bit
        z[i] = (h - th) * alpha
        fired = h >= th
        spikes[i] = float32(1.0) if fired else float32(0.0)
        v[i] = float32(0.0) if fired else h


@njit(parallel=True, cache=True, error_model="numpy")
def lif_forward(x, v0, has_v0, tau, th, alpha, spikes, z, v_out):  # pragma: no cover - compiled
    """x [T, n], v0 [n] (read when has_v0, else V = 0) -> spikes [T, n], Z = (H - th) alpha [T, n],
    v_out [n] (the membrane after the last step)."""
    steps, n = x.shape
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(c * CHUNK + CHUNK, n)
        v = v_out[lo:hi]
        if has_v0:
            v[:] = v0[lo:hi]
        for t in range(steps):
            _charge_fire(x[t, lo:hi], v, tau, th, alpha, spikes[t, lo:hi], z[t, lo:hi], t == 0 and not has_v0)


@njit(inline="always", error_model="numpy", boundscheck=False)
def _step_back(gs, s, spikes, carry, tau, alpha, gx, has_carry):  # pragma: no cover - compiled
    """One step back over a chunk: dL/dS gs [m], s = sigmoid(Z) [m], spikes [m] -> dL/dX gx [m];
    carry [m] dL/dV[t] in, dL/dV[t-1] out (read when has_carry)."""
    one = float32(1.0)
    for i in range(gs.shape[0]):
        st = s[i]
        gh = gs[i] * (((one - st) * st) * alpha)  # dL/dS sg, sg = (1 - s) s alpha
        with_carry = gh + carry[i]  # + dL/dV (1 - S): the reset's spike detached
        gh = with_carry if has_carry and spikes[i] == float32(0.0) else gh
        g = gh / tau
        gx[i] = g
        carry[i] = gh - g  # dL/dV[t-1] = dL/dH - dL/dH / tau


@njit(parallel=True, cache=True, error_model="numpy")
def lif_backward(gs, s, spikes, gv, has_gv, tau, alpha, gx, gv0):  # pragma: no cover - compiled
    """dL/dS gs [T, n], s = sigmoid(Z) [T, n], spikes [T, n], dL/dV_final gv [n] (read when has_gv)
    -> dL/dX gx [T, n], dL/dV_init gv0 [n]."""
    steps, n = gs.shape
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(c * CHUNK + CHUNK, n)
        carry = gv0[lo:hi]
        if has_gv:
            carry[:] = gv[lo:hi]
        else:
            carry[:] = float32(0.0)
        for t in range(steps - 1, -1, -1):
            _step_back(gs[t, lo:hi], s[t, lo:hi], spikes[t, lo:hi], carry, tau, alpha, gx[t, lo:hi],
                       has_gv or t < steps - 1)
