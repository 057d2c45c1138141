"""C++ type names of the generated project, formed here and nowhere else.

A CType is the spelling of one C++ type (`ap_int<22>`, `hqflow::po2_weight<3, true>`). The config
dataclasses (configs.py) tell their typedef members from their constants by it, and the writer
puts CTypes into the templates verbatim.
"""

from __future__ import annotations

from hqflow import numerics
from hqflow.numerics import value_bits  # noqa: F401  (the bits of a stored value; ops.py reads it here)


class CType(str):
    """The spelling of a C++ type, e.g. CType("ap_int<22>")."""


SPIKE_T = CType("hqflow::spike_t")  # ap_uint<1>, kernels/hqflow_common.h
ROM_WORD_T = CType("hqflow::rom_word_t")  # 64-bit ROM word of packed weight codes
INT64_T = CType("long long")  # the LIF bias and threshold tables, the head bias
INT8_T = CType("signed char")  # the LIF sign table
INT_TYPES = ((8, INT8_T), (16, CType("short")), (32, CType("int")), (64, INT64_T))  # (bits, type)


def int_for(values) -> CType:
    """The narrowest of signed char, short, int and long long holding every value (a table's C type)."""
    low, high = (min(values), max(values)) if len(values) else (0, 0)
    return next(ctype for bits, ctype in INT_TYPES if -(1 << (bits - 1)) <= low and high < 1 << (bits - 1))
ROM_WORD_BITS = numerics.ROM_WORD_BITS  # the width of ROM_WORD_T (layout: hqflow.numerics.rom)


def ap_int(width: int) -> CType:
    """The signed arbitrary-precision type of `width` bits (two's complement, 1 <= width)."""
    return CType(f"ap_int<{int(width)}>")


def ap_uint(width: int) -> CType:
    """The unsigned arbitrary-precision type of `width` bits."""
    return CType(f"ap_uint<{int(width)}>")


def uint_for(max_value: int) -> CType:
    """The narrowest unsigned type holding [0, max_value] (at least 1 bit)."""
    return ap_uint(value_bits(max_value))


def value_type(max_value: int) -> CType:
    """A node output's type for values in [0, max_value]: spikes (max 1) are SPIKE_T."""
    return SPIKE_T if max_value == 1 else uint_for(max_value)


def node_type(namespace: str, ident: str) -> CType:
    """The typedef of a node's output values in the project's namespace: `<namespace>::<ident>_t`."""
    return CType(f"{namespace}::{ident}_t" if namespace else f"{ident}_t")


def weight_scheme(format_name: str, zero_point: int | None = None) -> CType:
    """The kernel library's weight scheme struct (kernels/hqflow_weights.h) for a weight format;
    zero_point: the uniform formats' (required for them)."""
    fmt = numerics.Candidate.parse(format_name)
    if fmt.scheme == "uniform":
        if zero_point is None:
            raise ValueError(f"weight format {format_name}: a uniform scheme needs its zero point")
        return CType(f"hqflow::uniform_weight<{fmt.bits}, {int(zero_point)}>")
    if fmt.scheme == "po2":
        return CType(f"hqflow::po2_weight<{fmt.bits}, {'true' if fmt.zero_level else 'false'}>")
    return CType("hqflow::fixed_weight")
