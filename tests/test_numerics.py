"""Weight codes and formats (hqflow.numerics: formats, codes, rom): every representable code of every bit width,
ties, saturation, and the ROM word layout."""

import doctest
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.numerics import (
    DEFAULT_CANDIDATES,
    Candidate,
    fake_quantize,
    po2_dequantize,
    po2_levels,
    po2_max_shift,
    po2_quantize,
    pow2,
    uniform_dequantize,
    uniform_params,
    uniform_quantize,
)

from conftest import EVERY_FORMAT

BITS = range(2, 9)
# (scale, zero_point) pairs: a power of two (exact midpoints), an odd float32, the extreme zero points
UNIFORM_CASES = [(0.25, None), (0.0123, None), (1e-3, 0), (7.5, -1)]  # None: the middle code, -1: the last
ALPHA_EXPS = (-3, 0, 2)
HALF_STEP = 0.5 + 1e-3  # in uniform steps (scale): half a step, plus float32 rounding of scale and zero_point


def _zero_point(bits, zero_point):
    return 2 ** (bits - 1) if zero_point is None else zero_point % 2**bits


@pytest.mark.parametrize("module", [numerics.formats, numerics.codes, numerics.rom], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# ---- uniform ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("scale, zero_point", UNIFORM_CASES)
def test_uniform_every_code_round_trips(bits, scale, zero_point):
    zero_point = _zero_point(bits, zero_point)
    w_int = np.arange(2**bits, dtype=np.uint8)
    w = uniform_dequantize(w_int, scale, zero_point)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(uniform_quantize(w, bits, scale, zero_point), w_int)
    assert len(np.unique(w)) == 2**bits
    np.testing.assert_array_equal(w, (w_int.astype(np.float32) - zero_point) * np.float32(scale))
    assert w[zero_point] == 0


@pytest.mark.parametrize("bits", BITS)
def test_uniform_round_half_up_and_saturation(bits):
    scale, zero_point = 0.25, 2 ** (bits - 1)  # exact midpoints: (k + 0.5) * 0.25
    k = np.arange(-zero_point, 2**bits - zero_point - 1)
    mid = ((k + 0.5) * scale).astype(np.float32)
    np.testing.assert_array_equal(uniform_quantize(mid, bits, scale, zero_point), k + 1 + zero_point)  # ties up
    below = ((k + 0.5 - 1 / 64) * scale).astype(np.float32)  # exact, so w / scale + 0.5 is exact too
    np.testing.assert_array_equal(uniform_quantize(below, bits, scale, zero_point), k + zero_point)
    # the one input where floor(x + 0.5) in float32 is not round half up (documented)
    assert uniform_quantize(np.nextafter(np.float32(0.5), np.float32(0)), bits, 1.0, 0) == 1
    w = np.float32([-1e30, -np.inf, 1e30, np.inf])
    np.testing.assert_array_equal(uniform_quantize(w, bits, scale, zero_point), [0, 0, 2**bits - 1, 2**bits - 1])


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-1e3, 1e3, width=32),
    hi=st.floats(-1e3, 1e3, width=32),
    bits=st.integers(2, 8),
)
def test_uniform_params_keep_zero_exact(lo, hi, bits):
    lo, hi = min(lo, hi), max(lo, hi)
    scale, zero_point = uniform_params(lo, hi, bits)
    assert scale > 0 and np.float32(scale) == scale and 0 <= zero_point <= 2**bits - 1
    w_int = uniform_quantize(np.float32([0.0]), bits, scale, zero_point)
    assert w_int[0] == zero_point and uniform_dequantize(w_int, scale, zero_point)[0] == 0
    lo0, hi0 = np.float32(min(lo, 0)), np.float32(max(hi, 0))
    if hi0 > lo0 and (hi0 - lo0) / np.float32(2**bits - 1) >= np.finfo(np.float32).tiny:
        assert np.float32(scale) == (hi0 - lo0) / np.float32(2**bits - 1)
        levels = Candidate("uniform", bits).levels({"scale": scale, "zero_point": zero_point})
        reach = HALF_STEP * scale  # the levels cover [lo, hi] up to half a step at each end
        assert levels[0] <= lo0 + reach and levels[-1] >= hi0 - reach


def test_uniform_params_extend_to_zero_and_guard_zero_tensor():
    assert uniform_params(0.5, 1.5, 2) == (0.5, 0)  # [0.5, 1.5] -> [0, 1.5]
    assert uniform_params(-3.0, -1.0, 2) == (1.0, 3)  # [-3, -1] -> [-3, 0]
    assert uniform_params(0.0, 0.0, 4) == (1.0, 0)
    assert uniform_params(-1e-44, 0.0, 8)[0] == 1.0  # a range too narrow for a normal scale


# ---- power of two -----------------------------------------------------------------------------


