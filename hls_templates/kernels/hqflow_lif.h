// BN-folded integer LIF neuron (tau 2, decay_input, hard reset to 0), one neuron per call.
//
// Per output channel c the BN and the weight scale fold into an integer bias, a threshold and a
// sign (numerics.fold_lif). With F = CONFIG::frac_bits fractional bits of the membrane and
// T = CONFIG::time_steps:
//     charge  h_int = (v_int + (acc << F) + (bias_int << T)) >> 1      (v_int = 0 at t = 0)
//     fire    s     = sign * h_int >= thr_int
//     reset   v_int = s ? 0 : h_int
// The halving is exact for the T steps after a reset. CONFIG::v_t (ap_int<v_bits>) holds the
// sum v_int + (acc << F) + (bias_int << T), so the terms may wrap in v_t: their sum does not.
#ifndef HQFLOW_LIF_H_
#define HQFLOW_LIF_H_

#include "hqflow_common.h"

namespace hqflow {

template <class CONFIG>
inline typename CONFIG::v_t lif_charge(const typename CONFIG::v_t &v_int, const typename CONFIG::acc_t &acc,
                                       const typename CONFIG::v_t &bias_int) {
    typedef typename CONFIG::v_t v_t;
    const v_t sum = v_int + (v_t(acc) << CONFIG::frac_bits) + (bias_int << CONFIG::time_steps);
    return sum >> 1;
}

template <class CONFIG>
inline spike_t lif_fire(const typename CONFIG::v_t &h_int, const typename CONFIG::v_t &thr_int, signed char sign) {
    if (sign > 0) return h_int >= thr_int;
    if (sign < 0) return -h_int >= thr_int;
    return thr_int <= 0;  // a dead channel (BN scale 0): a constant input, fires always or never
}

/** charge, fire, reset of one neuron at step t; returns the spike. */
template <class CONFIG>
inline spike_t lif_update(typename CONFIG::v_t &v_int, const typename CONFIG::acc_t &acc, long long bias_int,
                          long long thr_int, signed char sign, int t) {
    typedef typename CONFIG::v_t v_t;
    const v_t h_int = lif_charge<CONFIG>(t == 0 ? v_t(0) : v_int, acc, v_t(bias_int));
    const spike_t s = lif_fire<CONFIG>(h_int, v_t(thr_int), sign);
    v_int = s ? v_t(0) : h_int;
    return s;
}

}  // namespace hqflow

#endif
