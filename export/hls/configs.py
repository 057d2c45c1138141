"""Typed kernel configs: the base class and the configs several kernels share (the weight ROM, the LIF);
each op's own config is next to its builder (export/hls/ops.py).

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
