"""The BN-folded integer LIF of the deployed model (hqflow.numerics: fold_lif, lif_charge / fire / reset,
lif_step, membrane_bits) against float, exact rational and spikingjelly references."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow.numerics import (
    fold_lif,
    lif_charge,
    lif_fire,
    lif_reset,
    lif_run,
    lif_step,
    membrane_bits,
    ssa_int,
)

THETAS = (1.0, 0.5)


# ---- integer LIF -----------------------------------------------------------------------------------


def lif_float(x_seq, theta):
    """spikingjelly's LIF (tau 2, decay_input, hard reset to 0) in float64: x [T, ...] -> (spikes, H)."""
    v = np.zeros(x_seq.shape[1:])
    spikes, charges = [], []
    for x in x_seq:
        h = v + (x - v) / 2
        s = h >= theta
        v = np.where(s, 0.0, h)
        spikes.append(s)
        charges.append(h)
    return np.array(spikes, np.uint8), np.array(charges)


def lif_exact(x_seq, theta):
    """The same LIF in exact rational arithmetic: x [T][n] of Fractions -> (spikes [T][n], H, V)."""
    v = [Fraction(0)] * len(x_seq[0])
    spikes, charges, membranes = [], [], []
    for x in x_seq:
        h = [v_i + (x_i - v_i) / 2 for v_i, x_i in zip(v, x)]
        s = [int(h_i >= theta) for h_i in h]
        v = [Fraction(0) if s_i else h_i for s_i, h_i in zip(s, h)]
        spikes.append(s)
        charges.append(h)
        membranes.append(v)
    return np.array(spikes, np.uint8), charges, membranes


def lif_int_trace(acc_seq, consts):
    """lif_step over T steps, keeping every membrane: acc [T, ..., C] -> (spikes, v_int) [T, ..., C]."""
    v_int = np.zeros(acc_seq.shape[1:], np.int64)
    spikes, membranes = [], []
    for acc in acc_seq:
        v_int, s = lif_step(v_int, acc, consts)
        spikes.append(s)
        membranes.append(v_int)
    return np.array(spikes), np.array(membranes)


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize("sign", (1, -1))
@pytest.mark.parametrize("time_steps", (1, 4, 16))
@pytest.mark.parametrize("bias_frac_bits", (0, 3))
def test_lif_exact_bias_matches_float_lif(theta, sign, time_steps, bias_frac_bits):
    """Power-of-two k_c (negative for sign -1, as with a negative gamma): the float LIF is exact too."""
    rng = np.random.default_rng([time_steps, bias_frac_bits, sign + 1])
    channels, weight_scale = 6, 2.0**-3
    k = sign * 2.0 ** -rng.integers(0, 7, channels).astype(np.float64)
    b = k * rng.integers(-(2 ** (bias_frac_bits + 3)), 2 ** (bias_frac_bits + 3), channels) / 2**bias_frac_bits
    consts = fold_lif(k / weight_scale, b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-20, 21, (time_steps, 8, channels))
    spikes, v_int = lif_int_trace(acc_seq, consts)
    expected, _ = lif_float(k * acc_seq + b, theta)
    np.testing.assert_array_equal(spikes, expected)
    np.testing.assert_array_equal(lif_run(acc_seq, consts), expected)
    assert 0 < expected.sum() < expected.size
    # the membrane is exact: v_int / 2^F in accumulator units is the float membrane / k
    _, h_float = lif_float(k * acc_seq + b, theta)
    np.testing.assert_array_equal(v_int * k / 2.0**consts.frac_bits, np.where(expected, 0.0, h_float))


