"""The simulator's speed policy: exact integer products through BLAS (float32 / float64) where a
bound proves them exact, int64 beyond; im2col convolution in chunks of images.

conv2d_acc and linear_acc here return exactly hqflow.numerics' reference ops (the same int64
array, bit for bit; tests/test_fast.py checks it on random inputs at every dtype boundary), only
faster. The exactness rule (exact_dtype), by B = acc_bound(max|x|, w_eff), a bound on |acc| and on
every partial sum in any summation order:
    B <= 2^24    float32 BLAS (float32 holds every integer of magnitude <= 2^24)
    B <= 2^53    float64 BLAS
    B <= 2^63-1  int64 (NumPy's integer matmul)
    beyond       ValueError naming the op (numerics.check_int64)
NumPy and the core only.
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics

FLOAT32_EXACT = 2**24  # float32 holds every integer up to this magnitude
CONV_CHUNK_ELEMENTS = 2**21  # conv2d_acc's im2col working set per chunk of images (elements)


def exact_dtype(bound: int, op: str) -> type:
    """The cheapest type that holds every product and partial sum bounded by `bound` (a Python int).

    >>> exact_dtype(2**24, "op"), exact_dtype(2**24 + 1, "op"), exact_dtype(2**53 + 1, "op")
    (<class 'numpy.float32'>, <class 'numpy.float64'>, <class 'numpy.int64'>)
    """
    if bound <= FLOAT32_EXACT:
        return np.float32
    if bound <= numerics.FLOAT64_EXACT:
        return np.float64
    numerics.check_int64(op, "|acc|", bound)
    return np.int64


def conv2d_acc(x, w_eff, padding: int = 1) -> np.ndarray:
    """numerics.conv2d_acc, fast: x [B, C, H, W] (integers), w_eff [O, C, k, k] -> acc int64 [B, O, H', W'].

    w_eff [O, C k k] @ patches [B, C k k, H' W'] (im2col, channels first, so the product lands in
    [B, O, H', W'] order with no transpose) in exact_dtype(acc_bound(max|x|, w_eff)), a chunk of
    images at a time (CONV_CHUNK_ELEMENTS: small working arrays are reused by the allocator
    instead of page-faulted anew).

    >>> conv2d_acc(np.ones((1, 1, 2, 2), np.uint8), np.full((1, 1, 3, 3), 2))[0, 0]
    array([[8, 8],
           [8, 8]])
    """
    x, w_eff, bound = numerics.conv2d_operands(x, w_eff)
    dtype = exact_dtype(bound, "conv2d_acc")
    (out_c, in_c, kh, kw), (batch, _, h, w) = w_eff.shape, x.shape
    h_out, w_out = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    w_2d = w_eff.reshape(out_c, -1).astype(dtype)
    acc = np.empty((batch, out_c, h_out, w_out), np.int64)
    chunk = max(1, CONV_CHUNK_ELEMENTS // (in_c * kh * kw * h_out * w_out))  # images per chunk
    for b0 in range(0, batch, chunk):
        xb = x[b0 : b0 + chunk]
        x_pad = np.zeros((len(xb), in_c, h + 2 * padding, w + 2 * padding), dtype)
        x_pad[:, :, padding : padding + h, padding : padding + w] = xb
        patches = np.empty((len(xb), in_c, kh, kw, h_out, w_out), dtype)  # im2col, channels first
        for i in range(kh):
            for j in range(kw):
                patches[:, :, i, j] = x_pad[:, :, i : i + h_out, j : j + w_out]
        product = np.matmul(w_2d, patches.reshape(len(xb), -1, h_out * w_out))
        acc[b0 : b0 + chunk] = product.reshape(len(xb), out_c, h_out, w_out)
    return acc


def linear_acc(x, w_eff) -> np.ndarray:
    """numerics.linear_acc, fast: x [..., C_in] (integers), w_eff [C_out, C_in] -> acc int64 [..., C_out].

    One 2-D product x [rows, C_in] @ w_eff^T (far faster than a batched matmul) in
    exact_dtype(acc_bound(max|x|, w_eff)).

    >>> linear_acc(np.array([[1, 0, 2]]), np.array([[3, -1, 4], [0, 5, -2]]))
    array([[11, -4]])
    """
    x, w_eff, bound = numerics.linear_operands(x, w_eff)
    dtype = exact_dtype(bound, "linear_acc")
    rows = x.reshape(-1, x.shape[-1])
    acc = np.matmul(rows.astype(dtype), w_eff.T.astype(dtype))
    return acc.astype(np.int64).reshape(*x.shape[:-1], w_eff.shape[0])