def _po2_codes(bits, zero_level):
    w_exp = po2_levels(bits, zero_level)
    w_sign = np.repeat(np.int8([-1, 1]), len(w_exp))
    w_exp = np.tile(w_exp, 2)
    if zero_level:
        w_sign, w_exp = np.append(w_sign, np.int8(0)), np.append(w_exp, np.int8(0))
    return w_sign, w_exp


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("zero_level", [False, True])
@pytest.mark.parametrize("alpha_exp", ALPHA_EXPS)
def test_po2_every_code_round_trips(bits, zero_level, alpha_exp):
    w_sign, w_exp = _po2_codes(bits, zero_level)
    w = po2_dequantize(w_sign, w_exp, alpha_exp)
    assert w.dtype == np.float32
    got_sign, got_exp = po2_quantize(w, bits, alpha_exp, zero_level)
    np.testing.assert_array_equal(got_sign, w_sign)
    np.testing.assert_array_equal(got_exp, w_exp)
    assert got_sign.dtype == got_exp.dtype == np.int8
    n_levels = 2**bits - int(zero_level)
    assert len(np.unique(w)) == len(w) == n_levels


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("zero_level", [False, True])
def test_po2_level_set_as_documented(bits, zero_level):
    kmax = 2 ** (bits - 1) - (2 if zero_level else 1)
    assert po2_max_shift(bits, zero_level) == kmax
    levels = Candidate("po2", bits, zero_level).levels({"alpha_exp": 1})
    magnitudes = [2.0 ** (1 - k) for k in range(kmax + 1)]
    expected = sorted([-m for m in magnitudes] + magnitudes + ([0.0] if zero_level else []))
    np.testing.assert_array_equal(levels, np.float32(expected))


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("zero_level", [False, True])
@pytest.mark.parametrize("alpha_exp", ALPHA_EXPS)
def test_po2_round_half_up_in_magnitude(bits, zero_level, alpha_exp):
    """At 0.75 * 2^(alpha_exp - k) (the midpoint below level k) the larger level wins; just below, the smaller."""
    kmax = po2_max_shift(bits, zero_level)
    k = np.arange(kmax)
    mid = np.ldexp(np.float32(0.75), (alpha_exp - k).astype(np.int32))
    below = np.nextafter(mid, np.float32(0))
    for sign in (1, -1):
        w_sign, w_exp = po2_quantize(sign * mid, bits, alpha_exp, zero_level)
        np.testing.assert_array_equal(w_exp, -k)
        np.testing.assert_array_equal(w_sign, sign)
        np.testing.assert_array_equal(po2_quantize(sign * below, bits, alpha_exp, zero_level)[1], -k - 1)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("alpha_exp", ALPHA_EXPS)
def test_po2_saturation_and_zero(bits, alpha_exp):
    for zero_level in (False, True):
        kmax = po2_max_shift(bits, zero_level)
        w_sign, w_exp = po2_quantize(np.float32([1e30, -np.inf, 2.0**alpha_exp * 1.49]), bits, alpha_exp, zero_level)
        np.testing.assert_array_equal(w_sign, [1, -1, 1])
        np.testing.assert_array_equal(w_exp, [0, 0, 0])
        smallest = np.ldexp(np.float32(1), alpha_exp - kmax)
        half = smallest / 2  # midpoint to 0: a tie, goes up to the smallest level
        w = np.float32([half, np.nextafter(half, np.float32(0)), -smallest / 8, 0.0, -0.0])
        w_sign, w_exp = po2_quantize(w, bits, alpha_exp, zero_level)
        if zero_level:
            np.testing.assert_array_equal(w_sign, [1, 0, 0, 0, 0])
            np.testing.assert_array_equal(w_exp, [-kmax, 0, 0, 0, 0])
        else:  # below the smallest level: saturate to it; w = 0 takes +smallest
            np.testing.assert_array_equal(w_sign, [1, 1, -1, 1, 1])
            np.testing.assert_array_equal(w_exp, np.full(5, -kmax))


@settings(max_examples=40, deadline=None)
@given(
    bits=st.integers(2, 8),
    zero_level=st.booleans(),
    alpha_exp=st.integers(-8, 4),
    w=st.lists(st.floats(-64, 64, width=32), min_size=1, max_size=50),
)
def test_po2_is_the_nearest_level(bits, zero_level, alpha_exp, w):
    """Against a brute-force nearest level (float64, exact here), ties to the larger magnitude."""
    w = np.float32([x for x in w if x != 0] or [1.0])  # w = 0: test_po2_saturation_and_zero
    candidate = Candidate("po2", bits, zero_level)
    levels = candidate.levels({"alpha_exp": alpha_exp}).astype(np.float64)
    # a level of the other sign is never nearer; leaving those out keeps the float64 distances exact enough
    same_side = np.sign(levels)[None, :] * np.sign(w)[:, None] >= 0
    dist = np.where(same_side, np.abs(w[:, None].astype(np.float64) - levels[None, :]), np.inf)
    nearest = dist == dist.min(axis=1, keepdims=True)
    expected = levels[np.argmax(np.where(nearest, np.abs(levels), -1.0), axis=1)]
    np.testing.assert_array_equal(fake_quantize(w, candidate, {"alpha_exp": alpha_exp}), expected)