def test_lif_charge_fire_reset_each_match_the_float_lif():
    """Each phase on its own, step by step: charge is H (times 2^F / k), fire is S, reset is V = H (1 - S)."""
    rng = np.random.default_rng(8)
    time_steps, channels, weight_scale, theta = 6, 7, 2.0**-3, 1.0
    k = rng.choice([-1, 1], channels) * 2.0 ** -rng.integers(0, 5, channels).astype(np.float64)
    b = k * rng.integers(-16, 17, channels) / 4
    consts = fold_lif(k / weight_scale, b, weight_scale, theta, 2, time_steps)
    acc_seq = rng.integers(-12, 13, (time_steps, 9, channels))
    x_seq = k * acc_seq + b
    v_int, v_float = np.zeros((9, channels), np.int64), np.zeros((9, channels))
    for acc, x in zip(acc_seq, x_seq):
        h_int, h_float = lif_charge(v_int, acc, consts), v_float + (x - v_float) / 2
        np.testing.assert_array_equal(h_int * k / 2.0**consts.frac_bits, h_float)
        spikes = lif_fire(h_int, consts)
        assert spikes.dtype == np.uint8
        np.testing.assert_array_equal(spikes, (h_float >= theta).astype(np.uint8))
        v_int, v_float = lif_reset(h_int, spikes), h_float * (1 - (h_float >= theta))
        np.testing.assert_array_equal(v_int * k / 2.0**consts.frac_bits, v_float)
    assert 0 < lif_run(acc_seq, consts).mean() < 1  # it fires and stays silent


def test_lif_step_is_the_pre_split_formula():
    """lif_step (charge, fire, reset composed) gives the bits of the one-expression step it replaced."""
    rng = np.random.default_rng(9)
    consts = fold_lif(rng.uniform(-2, 2, 5), rng.uniform(-3, 3, 5), 0.03, 0.7, 5, 4)
    v_int = rng.integers(-(2**20), 2**20, (3, 5, 2, 2))
    acc = rng.integers(-500, 501, (3, 5, 2, 2))
    per_channel = [c.reshape(1, -1, 1, 1) for c in (consts.bias_int << 4, consts.sign, consts.thr_int)]
    h_int = (v_int + (acc << consts.frac_bits) + per_channel[0]) >> 1
    spikes = per_channel[1] * h_int >= per_channel[2]
    v_next, s_next = lif_step(v_int, acc, consts, channel_axis=1)
    np.testing.assert_array_equal(s_next, spikes.astype(np.uint8))
    np.testing.assert_array_equal(v_next, np.where(spikes, 0, h_int))
    assert 0 < spikes.mean() < 1


def test_lif_matches_spikingjelly():
    from spikingjelly.activation_based import neuron

    rng = np.random.default_rng(5)
    time_steps, channels, weight_scale = 8, 5, 2.0**-4
    k = np.array([0.5, -0.25, 0.125, -1.0, 2.0])
    b = k * rng.integers(-8, 9, channels) / 4
    acc_seq = rng.integers(-6, 7, (time_steps, 3, channels))
    for theta in THETAS:
        node = neuron.LIFNode(tau=2.0, v_threshold=theta, v_reset=0.0, decay_input=True, step_mode="m")
        expected = node(torch.from_numpy(k * acc_seq + b)).numpy().astype(np.uint8)
        consts = fold_lif(k / weight_scale, b, weight_scale, theta, 2, time_steps)
        np.testing.assert_array_equal(lif_run(acc_seq, consts), expected)


