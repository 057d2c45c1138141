"""The simulator's fast products (numerics/fast.py) equal numerics' reference ops, bit for bit, on every
dtype path (float32 below 2^24, float64 below 2^53, int64 beyond) and across im2col chunks."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from hqflow import numerics
from hqflow.numerics import fast

# (dtype path, the largest bound it takes): the inputs below aim at bounds near each limit
PATHS = [(np.float32, fast.FLOAT32_EXACT), (np.float64, numerics.FLOAT64_EXACT), (np.int64, numerics.INT64_MAX)]


def test_doctests():
    result = doctest.testmod(fast)
    assert result.attempted > 0 and result.failed == 0


def _random_layer(rng, path_limit: int, shape_x, shape_w, fill: float):
    """x >= 0 and w_eff of the given shapes whose bound acc_bound(max x, w_eff) lies in (limit / 4, limit]
    (fill in (0, 1]: how close to the limit); odd values, so a float rounding would show."""
    fan_in = int(np.prod(shape_w[1:]))
    x_max = int(rng.choice([1, 3, 255, 2**15 - 1]))
    w_max = max(1, int(path_limit * fill) // (x_max * fan_in))
    x = rng.integers(0, x_max + 1, shape_x)
    x.flat[0] = x_max
    w_eff = rng.integers(-w_max, w_max + 1, shape_w) | 1  # odd: every partial sum needs its low bits
    w_eff.flat[: fan_in] = rng.choice([-1, 1]) * (w_max | 1)  # one output's row at the largest magnitude
    return x, w_eff


@pytest.mark.parametrize("path, limit", PATHS, ids=["float32", "float64", "int64"])
@pytest.mark.parametrize("seed", range(12))
def test_conv2d_acc_equals_reference(path, limit, seed):
    rng = np.random.default_rng(seed)
    batch, c, h, w, o = (int(v) for v in rng.integers(1, 6, 5))
    k, padding = [(3, 1), (3, 0), (1, 0), (1, 1)][seed % 4]
    h, w = h + k, w + k
    x, w_eff = _random_layer(rng, limit, (batch, c, h, w), (o, c, k, k), rng.uniform(0.3, 0.95))
    bound = numerics.acc_bound(x.max(), w_eff)
    assert fast.exact_dtype(bound, "test") is path
    np.testing.assert_array_equal(fast.conv2d_acc(x, w_eff, padding), numerics.conv2d_acc(x, w_eff, padding))


@pytest.mark.parametrize("path, limit", PATHS, ids=["float32", "float64", "int64"])
@pytest.mark.parametrize("seed", range(12))
def test_linear_acc_equals_reference(path, limit, seed):
    rng = np.random.default_rng(100 + seed)
    lead = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 4))))  # [..., C_in]
    c_in, c_out = int(rng.integers(1, 70)), int(rng.integers(1, 20))
    x, w_eff = _random_layer(rng, limit, (*lead, c_in), (c_out, c_in), rng.uniform(0.3, 0.95))
    assert fast.exact_dtype(numerics.acc_bound(x.max(), w_eff), "test") is path
    acc = fast.linear_acc(x, w_eff)
    assert acc.dtype == np.int64 and acc.shape == (*lead, c_out)
    np.testing.assert_array_equal(acc, numerics.linear_acc(x, w_eff))


def _boundary_row(bound: int, terms: int = 8) -> np.ndarray:
    """One output's weights, odd, summing to exactly `bound` in magnitude: w_eff [1, terms]."""
    part = bound // terms - 1 | 1
    return np.array([[part] * (terms - 1) + [bound - part * (terms - 1)]], np.int64)


@pytest.mark.parametrize("limit", [fast.FLOAT32_EXACT, numerics.FLOAT64_EXACT], ids=["2^24", "2^53"])
def test_exactly_at_and_just_past_each_limit(limit):
    """Bounds limit and limit + 1 (the last of one path, the first of the next) are both exact;
    forcing the narrower type one step past its limit does change bits (a negative control)."""
    x = np.ones((3, 8), np.int64)
    for bound in (limit - 1, limit, limit + 1, limit + 3):
        w_eff = _boundary_row(bound)
        assert numerics.acc_bound(1, w_eff) == bound
        np.testing.assert_array_equal(fast.linear_acc(x, w_eff), [[bound]] * 3)
        np.testing.assert_array_equal(fast.linear_acc(x, w_eff), numerics.linear_acc(x, w_eff))
        w_conv = w_eff.reshape(1, 8, 1, 1)
        x_conv = np.ones((2, 8, 3, 3), np.int64)
        np.testing.assert_array_equal(fast.conv2d_acc(x_conv, w_conv, 0), numerics.conv2d_acc(x_conv, w_conv, 0))
    narrow = np.float32 if limit == fast.FLOAT32_EXACT else np.float64
    odd_sum = x[:1].astype(narrow) @ _boundary_row(limit + 3).T.astype(narrow)
    assert int(odd_sum[0, 0]) != limit + 3  # the narrower type would not have been exact


def test_conv2d_acc_chunks_of_images(monkeypatch):
    """Several im2col chunks, the last one partial, give the reference's result."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (7, 3, 5, 6))
    w_eff = rng.integers(-255, 256, (4, 3, 3, 3))
    monkeypatch.setattr(fast, "CONV_CHUNK_ELEMENTS", 3 * 9 * 5 * 6 * 2)  # 2 images per chunk: 4 chunks
    np.testing.assert_array_equal(fast.conv2d_acc(x, w_eff), numerics.conv2d_acc(x, w_eff))


def test_beyond_int64_and_shape_errors_name_the_op():
    for module in (fast, numerics):
        with pytest.raises(ValueError, match="conv2d_acc: \\|acc\\| bound"):
            module.conv2d_acc(np.full((1, 1, 3, 3), 2**20), np.full((1, 1, 3, 3), 2**42))
        with pytest.raises(ValueError, match="linear_acc: \\|acc\\| bound"):
            module.linear_acc(np.full((1, 4), 2**20), np.full((2, 4), 2**42))
        with pytest.raises(ValueError, match="conv2d_acc: input shape"):
            module.conv2d_acc(np.zeros((1, 2, 4, 4)), np.zeros((3, 1, 3, 3), np.int64))
        with pytest.raises(ValueError, match="linear_acc: input shape"):
            module.linear_acc(np.zeros((1, 4)), np.zeros((2, 3), np.int64))
