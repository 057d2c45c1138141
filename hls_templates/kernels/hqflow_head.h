// Classification head, streaming: mean over tokens, linear layer, mean over time steps, in integers.
//
// By linearity the head sums its input over the N tokens and T steps first:
//     x_sum[c] = sum_{t, n} x[t][n][c]                          (as the words arrive)
//     logits[k] = ((sum_c w_eff[k][c] * x_sum[c]) << bias_frac_bits) + bias_int[k]
// which is the real logits times N T 2^bias_frac_bits / weight_scale (> 0: the argmax is kept).
// in: [N][C] words of T values; out: the K logits, one a word, once the image is whole.
#ifndef HQFLOW_HEAD_H_
#define HQFLOW_HEAD_H_

#include "hqflow_common.h"
#include "hqflow_stream.h"
#include "hqflow_weights.h"

namespace hqflow {

/** The defaults of a head config; a generated config inherits them and sets every one
 *  (export/hls/configs.py HeadConfig). */
struct head_config : weight_rom_config {
    typedef ap_uint<1> in_word_t;              // T input values (in_t) a word
    typedef ap_uint<16> sum_t;                 // x_sum: the input summed over tokens and steps
    typedef ap_int<32> logit_t;                // the logits, the width of their range
    static const unsigned time_steps = 1;      // T
    static const unsigned tokens = 1;          // N
    static const unsigned in_channels = 1;     // C
    static const unsigned classes = 1;         // K
    static const unsigned bias_frac_bits = 0;  // logits = (acc << bias_frac_bits) + bias_int
};

template <class CONFIG>
void head(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::logit_t> &out,
          const rom_word_t w[CONFIG::in_channels][CONFIG::row_words], const long long bias_int[CONFIG::classes]) {
    static_assert(CONFIG::in_word_t::width == CONFIG::time_steps * CONFIG::in_t::width, "hqflow::head: words of T values");
    typedef typename CONFIG::acc_t acc_t;
    typedef typename accumulator<acc_t>::type acc_reg_t;
    typedef typename CONFIG::logit_t logit_t;
    typedef typename CONFIG::weight weight;
    const unsigned C = CONFIG::in_channels, BITS = CONFIG::in_t::width;
    typename CONFIG::sum_t x_sum[CONFIG::in_channels];
    for (unsigned c = 0; c < C; c++) x_sum[c] = 0;
    for (unsigned n = 0; n < CONFIG::tokens; n++)
        for (unsigned c = 0; c < C; c++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            const typename CONFIG::in_word_t word = in.read();
            unsigned long long steps = 0;
            for (unsigned t = 0; t < CONFIG::time_steps; t++) steps += value_at<BITS>(word, t);
            x_sum[c] = x_sum[c] + steps;
        }
    acc_reg_t acc[CONFIG::classes];
    for (unsigned k = 0; k < CONFIG::classes; k++) acc[k] = 0;
    for (unsigned c = 0; c < C; c++) {
        if (x_sum[c] == 0) continue;
        accumulate_row<weight, CONFIG::classes, CONFIG::reuse_factor>(acc, w[c], x_sum[c]);
    }
    for (unsigned k = 0; k < CONFIG::classes; k++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        out.write((logit_t(acc_t(acc[k])) << CONFIG::bias_frac_bits) + logit_t(bias_int[k]));
    }
}

}  // namespace hqflow

#endif
