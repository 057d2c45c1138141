// BN-folded integer LIF neuron (tau 2, decay_input, hard reset to 0), one neuron per call.
//
// Per output channel c the BN and the weight scale fold into an integer bias, a threshold and a
// sign (numerics.fold_lif). With F = CONFIG::frac_bits fractional bits of the membrane and
// T = CONFIG::time_steps:
//     charge  h_int = (v_int + (acc << F) + (bias_int << T)) >> 1      (v_int = 0 at t = 0)
//     fire    s     = sign * h_int >= thr_int
//     reset   v_int = s ? 0 : h_int
// The halving is exact for the T steps after a reset. CONFIG::v_t (ap_int<v_bits>) holds the
// sum v_int + (acc << F) + (bias_int << T), so the terms may wrap in v_t: their sum does not
// (two's complement addition is exact modulo 2^v_bits).
#ifndef HQFLOW_LIF_H_
#define HQFLOW_LIF_H_

#include "hqflow_common.h"

namespace hqflow {

/** The defaults of the LIF after a kernel; wlif_config and ssa_config
 *  inherit them, and a generated config sets every one (export/hls/configs.py LifConfig). */
struct lif_config {
    typedef ap_int<64> v_t;                    // the membrane, ap_int<v_bits>: holds v_int + (acc << F) + (bias_int << T)
    static const unsigned frac_bits = 0;       // F: fractional bits of the membrane
    static const unsigned time_steps = 1;      // T: the bias enters the membrane as bias_int << T
    typedef long long table_t;                 // the bias_int and thr_int tables' type: the narrowest of them
};

template <class CONFIG>
struct lif_value;  // the LIF's arithmetic type: CONFIG::v_t, or long long in the 64-bit model

/** One channel's constants: bias_int << T, thr_int and -thr_int (thr_int >= 0, checked by the
 *  DeployGraph, so -thr_int fits v_t), and the sign. Made once per kernel call. */
template <class CONFIG>
struct lif_channel {
    typename lif_value<CONFIG>::type bias_term, thr_int, neg_thr_int;
    signed char sign;
};

#if defined(__SYNTHESIS__) || defined(HQFLOW_AP_ARITHMETIC)

// ---- in ap_int<v_bits>, as synthesis sees it ------------------------------------------------------

template <class CONFIG>
struct lif_value {
    typedef typename CONFIG::v_t type;
};

template <class CONFIG>
inline lif_channel<CONFIG> lif_constants(long long bias_int, long long thr_int, signed char sign) {
    typedef typename CONFIG::v_t v_t;
    lif_channel<CONFIG> channel;
    channel.bias_term = v_t(bias_int) << CONFIG::time_steps;
    channel.thr_int = v_t(thr_int);
    channel.neg_thr_int = v_t(-thr_int);
    channel.sign = sign;
    return channel;
}

/** charge: h_int = (v_int + (acc << F) + (bias_int << T)) >> 1, v_int = 0 at t = 0. */
template <class CONFIG, class V, class ACC>
inline typename CONFIG::v_t lif_charge(const V &v_int, const ACC &acc, const lif_channel<CONFIG> &channel, int t) {
    typename CONFIG::v_t sum = typename CONFIG::v_t(typename CONFIG::acc_t(acc)) << CONFIG::frac_bits;
    sum += channel.bias_term;
    if (t > 0) sum += v_int;
    return sum >> 1;
}

#else

// ---- the same in 64-bit integers, narrowed to v_bits before the halving (hqflow_common.h) ---------

template <class CONFIG>
struct lif_value {
    typedef long long type;
};

template <class CONFIG>
inline lif_channel<CONFIG> lif_constants(long long bias_int, long long thr_int, signed char sign) {
    const int W = CONFIG::v_t::width;
    typedef unsigned long long u64;
    lif_channel<CONFIG> channel;
    channel.bias_term = narrow<W>(static_cast<u64>(narrow<W>(static_cast<u64>(bias_int))) << CONFIG::time_steps);
    channel.thr_int = narrow<W>(static_cast<u64>(thr_int));
    channel.neg_thr_int = narrow<W>(static_cast<u64>(-thr_int));
    channel.sign = sign;
    return channel;
}

/** The membrane's value: a v_t, or (the kernels' register in this model) a long long holding one. */
inline long long membrane_value(long long v_int) { return v_int; }
template <int W, bool S>
inline long long membrane_value(const ap_int_base<W, S> &v_int) {
    return v_int.to_int64();
}

template <class CONFIG, class V, class ACC>
inline long long lif_charge(const V &v_int, const ACC &acc, const lif_channel<CONFIG> &channel, int t) {
    typedef unsigned long long u64;
    u64 sum = static_cast<u64>(int_value(acc)) << CONFIG::frac_bits;
    sum += static_cast<u64>(channel.bias_term);
    if (t > 0) sum += static_cast<u64>(membrane_value(v_int));
    return narrow<CONFIG::v_t::width>(sum) >> 1;
}

#endif

/** fire: s = sign * h_int >= thr_int (for sign -1: h_int <= -thr_int). */
template <class CONFIG, class H>
inline bool lif_fire(const H &h_int, const lif_channel<CONFIG> &channel) {
    if (channel.sign > 0) return h_int >= channel.thr_int;
    if (channel.sign < 0) return h_int <= channel.neg_thr_int;
    return channel.thr_int <= 0;  // a dead channel (BN scale 0): a constant input, fires always or never
}

/** charge, fire, reset (v_int = s ? 0 : h_int) of one neuron at step t; returns the spike. The membrane V:
 *  membrane<CONFIG>::type, a register of the kernel (v_t; a long long holding one in the 64-bit model). */
template <class CONFIG, class V, class ACC>
inline bool lif_update(V &v_int, const ACC &acc, const lif_channel<CONFIG> &channel, int t) {
    const auto h_int = lif_charge<CONFIG>(v_int, acc, channel, t);
    const bool s = lif_fire<CONFIG>(h_int, channel);
    v_int = s ? V(0) : V(h_int);
    return s;
}

/** A kernel's membrane register: v_t (under synthesis and with HQFLOW_AP_ARITHMETIC), else the 64-bit
 *  model's long long holding the same v_bits value. */
template <class CONFIG>
struct membrane {
    typedef typename lif_value<CONFIG>::type type;
};

}  // namespace hqflow

#endif