nonzero_f32 = st.floats(2.0**-8, 2.0**4, width=32).flatmap(lambda m: st.sampled_from([m, -m]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(nonzero_f32, min_size=3, max_size=3),
    st.floats(2.0**-10, 1.0, width=32),
    st.sampled_from(THETAS),
    st.integers(1, 16),
    st.integers(0, 8),
    st.integers(0, 2**32 - 1),
)
def test_lif_exact_bias_matches_rational_lif(a, weight_scale, theta, time_steps, bias_frac_bits, seed):
    """Arbitrary float32 BN factors and scales: spikes and membrane equal the exact real LIF."""
    rng = np.random.default_rng(seed)
    k = [Fraction(a_c) * Fraction(weight_scale) for a_c in a]  # a float32 product: exact in float64
    m = rng.integers(-16, 16, 3)
    b = np.array([float(k_c) * int(m_c) / 2**bias_frac_bits for k_c, m_c in zip(k, m)])
    assert [Fraction(b_c) for b_c in b] == [k_c * int(m_c) / 2**bias_frac_bits for k_c, m_c in zip(k, m)]
    consts = fold_lif(np.float32(a), b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-12, 13, (time_steps, 4, 3))
    x_seq = [
        [k[c] * int(acc_seq[t, n, c]) + Fraction(b[c]) for n in range(4) for c in range(3)] for t in range(time_steps)
    ]
    expected, _, v_real = lif_exact(x_seq, Fraction(theta))
    spikes, v_int = lif_int_trace(acc_seq, consts)
    np.testing.assert_array_equal(spikes.reshape(time_steps, -1), expected)
    for t in range(time_steps):
        v_t = [Fraction(int(v), 2**consts.frac_bits) * k[i % 3] for i, v in enumerate(v_int[t].ravel())]
        assert v_t == v_real[t]


@pytest.mark.parametrize("bias_frac_bits", (0, 2, 6))
def test_lif_rounded_bias_differs_only_near_threshold(bias_frac_bits):
    """Arbitrary real b: a spike differs only where the real H lies within the bias rounding of theta."""
    rng = np.random.default_rng(bias_frac_bits)
    time_steps, batch, channels, theta = 8, 32, 16, 1.0
    a = (rng.uniform(0.2, 2.0, channels) * rng.choice([-1, 1], channels)).astype(np.float32)
    weight_scale = float(np.float32(0.037))
    b = rng.uniform(-1.0, 1.5, channels).astype(np.float32)
    consts = fold_lif(a, b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-40, 41, (time_steps, batch, channels))
    k = [Fraction(float(a_c)) * Fraction(weight_scale) for a_c in a]
    x_seq = [
        [k[c] * int(acc_seq[t, n, c]) + Fraction(float(b[c])) for n in range(batch) for c in range(channels)]
        for t in range(time_steps)
    ]
    expected, h_real, _ = lif_exact(x_seq, Fraction(theta))
    spikes = lif_run(acc_seq, consts).reshape(time_steps, -1)
    diverged = 0
    for i in range(batch * channels):
        band = abs(k[i % channels]) / 2 ** (bias_frac_bits + 1)  # the bias rounding, in units of H
        differ = np.flatnonzero(spikes[:, i] != expected[:, i])
        if len(differ):  # at the first difference the two runs still share their past
            diverged += 1
            assert abs(h_real[differ[0]][i] - theta) < band
    near = sum(
        any(abs(h_real[t][i] - theta) < abs(k[i % channels]) / 2 ** (bias_frac_bits + 1) for t in range(time_steps))
        for i in range(batch * channels)
    )
    # seeds 0, 2, 6: 11, 4, 0 of 512 neurons diverge; 52, 9, 1 come near the threshold
    assert diverged <= near < batch * channels // 8
    assert diverged > 0 or bias_frac_bits > 0  # the coarsest bias exercises the bound


@pytest.mark.parametrize("time_steps", range(1, 17))
def test_lif_membrane_parity_invariant(time_steps):
    """The sum before the halving is a multiple of 2^(T - t + 1) at step t <= T: the shift is exact."""
    rng = np.random.default_rng(time_steps)
    bias_frac_bits = 3
    consts = fold_lif(rng.uniform(-2, 2, 8), rng.uniform(-3, 3, 8), 0.01, 1.0, bias_frac_bits, time_steps)
    f = consts.frac_bits
    v_int = np.zeros((16, 8), np.int64)
    for t in range(1, time_steps + 1):
        acc = rng.integers(-50, 51, (16, 8))
        total = v_int + (acc << f) + (consts.bias_int << time_steps)
        assert not np.any(total % 2 ** (time_steps - t + 1))
        v_next, spikes = lif_step(v_int, acc, consts)
        np.testing.assert_array_equal(v_next, np.where(spikes, 0, total // 2))
        v_int = v_next
    with pytest.raises(ValueError, match="lif_run"):
        lif_run(np.zeros((time_steps + 1, 2, 8), np.int64), consts)


@pytest.mark.parametrize("attn_scale", (0.25, 0.125))
def test_attention_lif_threshold_is_exact(attn_scale):
    rng = np.random.default_rng(3)
    time_steps, batch, tokens, dim, heads = 4, 2, 16, 8, 2
    consts = fold_lif(np.ones(dim), np.zeros(dim), attn_scale, 0.5, 0, time_steps)
    np.testing.assert_array_equal(consts.thr_int, int(0.5 / attn_scale) * 2**time_steps)
    np.testing.assert_array_equal(consts.bias_int, 0)
    np.testing.assert_array_equal(consts.sign, 1)
    q, k, v = (rng.integers(0, 2, (time_steps, batch, tokens, dim)).astype(np.uint8) for _ in range(3))
    y = ssa_int(q, k, v, heads)
    expected, _ = lif_float(attn_scale * y, 0.5)
    np.testing.assert_array_equal(lif_run(y, consts), expected)
    assert 0 < expected.sum() < expected.size


def test_dead_channel():
    """a_c = 0: the input is the constant b_c; exact unless theta < b_c < 2 theta (documented)."""
    theta, time_steps = 1.0, 6
    b = np.array([2.0, 3.0, 1.0, -1.0, 1.5])
    consts = fold_lif(np.zeros(5), b, 0.1, theta, 4, time_steps)
    assert consts.sign.tolist() == [0] * 5 and consts.bias_int.tolist() == [0] * 5
    acc_seq = np.random.default_rng(0).integers(-30, 31, (time_steps, 3, 5))
    spikes = lif_run(acc_seq, consts)
    expected, _ = lif_float(np.broadcast_to(b, acc_seq.shape), theta)
    np.testing.assert_array_equal(spikes[..., :4], expected[..., :4])
    assert expected[..., 0].all() and not expected[..., 2:4].any()
    assert not spikes[..., 4].any() and expected[..., 4].any()  # the real neuron fires every 2nd step


def test_lif_channel_axis():
    rng = np.random.default_rng(4)
    consts = fold_lif(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), 0.05, 1.0, 4, 5)
    acc_seq = rng.integers(-40, 41, (5, 2, 3, 4, 4))  # [T, B, C, H, W]
    channels_last = lif_run(np.moveaxis(acc_seq, 2, -1), consts)
    np.testing.assert_array_equal(lif_run(acc_seq, consts, channel_axis=-3), np.moveaxis(channels_last, -1, 2))
    np.testing.assert_array_equal(lif_run(acc_seq, consts, channel_axis=1), np.moveaxis(channels_last, -1, 2))


def test_membrane_bits_holds_every_value():
    rng = np.random.default_rng(6)
    time_steps, acc_lo, acc_hi = 8, -300, 500
    consts = fold_lif(rng.uniform(-2, 2, 8), rng.uniform(-5, 5, 8), 0.02, 1.0, 6, time_steps)
    half = 2 ** (membrane_bits(acc_lo, acc_hi, consts) - 1)
    f = consts.frac_bits
    extremes = [np.full((time_steps, 1, 8), acc) for acc in (acc_lo, acc_hi)]
    for acc_seq in [rng.integers(acc_lo, acc_hi + 1, (time_steps, 64, 8)), *extremes]:
        v_int = np.zeros(acc_seq.shape[1:], np.int64)
        for acc in acc_seq:
            total = v_int + (acc << f) + (consts.bias_int << time_steps)
            assert -half <= total.min() and total.max() < half
            v_int, _ = lif_step(v_int, acc, consts)
    with pytest.raises(ValueError, match="lif_step"):
        membrane_bits(-(2**50), 2**50, consts)


def test_fold_lif_rejects_bad_constants():
    with pytest.raises(ValueError, match="fold_lif"):
        fold_lif(np.ones(2), np.zeros(2), 0.1, 0.0, 0, 4)
    with pytest.raises(ValueError, match="fold_lif"):
        fold_lif(np.ones(2), np.zeros(2), -0.1, 1.0, 0, 4)
    with pytest.raises(ValueError, match="fold_lif: channel 1 thr_int"):
        fold_lif(np.array([1.0, 1e-30]), np.zeros(2), 0.1, 1.0, 4, 8)
