"""QKeras as the reference the plan names: every format's Candidate.qkeras() quantizer run on a dense grid.

Needs TensorFlow and QKeras (the optional extra `qkeras`, in a separate environment: README);
without them the module skips (one line under -ra), naming what failed to import. `make test-interop
[QKERAS_PYTHON=...]` runs it alone (without tests/conftest.py, which imports torch).

The alignment (hqflow's per-tensor parameters that put its grid on QKeras's absolute one):
    uniform-b   quantized_bits(b,0,0,alpha=1) is k * 2^-(b-1), k in [-2^(b-1), 2^(b-1) - 1]:
                uniform_params(-1, 1 - 2^-(b-1), b) = (scale 2^-(b-1), zero_point 2^(b-1)) exactly.
    po2-b       quantized_po2(b) has exponents min_exp = -2^(b-2) .. max_exp = 2^(b-2) - 1:
                alpha_exp = max_exp (hqflow's top level 2^alpha_exp, 2^(b-1) exponents below it).
    po2z-b      the same alpha_exp = max_exp: hqflow has one exponent fewer (kmax = 2^(b-1) - 2)
                and 0 instead of QKeras's smallest level +-2^min_exp.
On that alignment each test checks, on the grid (every level, every midpoint between neighbouring
levels and the float32 numbers next to it, values beyond both ends, +-0, seeded random values):
  1. QKeras's level set (the values it outputs) against hqflow's Candidate.levels;
  2. QKeras against a model of its documented rounding (round half to even of w / scale; 2^round(log2|w|)
     clipped, |w| < 1e-7 -> the smallest level), so the model stands for QKeras below;
  3. hqflow against QKeras: equal everywhere except on the set formats.py's docstring predicts, and
     there by exactly the predicted amount (one level); the predicted set is never empty (each
     difference is exercised, so the check can fail).
The QKeras values are those of quantized_*(..., use_ste=False), xq itself; the named quantizer
(use_ste=True) returns x + (xq - x) in float32, which a separate check compares with that
expression computed in NumPy (it loses xq where xq is below half an ulp of x).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QKeras needs tf.keras 2 (tf-keras) under TensorFlow >= 2.16
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

try:
    import qkeras
    import tensorflow as tf
except Exception as exc:  # ImportError, or a TensorFlow / Keras mismatch raised at import
    pytest.skip(f"QKeras not importable ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); install the "
                "extra `qkeras` in its own environment (make venv-qkeras), then make test-interop QKERAS_PYTHON=...",
                allow_module_level=True)

from hqflow.numerics import Candidate, QUANT_BITS, fake_quantize, uniform_params  # noqa: E402

pytestmark = pytest.mark.interop

F32 = np.float32
EPS = F32(1e-7)  # tf.keras.backend.epsilon(): quantized_po2 maps |w| below it to its smallest level

UNIFORM = [f"uniform-{b}" for b in QUANT_BITS]
PO2 = [f"po2-{b}" for b in QUANT_BITS]
PO2Z = [f"po2z-{b}" for b in QUANT_BITS if b >= 3]  # po2z-2 is never named (formats.py)


def _qkeras_quantizer(candidate: Candidate, use_ste: bool):
    """The QKeras quantizer candidate.qkeras() names, evaluated in QKeras's namespace."""
    text = candidate.qkeras()
    assert text.startswith(("quantized_bits(", "quantized_po2(")), text
    quantizer = eval(text, {"quantized_bits": qkeras.quantized_bits, "quantized_po2": qkeras.quantized_po2})
    if not use_ste:
        quantizer.use_ste = False  # forward value (1 - 1) * x + xq: xq itself for finite x
    return quantizer


def _run(quantizer, w: np.ndarray) -> np.ndarray:
    return np.asarray(quantizer(tf.constant(w, tf.float32)), F32)


def _with_neighbours(x: np.ndarray) -> np.ndarray:
    """x and the float32 numbers on either side of each (the rounding boundaries' neighbourhoods)."""
    x = np.asarray(x, F32)
    return np.concatenate([x, np.nextafter(x, F32(np.inf)), np.nextafter(x, F32(-np.inf))])


