"""Typed kernel configs: one frozen dataclass per config struct of the kernel library.

Each class mirrors a documented default struct in hls_templates/kernels/ (its `cpp_base`, as
hls4ml's `dense_config`); the generated `<node>_config` in parameters.h inherits from that struct
and overrides every field the model sets. A field annotated CType becomes a typedef member, an int
field a `static const unsigned` member, both named as the field. Widths are in bits, sizes in
values. tests/test_hls.py checks that each C++ default struct declares exactly these names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from hqflow.export.hls.cpp_types import CType


@dataclass(frozen=True)
class KernelConfig:
    """Base of the kernel configs: typedef members (CType fields) and constants (int fields, >= 0)."""

    cpp_base: ClassVar[str] = ""  # the kernel header's default struct, e.g. hqflow::conv_lif_config

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("CType", CType):
                ok = isinstance(value, CType)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if not ok:
                raise TypeError(f"{type(self).__name__}.{field.name} = {value!r}: expected "
                                f"{'a CType' if field.type in ('CType', CType) else 'an int >= 0'}")

    def typedefs(self) -> list[tuple[str, CType]]:
        """(member name, C++ type) of the typedef members, in field order."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.type in ("CType", CType)]

    def constants(self) -> list[tuple[str, int]]:
        """(member name, value) of the `static const unsigned` members, in field order."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.type not in ("CType", CType)]


@dataclass(frozen=True)
class WeightRomConfig(KernelConfig):
    """A weighted kernel's input, weights and accumulator (hqflow::weight_rom_config, hqflow_weights.h)."""

    cpp_base: ClassVar[str] = "hqflow::weight_rom_config"
    in_t: CType  # input values (spikes, counts or residual sums)
    acc_t: CType  # ap_int<acc_bits>: holds every partial sum
    weight: CType  # the weight scheme struct (cpp_types.weight_scheme)
    row_words: int  # ROM words per row: ceil(outputs / (64 // code bits))
    reuse_factor: int  # initiation interval of the accumulation's loop over the window's inputs


@dataclass(frozen=True)
class LifConfig(KernelConfig):
    """The LIF after a kernel (hqflow::lif_config, hqflow_lif.h)."""

    cpp_base: ClassVar[str] = "hqflow::lif_config"
    v_t: CType  # ap_int<v_bits>: the membrane
    frac_bits: int  # fractional bits of the membrane
    time_steps: int  # T: the bias enters the membrane as bias_int << T
    table_t: CType  # the bias_int and thr_int tables: the narrowest of signed char .. long long holding them


@dataclass(frozen=True)
class WlifConfig(LifConfig, WeightRomConfig):
    """hqflow::wlif (hqflow_wlif.h): conv 3x3 (padding 1) or linear (a 1x1 window over the tokens), then
    the LIF, streaming: words of T values in, words of T spikes out."""

    cpp_base: ClassVar[str] = "hqflow::wlif_config"
    in_word_t: CType  # ap_uint<T * in_t bits>
    out_word_t: CType  # ap_uint<T>
    storage: CType  # the line buffer's memory: hqflow::storage_bram, _uram or _lutram
    height: int  # H, of the input and the output (linear: N tokens)
    width: int  # W (linear: 1)
    in_channels: int
    out_channels: int
    kernel_size: int  # K: 3 (conv) or 1 (linear), stride 1
    padding: int  # (K - 1) / 2
    lanes: int  # P: output channels a group (the schedule's folding)


@dataclass(frozen=True)
class SsaConfig(LifConfig):
    """hqflow::ssa_lif (hqflow_ssa.h): spiking self-attention, then the attention LIF."""

    cpp_base: ClassVar[str] = "hqflow::ssa_config"
    word_t: CType  # ap_uint<T>: q, k, v and the output
    acc_t: CType  # ap_int<acc_bits>: q (k^T v), at most tokens * head_dim
    kv_t: CType  # k^T v counts, at most tokens
    storage: CType  # q of every token and k^T v: hqflow::storage_bram, _uram or _lutram
    tokens: int
    dim: int  # D = num_heads * head_dim
    num_heads: int
    head_dim: int
    parallel: int  # k^T v entries updated at once: head_dim / the schedule's kv split


@dataclass(frozen=True)
class MaxpoolConfig(KernelConfig):
    """hqflow::maxpool_or (hqflow_spike_ops.h): 3x3, stride 2, padding 1, of spikes."""

    cpp_base: ClassVar[str] = "hqflow::maxpool_config"
    word_t: CType  # ap_uint<T>
    storage: CType  # the line buffer's memory
    channels: int
    in_height: int
    in_width: int
    out_height: int  # (in_height - 1) / 2 + 1
    out_width: int
    kernel_size: int  # the window (attrs); the kernel implements 3, stride 2, padding 1 (a static_assert)
    stride: int
    padding: int


@dataclass(frozen=True)
class AddConfig(KernelConfig):
    """hqflow::add (hqflow_spike_ops.h): the residual add, elementwise at every step."""

    cpp_base: ClassVar[str] = "hqflow::add_config"
    a_word_t: CType
    b_word_t: CType
    out_word_t: CType
    a_bits: int
    b_bits: int
    out_bits: int  # holds the sum's range
    time_steps: int
    size: int  # elements an image


@dataclass(frozen=True)
class HeadConfig(WeightRomConfig):
    """hqflow::head (hqflow_head.h): sums over tokens and steps, then the logits."""

    cpp_base: ClassVar[str] = "hqflow::head_config"
    in_word_t: CType  # ap_uint<T * in_t bits>
    sum_t: CType  # the input summed over tokens and steps
    logit_t: CType  # the logits' type (their range)
    time_steps: int
    tokens: int
    in_channels: int
    classes: int
    bias_frac_bits: int  # logits = (acc << bias_frac_bits) + bias_int
