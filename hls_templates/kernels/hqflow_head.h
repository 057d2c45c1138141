// Classification head: mean over tokens, linear layer, mean over time steps, in integers.
//
// By linearity the head sums its input over the N tokens and T steps first:
//     x_sum[c] = sum_{t, n} x[t][n][c]                          (head_accumulate, every step)
//     logits[k] = ((sum_c w_eff[k][c] * x_sum[c]) << bias_frac_bits) + bias_int[k]   (head_logits)
// which is the real logits times N T 2^bias_frac_bits / weight_scale (> 0: the argmax is kept).
#ifndef HQFLOW_HEAD_H_
#define HQFLOW_HEAD_H_

#include "hqflow_common.h"
#include "hqflow_weights.h"

namespace hqflow {

/** The defaults of a head config (head_accumulate and head_logits); a generated config inherits
 *  them and sets every one (export/hls/configs.py HeadConfig). */
struct head_config : weight_rom_config {
    typedef ap_uint<16> sum_t;                 // x_sum: the input summed over tokens and steps
    typedef ap_int<32> logit_t;                // the logits, the width of their range
    static const unsigned tokens = 1;          // N
    static const unsigned in_channels = 1;     // C
    static const unsigned classes = 1;         // K
    static const unsigned bias_frac_bits = 0;  // logits = (acc << bias_frac_bits) + bias_int
};

template <class CONFIG>
void head_accumulate(const typename CONFIG::in_t x[CONFIG::tokens][CONFIG::in_channels],
                     typename CONFIG::sum_t x_sum[CONFIG::in_channels], int t) {
    for (unsigned n = 0; n < CONFIG::tokens; n++)
        for (unsigned c = 0; c < CONFIG::in_channels; c++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            const typename CONFIG::sum_t before = (t == 0 && n == 0) ? typename CONFIG::sum_t(0) : x_sum[c];
            x_sum[c] = before + x[n][c];
        }
}

template <class CONFIG>
void head_logits(const typename CONFIG::sum_t x_sum[CONFIG::in_channels],
                 const rom_word_t w[CONFIG::in_channels][CONFIG::row_words],
                 const long long bias_int[CONFIG::classes], typename CONFIG::logit_t logits[CONFIG::classes]) {
    typedef typename CONFIG::acc_t acc_t;
    typedef typename accumulator<acc_t>::type acc_reg_t;
    typedef typename CONFIG::logit_t logit_t;
    typedef typename CONFIG::weight weight;
    acc_reg_t acc[CONFIG::classes];
    for (unsigned k = 0; k < CONFIG::classes; k++) acc[k] = 0;
    for (unsigned c = 0; c < CONFIG::in_channels; c++) {
        if (x_sum[c] == 0) continue;
        accumulate_row<weight, CONFIG::classes, 1>(acc, w[c], x_sum[c]);
    }
    for (unsigned k = 0; k < CONFIG::classes; k++)
        logits[k] = (logit_t(acc_t(acc[k])) << CONFIG::bias_frac_bits) + logit_t(bias_int[k]);
}

}  // namespace hqflow

#endif