def _level_distance(a: np.ndarray, b: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """|index of a - index of b| in the sorted level set `levels` (a and b are levels)."""
    ia, ib = np.searchsorted(levels, a), np.searchsorted(levels, b)
    np.testing.assert_array_equal(levels[ia], a)
    np.testing.assert_array_equal(levels[ib], b)
    return np.abs(ia - ib)


# ---- uniform-b against quantized_bits(b,0,0,alpha=1) ----------------------------------------------


def _uniform_grid(bits: int) -> tuple[np.ndarray, float]:
    s = 2.0 ** -(bits - 1)
    n = 2 ** (bits - 1)
    k = np.arange(-(n + 3) * 8, (n + 3) * 8 + 1) / 8  # eighths of a level step: levels, ties, between
    rng = np.random.default_rng(bits)
    extra = [0.0, -0.0, 0.5 - 2.0**-25, -(0.5 - 2.0**-25), 4.0 * n, -4.0 * n]  # 0.49999997: codes.py's exception
    x = np.concatenate([_with_neighbours(k), F32(extra), rng.uniform(-n - 2, n + 2, 4000).astype(F32)])
    return (x * F32(s)).astype(F32), s


def _half_even_model(w: np.ndarray, bits: int) -> np.ndarray:
    """QKeras's documented quantized_bits(b,0,0,alpha=1): clip(round_half_even(w * 2^(b-1))) / 2^(b-1)."""
    m = 2.0 ** (bits - 1)
    return (np.clip(np.round(w.astype(np.float64) * m), -m, m - 1) / m).astype(F32)


@pytest.mark.parametrize("name", UNIFORM)
def test_uniform_against_quantized_bits(name):
    candidate = Candidate.parse(name)
    b = candidate.bits
    w, s = _uniform_grid(b)
    scale, zero_point = uniform_params(-1.0, 1.0 - s, b)
    assert (scale, zero_point) == (s, 2 ** (b - 1))  # the alignment is reachable from a clipping range

    qk = _run(_qkeras_quantizer(candidate, use_ste=False), w)
    hq = fake_quantize(w, candidate, {"scale": scale, "zero_point": zero_point})
    levels = candidate.levels({"scale": scale, "zero_point": zero_point})

    # 1. the same level set: QKeras reaches every hqflow level and nothing else
    np.testing.assert_array_equal(np.unique(qk), levels)
    # 2. QKeras rounds half to even (the model)
    np.testing.assert_array_equal(qk, _half_even_model(w, b))
    # 3. hqflow differs exactly at the interior ties j + 1/2 with j even (QKeras: j, hqflow: j + 1),
    #    and at w / scale = 0.49999997, which hqflow's float32 floor(x + 0.5) takes up (codes.py)
    x = w.astype(np.float64) / s
    j = np.floor(x)
    n = 2 ** (b - 1)
    tie_even = (x - j == 0.5) & (j % 2 == 0) & (j >= -n) & (j <= n - 2)
    predicted = tie_even | (w == F32((0.5 - 2.0**-25) * s))
    differ = qk != hq
    assert predicted.sum() > 0
    np.testing.assert_array_equal(differ, predicted)
    np.testing.assert_array_equal(hq[differ] - qk[differ], np.full(differ.sum(), F32(s)))  # one level up
    assert _level_distance(hq, qk, levels).max() == 1


# ---- po2-b / po2z-b against quantized_po2(b) --------------------------------------------------------


def _po2_exponents(bits: int) -> tuple[int, int]:
    """QKeras quantized_po2(b)'s (min_exp, max_exp) without max_value: -2^(b-2), 2^(b-2) - 1."""
    return -(2 ** (bits - 2)), 2 ** (bits - 2) - 1


def _po2_grid(bits: int) -> np.ndarray:
    lo, hi = _po2_exponents(bits)
    e = np.arange(lo - 3, hi + 3, dtype=np.float64)[:, None]
    m = np.array([1.0, 1.1, 1.25, 1.4, 2**0.5, 1.45, 1.5, 1.6, 1.75, 1.9])[None, :]
    mags = (np.power(2.0, e) * m).ravel()
    rng = np.random.default_rng(100 + bits)
    mags = np.concatenate([mags, 2.0 ** rng.uniform(lo - 3, hi + 3, 4000), [1e-8, 5e-8, 9e-8, 1e-7, 2e-7]])
    x = _with_neighbours(mags.astype(F32))
    x = x[(x > 0) & np.isfinite(x)]
    return np.concatenate([x, -x, F32([0.0, -0.0])])


def _log_round_model(w: np.ndarray, bits: int) -> np.ndarray:
    """QKeras's documented quantized_po2(b), exactly: sign * 2^clip(round(log2|w|), min_exp, max_exp),
    +-0 -> +2^min_exp, 0 < |w| < 1e-7 -> sign * 2^min_exp. round(log2 a) = n + [a >= 2^(n + 1/2)],
    n = floor(log2 a), decided exactly as a^2 >= 2^(2n+1) in float64 (a float32 squares exactly)."""
    lo, hi = _po2_exponents(bits)
    a = np.abs(w.astype(np.float64))
    safe = np.where(a > 0, a, 1.0)
    n = np.frexp(safe)[1] - 1
    r = n + (safe * safe >= np.ldexp(1.0, 2 * n + 1))
    r = np.where(a < EPS, lo, np.clip(r, lo, hi))
    sign = np.where(w < 0, -1.0, 1.0)
    return (sign * np.ldexp(1.0, r)).astype(F32)


def _near_log_midpoint(w: np.ndarray, rel: float) -> np.ndarray:
    """|w| within a relative `rel` of some 2^(n + 1/2): where float32 log(|w|) / log(2) may round either way."""
    a = np.abs(w.astype(np.float64))
    n = np.frexp(np.where(a > 0, a, 1.0))[1] - 1
    return (a > 0) & (np.abs(a / (2.0 ** (n + 0.5)) - 1) < rel)


def _po2_compare(name: str) -> dict:
    candidate = Candidate.parse(name)
    b = candidate.bits
    lo, hi = _po2_exponents(b)
    w = _po2_grid(b)
    params = {"alpha_exp": hi}
    qk = _run(_qkeras_quantizer(candidate, use_ste=False), w)
    hq = fake_quantize(w, candidate, params)
    model = _log_round_model(w, b)

    qk_levels = np.unique(np.concatenate([-(2.0 ** np.arange(lo, hi + 1)), 2.0 ** np.arange(lo, hi + 1)]).astype(F32))
    hq_levels = candidate.levels(params)
    # 1. level sets: QKeras's 2^b levels are hqflow po2-b's; po2z-b has them without +-2^min_exp and
    #    with 0. QKeras reaches all of them except, from po2-7 on, the 2^e with min_exp < e and
    #    2^(e + 1/2) <= 1e-7: every |w| < 1e-7 goes to 2^min_exp
    e = np.log2(np.abs(qk_levels).astype(np.float64))
    unreachable = (e > lo) & (np.exp2(e + 0.5) <= EPS)
    assert unreachable.any() == (b >= 7)
    np.testing.assert_array_equal(np.unique(qk), qk_levels[~unreachable])
    expected_hq = qk_levels
    if candidate.zero_level:
        expected_hq = np.unique(np.append(qk_levels[np.abs(qk_levels) != F32(2.0**lo)], F32(0)))
    np.testing.assert_array_equal(hq_levels, expected_hq)

    # 2. QKeras = 2^round(log2|w|), except within float32 log error (1e-6 relative) of the log-domain midpoints
    off_model = qk != model
    assert not (off_model & ~_near_log_midpoint(w, 1e-6)).any(), w[off_model & ~_near_log_midpoint(w, 1e-6)][:5]

    # 3. hqflow against the model: differences predicted by formats.py's docstring, nowhere else
    a = np.abs(w.astype(np.float64))
    n = np.frexp(np.where(a > 0, a, 1.0))[1] - 1
    # hqflow's smallest level is 2^(min_exp + 1) with a zero level, 2^min_exp without
    log_up = ((a * a >= np.ldexp(1.0, 2 * n + 1)) & (a < 1.5 * np.ldexp(1.0, n))
              & (n >= lo + int(candidate.zero_level)) & (n + 1 <= hi) & (a >= EPS))
    # QKeras puts 0 < |w| < 1e-7 on 2^min_exp; hqflow rounds them to a larger level from 1.5 * 2^min_exp on
    eps_flush = (a > 0) & (a < EPS) & (a >= 1.5 * 2.0**lo)
    predicted = log_up | eps_flush
    if candidate.zero_level:  # 0 replaces 2^min_exp: everything QKeras puts on +-2^min_exp moves
        predicted |= np.abs(model) == F32(2.0**lo)
    differ = hq != model
    assert log_up.sum() > 0 and (not candidate.zero_level or (np.abs(model) == F32(2.0**lo)).sum() > 0)
    np.testing.assert_array_equal(differ, predicted)

    union = np.unique(np.concatenate([qk_levels, hq_levels]))
    dist = _level_distance(hq, model, union)
    # the log-domain difference is one level down (hqflow 2^n, QKeras 2^(n+1))
    np.testing.assert_array_equal(hq[log_up & ~eps_flush], (model[log_up & ~eps_flush] / 2).astype(F32))
    return {"w": w, "qk": qk, "hq": hq, "model": model, "differ": differ, "dist": dist, "log_up": log_up,
            "eps_flush": eps_flush, "off_model": off_model, "union": union}


@pytest.mark.parametrize("name", PO2 + PO2Z)
def test_po2_against_quantized_po2(name):
    r = _po2_compare(name)
    b = Candidate.parse(name).bits
    assert r["eps_flush"].any() == (b >= 7)  # 2^(min_exp + 1/2) < 1e-7 from po2-7 on
    # differences are at most one level apart, except QKeras's flush below 1e-7 and po2z's zero level
    assert r["dist"][r["log_up"] & ~r["eps_flush"]].max() == 1


@pytest.mark.parametrize("name", ["uniform-4", "po2-4", "po2-8"])
def test_named_quantizer_is_the_ste_expression(name):
    """The named quantizer (use_ste=True) returns fl(x + fl(xq - x)): xq, except where xq - x rounds it away."""
    candidate = Candidate.parse(name)
    w = _uniform_grid(candidate.bits)[0] if candidate.scheme == "uniform" else _po2_grid(candidate.bits)
    w = np.concatenate([w, F32([2.0**30, -(2.0**30)])])
    xq = _run(_qkeras_quantizer(candidate, use_ste=False), w)
    named = _run(_qkeras_quantizer(candidate, use_ste=True), w)
    np.testing.assert_array_equal(named, w + (xq - w))  # float32 NumPy, the same IEEE operations
    assert (named != xq).any()  # +-2^30 at least: beyond the range the top level is lost (negative control)


def _gaussian_share(candidate: Candidate, params: dict, top: float) -> float:
    """Share of 10^5 float32 N(0, (top / 2.5)^2) weights (seeded) that hqflow and QKeras put on different levels."""
    w = np.random.default_rng(7).normal(0.0, top / 2.5, 100_000).astype(F32)
    return float(np.mean(fake_quantize(w, candidate, params) != _run(_qkeras_quantizer(candidate, use_ste=False), w)))


def _summary() -> list[str]:
    """The comparison table, hqflow against the real QKeras (printed by test_print_table with
    HQFLOW_INTEROP_TABLE=1). "grid": the test's grid, dense at every rounding boundary, so its shares
    overweight them; "Gaussian": N(0, (top level / 2.5)^2) weights."""
    rows = ["| format | QKeras quantizer | level set | grid points | differ | share | Gaussian share "
            "| max level distance | where they differ | QKeras off its exact model |",
            "|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    for name in UNIFORM:
        c = Candidate.parse(name)
        w, s = _uniform_grid(c.bits)
        params = dict(zip(("scale", "zero_point"), uniform_params(-1.0, 1.0 - s, c.bits)))
        qk = _run(_qkeras_quantizer(c, use_ste=False), w)
        hq = fake_quantize(w, c, params)
        d = qk != hq
        dist = _level_distance(hq, qk, c.levels(params))
        rows.append(f"| {name} | {c.qkeras()} | equal | {w.size} | {d.sum()} | {d.mean():.2%} | "
                    f"{_gaussian_share(c, params, 1.0):.3%} | {dist.max()} | ties j + 1/2, j even; w/scale = 0.49999997 | 0 |")
    for name in PO2 + PO2Z:
        c = Candidate.parse(name)
        r = _po2_compare(name)
        lo, hi = _po2_exponents(c.bits)
        d = r["hq"] != r["qk"]
        dist = _level_distance(r["hq"], r["qk"], r["union"])
        where = "[2^(k+1/2), 1.5*2^k)"
        if r["eps_flush"].any():
            where += "; 1.5*2^min_exp <= abs(w) < 1e-7"
        if c.zero_level:
            where += "; abs(w) < 2^(min_exp+1/2)"
        a = np.abs(r["w"][r["off_model"]].astype(np.float64))
        rel = np.abs(a / 2.0 ** (np.frexp(a)[1] - 0.5) - 1).max() if a.size else 0.0
        rows.append(f"| {name} | {c.qkeras().split('  #')[0]} | {'+-2^min_exp -> 0' if c.zero_level else 'equal'} | "
                    f"{r['w'].size} | {d.sum()} | {d.mean():.2%} | {_gaussian_share(c, {'alpha_exp': hi}, 2.0**hi):.2%} | "
                    f"{dist.max()} | {where} | {r['off_model'].sum()} pts, within {rel:.1e} of 2^(k+1/2) |")
    return rows


def test_print_table(capsys):
    rows = _summary()
    assert len(rows) == 2 + len(UNIFORM) + len(PO2) + len(PO2Z)
    with capsys.disabled():
        if os.environ.get("HQFLOW_INTEROP_TABLE"):
            print("\n" + "\n".join(rows))
