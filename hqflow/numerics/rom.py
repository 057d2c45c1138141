"""The weight ROM layout of the hardware kernels: effective weights <-> b-bit codes <-> 64-bit words.

Defined here once: the HLS writer (export/hls.py) encodes and packs with rom_encode / pack_rom,
and the C++ decode (hls_templates/kernels/hqflow_weights.h: the weight schemes' product() and
accumulate_row) is tested against rom_decode / unpack_rom (tests/test_hls.py).

Codes, b = rom_code_bits(candidate) bits each, of the effective integer weights w_eff (codes.py):
    uniform-b   code = w_eff + zero_point = w_int in [0, 2^b);  w_eff = code - zero_point.
    po2-b       code = [negative : 1][shift : b - 1];  w_eff = (-1)^negative * 2^shift,
                shift in [0, 2^(b-1) - 1].
    po2z-b      the same with shift in [0, 2^(b-1) - 2]: the all-ones shift field 2^(b-1) - 1 (with
                negative 0) is the weight 0.
    fp32        b = 32: code = w_eff in 32-bit two's complement (the fixed point w_fx).
Words (ROM_WORD_BITS = 64): a word holds lanes = 64 // b codes, lane l in bits [l * b, (l + 1) * b).
A table row holds one input's codes for every output o: word o // lanes, lane o % lanes; the
unused lanes of a row's last word are 0.
Encoding is exact and checked: a weight the format cannot hold is a ValueError, never wrapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hqflow.numerics.codes import FIXED_POINT_BITS, MAX_PO2_SPAN

if TYPE_CHECKING:
    from hqflow.numerics.formats import Candidate

__all__ = ["ROM_WORD_BITS", "pack_rom", "rom_code_bits", "rom_decode", "rom_encode", "unpack_rom"]

ROM_WORD_BITS = 64


def rom_code_bits(candidate: Candidate) -> int:
    """Bits of one ROM code: the format's bits (uniform, po2), or 32 for fp32's fixed point."""
    return FIXED_POINT_BITS if candidate.scheme == "fp32" else candidate.bits


def _po2_shift_field(candidate: Candidate) -> int:
    """The all-ones shift field 2^(b-1) - 1 of a po2(z)-b code (the weight 0 under po2z)."""
    return (1 << (candidate.bits - 1)) - 1


def rom_encode(candidate: Candidate, w_eff, zero_point: int = 0, what: str = "weights") -> np.ndarray:
    """ROM codes of integer weights: w_eff int64 [any shape] -> codes uint64 [same shape], < 2^rom_code_bits.

    zero_point: the uniform format's (an attribute of the node); what names the weights in errors.
    ValueError if a weight is not a level of the format (outside the uniform codes, not a power of
    two within the po2 shifts, 0 in a po2 format without a zero level, beyond 32-bit fixed point).

    >>> from hqflow.numerics import Candidate
    >>> rom_encode(Candidate.parse("po2z-3"), np.array([1, -2, 0, 4]))   # [negative][shift]
    array([0, 5, 3, 2], dtype=uint64)
    >>> rom_encode(Candidate.parse("fp32"), np.array([-1, 5]))
    array([4294967295,          5], dtype=uint64)
    """
    w_eff = np.asarray(w_eff, np.int64)
    bits = rom_code_bits(candidate)
    if candidate.scheme == "uniform":
        codes = w_eff + int(zero_point)
        bad = (codes < 0) | (codes >= 1 << bits)
        expected = f"w_eff + zero_point {zero_point} in 0..{2**bits - 1}"
    elif candidate.scheme == "po2":
        field = _po2_shift_field(candidate)
        largest = field - 1 if candidate.zero_level else field
        magnitude = np.abs(w_eff)
        shift = np.frexp(magnitude.astype(np.float64))[1].astype(np.int64) - 1  # exact for powers of two
        shift = np.where(magnitude == 0, 0, shift)
        bad = (shift > largest) | (np.left_shift(1, np.clip(shift, 0, MAX_PO2_SPAN)) != magnitude)
        if candidate.zero_level:
            bad &= magnitude != 0
            shift = np.where(magnitude == 0, field, shift)
        codes = ((w_eff < 0).astype(np.int64) << (bits - 1)) | shift
        expected = f"+-2^shift, shift in 0..{largest}" + (" or 0" if candidate.zero_level else " (no zero level)")
    else:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        bad = (w_eff < lo) | (w_eff > hi)
        codes = w_eff & ((1 << bits) - 1)
        expected = f"{bits}-bit two's complement in {lo}..{hi}"
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"rom_encode: {what} ({candidate.name}): weight {int(w_eff[index])} at index {index}, "
                         f"expected {expected}")
    return codes.astype(np.uint64)


def rom_decode(candidate: Candidate, codes, zero_point: int = 0) -> np.ndarray:
    """Integer weights of ROM codes, as the C++ weight schemes compute them: codes [any shape] -> w_eff int64.

    The inverse of rom_encode: rom_decode(c, rom_encode(c, w_eff, zp), zp) == w_eff. Every code
    < 2^rom_code_bits decodes (under po2z, the all-ones shift field is 0 whatever its sign bit),
    except a po2 shift beyond MAX_PO2_SPAN (62, int64's range): ValueError.

    >>> from hqflow.numerics import Candidate
    >>> rom_decode(Candidate.parse("po2z-3"), np.uint64([0, 5, 3, 7, 2]))
    array([ 1, -2,  0,  0,  4])
    """
    codes = np.asarray(codes, np.uint64).astype(np.int64)  # codes < 2^32: no wrap
    bits = rom_code_bits(candidate)
    if candidate.scheme == "uniform":
        return codes - int(zero_point)
    if candidate.scheme == "po2":
        field = _po2_shift_field(candidate)
        shift = codes & field
        live = shift != field if candidate.zero_level else True
        if np.any(live & (shift > MAX_PO2_SPAN)):
            raise ValueError(f"rom_decode: a {candidate.name} shift beyond {MAX_PO2_SPAN}, more than int64 holds")
        shift = np.where(live, shift, 0)
        w_eff = np.where(codes >> (bits - 1) == 1, -1, 1) * (np.int64(1) << shift)
        return np.where(live, w_eff, 0)
    return codes - ((codes >> (bits - 1)) << bits)  # two's complement


def pack_rom(codes, bits: int) -> np.ndarray:
    """codes uint64 [rows, outputs] < 2^bits -> words uint64 [rows, ceil(outputs / lanes)], lanes = 64 // bits.

    Output o sits in word o // lanes, bits [(o % lanes) * bits, (o % lanes + 1) * bits).

    >>> pack_rom(np.array([[1, 2, 3]], np.uint64), 32)
    array([[8589934593,          3]], dtype=uint64)
    """
    codes = np.asarray(codes, np.uint64)
    if codes.size and int(codes.max()) >= 1 << bits:
        raise ValueError(f"pack_rom: a code exceeds {bits} bits")
    lanes = ROM_WORD_BITS // bits
    rows, outputs = codes.shape
    words = -(-outputs // lanes)
    padded = np.zeros((rows, words * lanes), np.uint64)
    padded[:, :outputs] = codes
    shifts = np.arange(lanes, dtype=np.uint64) * np.uint64(bits)
    return np.bitwise_or.reduce(padded.reshape(rows, words, lanes) << shifts, axis=2)


def unpack_rom(words, bits: int, outputs: int) -> np.ndarray:
    """The inverse of pack_rom: words uint64 [rows, ceil(outputs / lanes)] -> codes uint64 [rows, outputs].

    >>> unpack_rom(np.array([[8589934593, 3]], np.uint64), 32, 3)
    array([[1, 2, 3]], dtype=uint64)
    """
    words = np.asarray(words, np.uint64)
    lanes = ROM_WORD_BITS // bits
    shifts = np.arange(lanes, dtype=np.uint64) * np.uint64(bits)
    lanes_of = (words[:, :, None] >> shifts) & np.uint64((1 << bits) - 1)  # [rows, words, lanes]
    return lanes_of.reshape(len(words), -1)[:, :outputs]