def test_pow2_exact_and_underflow():
    e = np.arange(-149, 128)
    np.testing.assert_array_equal(pow2(e).astype(np.float64), 2.0 ** e.astype(np.float64))
    assert pow2(-150) == 0 and pow2(-149) > 0


# ---- candidates -------------------------------------------------------------------------------

ALL_NAMES = ["fp32"] + [f"{s}-{b}" for s, b in itertools.product(("uniform", "po2", "po2z"), BITS)]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_candidate_name_round_trip(name):
    candidate = Candidate.parse(name)
    assert candidate.name == name and Candidate.parse(candidate.name) == candidate


BAD_NAMES = ["int8", "uniform-1", "uniform-9", "po2-16", "po2z-x", "fp16", "uniform4", "Po2-4", "po2-04", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_candidate_parse_rejects(name):
    with pytest.raises(UserError, match=re.escape(repr(name))) as info:
        Candidate.parse(name)
    assert "po2z-<bits>" in str(info.value)


@pytest.mark.parametrize(
    "args, value",
    [(("int", 4), "'int'"), (("uniform", 9), "9"), (("po2", 1), "1"), (("fp32", 8), "8"),
     (("uniform", 4.0), "4.0"), (("uniform", 4, True), "'uniform'")],
)
def test_candidate_validation_names_the_value(args, value):
    with pytest.raises(UserError, match=value):
        Candidate(*args)


def test_qkeras_strings():
    assert Candidate.parse("fp32").qkeras() == "None"
    assert Candidate.parse("uniform-3").qkeras() == "quantized_bits(3,0,0,alpha=1)"
    assert Candidate.parse("po2-4").qkeras() == "quantized_po2(4)"
    assert Candidate.parse("po2z-4").qkeras().startswith("quantized_po2(4)")


def test_default_candidates_are_five_distinct_level_sets():
    assert [c.name for c in DEFAULT_CANDIDATES] == ["fp32", "po2-2", "po2z-4", "uniform-2", "uniform-4"]
    shapes = {}
    for c in DEFAULT_CANDIDATES[1:]:
        scale, zero_point = uniform_params(-1.0, 1.0, c.bits)  # typical parameters
        params = {"scale": scale, "zero_point": zero_point} if c.scheme == "uniform" else {"alpha_exp": 0}
        levels = c.levels(params)
        shapes[c.name] = frozenset((levels / np.abs(levels).max()).tolist())  # scale-free level set
    assert len(set(shapes.values())) == 4
    # the reason po2-2 has no zero level: with one it is the ternary set of a symmetric 2-bit grid
    ternary = Candidate("po2", 2, zero_level=True).levels({"alpha_exp": 0})
    np.testing.assert_array_equal(ternary, [-1, 0, 1])


def test_fake_quantize_fp32_is_identity():
    w = np.float32([0.1, -3.0, 1e-30])
    np.testing.assert_array_equal(fake_quantize(w, Candidate.parse("fp32"), {}), w)


# ---- the ROM word layout (numerics.rom) ------------------------------------------------------------

ROM_FORMATS = EVERY_FORMAT


def _every_rom_code(fmt: Candidate) -> np.ndarray:
    """Every code of a format that stands for a weight (fp32: the extremes and a sample), uint64 [n]."""
    bits = numerics.rom_code_bits(fmt)
    if fmt.scheme == "fp32":
        sample = np.random.default_rng(0).integers(0, 2**32, 200)
        return np.concatenate([np.uint64([0, 1, 2**31 - 1, 2**31, 2**32 - 1]), sample.astype(np.uint64)])
    codes = np.arange(2**bits, dtype=np.uint64)
    if fmt.scheme == "po2":
        shift, field = codes & np.uint64(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
        keep = shift <= numerics.MAX_PO2_SPAN
        if fmt.zero_level:  # the zero code is [0][all ones]; [1][all ones] decodes to 0 as well
            keep &= codes != np.uint64((1 << (bits - 1)) | field)
        codes = codes[keep]
    return codes


@pytest.mark.parametrize("name", ROM_FORMATS)
def test_rom_every_code_round_trips(name):
    fmt = Candidate.parse(name)
    zero_point = 2 ** (fmt.bits - 1) - 1 if fmt.scheme == "uniform" else 0
    codes = _every_rom_code(fmt)
    w_eff = numerics.rom_decode(fmt, codes, zero_point)
    assert len(np.unique(w_eff)) == len(codes)  # one weight per code
    np.testing.assert_array_equal(numerics.rom_encode(fmt, w_eff, zero_point), codes)


@pytest.mark.parametrize("name", ROM_FORMATS)
def test_rom_encodes_the_graphs_code_tables(name):
    """rom_encode of w_eff (from the DeployGraph's tables) is the layout the module docstring states."""
    fmt = Candidate.parse(name)
    rng = np.random.default_rng(len(name))
    w = (rng.normal(0, 1, 300) * rng.choice([1e-3, 1.0], 300)).astype(np.float32)
    if fmt.zero_level or fmt.scheme != "po2":  # (po2 maps 0 to its smallest level: a span beyond int64)
        w[:3] = 0  # the zero level (po2z), the zero point (uniform)
    params = ({"scale": 0.05, "zero_point": 2 ** (fmt.bits - 1)} if fmt.scheme == "uniform"
              else {"alpha_exp": 0} if fmt.scheme == "po2" else {})
    tables = numerics.weight_codes(w, fmt, params)
    zero_point = params.get("zero_point", 0)
    codes = numerics.rom_encode(fmt, numerics.w_eff_from_codes(fmt, tables, zero_point), zero_point)
    if fmt.scheme == "uniform":
        expected = tables["w_int"].astype(np.uint64)
    elif fmt.scheme == "po2":
        field = 2 ** (fmt.bits - 1) - 1
        negative = (tables["w_sign"] < 0).astype(np.uint64) << np.uint64(fmt.bits - 1)
        expected = negative | np.where(tables["w_sign"] == 0, field, tables["w_shift"]).astype(np.uint64)
        assert (tables["w_sign"] == 0).any() == fmt.zero_level  # the zero level is in the sample
    else:
        expected = tables["w_fx"].astype(np.int64).astype(np.uint64) & np.uint64(2**32 - 1)
    np.testing.assert_array_equal(codes, expected)


@pytest.mark.parametrize("name, w_eff, zero_point, message", [
    ("uniform-2", [0, 3], 1, "weight 3 at index \\(1,\\), expected w_eff \\+ zero_point 1 in 0..3"),
    ("uniform-2", [-2], 1, "weight -2"),
    ("po2-3", [1, 3], 0, "weight 3 at index \\(1,\\)"),          # not a power of two
    ("po2-3", [16], 0, "weight 16 .*shift in 0..3"),              # shift 4 > 3
    ("po2z-3", [-8], 0, "weight -8 .*shift in 0..2 or 0"),        # shift 3 is the zero code
    ("po2-3", [0], 0, "weight 0 .*no zero level"),
    ("fp32", [2**31], 0, "weight 2147483648"),
])
def test_rom_encode_refuses_what_the_format_cannot_hold(name, w_eff, zero_point, message):
    with pytest.raises(ValueError, match=message):
        numerics.rom_encode(Candidate.parse(name), np.array(w_eff), zero_point, what="node n")
    ok = {"uniform-2": [0, 2], "po2-3": [1, -8], "po2z-3": [0, -4], "fp32": [-(2**31), 2**31 - 1]}[name]
    numerics.rom_encode(Candidate.parse(name), np.array(ok), 1 if name == "uniform-2" else 0)  # control


def test_rom_decode_refuses_shifts_beyond_int64():
    fmt = Candidate.parse("po2-8")
    np.testing.assert_array_equal(numerics.rom_decode(fmt, np.uint64([62, 128 | 62])), [2**62, -(2**62)])
    with pytest.raises(ValueError, match="beyond 62"):
        numerics.rom_decode(fmt, np.uint64([63]))
    assert numerics.rom_decode(Candidate.parse("po2z-8"), np.uint64([127, 255])).tolist() == [0, 0]


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 7, 8, 32])
def test_rom_packing_lanes_and_round_trip(bits):
    """Output o in word o // lanes, bits [(o % lanes) * bits, ...), as the kernels read them."""
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2**bits, (5, 37)).astype(np.uint64)
    words = numerics.pack_rom(codes, bits)
    lanes = 64 // bits
    assert words.shape == (5, -(-37 // lanes))
    for o in range(codes.shape[1]):
        lane = (words[:, o // lanes] >> np.uint64((o % lanes) * bits)) & np.uint64(2**bits - 1)
        np.testing.assert_array_equal(lane, codes[:, o])
    np.testing.assert_array_equal(numerics.unpack_rom(words, bits, 37), codes)
    unused = (-37) % lanes  # the last word's unused lanes are 0
    assert unused == 0 or (words[:, -1] >> np.uint64((lanes - unused) * bits) == 0).all()
    with pytest.raises(ValueError, match="exceeds"):
        numerics.pack_rom(np.array([[2**bits]], np.uint64), bits)
