// Spiking linear layer (a 1x1 convolution over tokens) followed by the LIF, one time step.
//
// x [N][C] -> s [N][O];  acc[n][o] = sum_c w_eff[o][c] * x[n][c]
// Event driven over the nonzero inputs of each token; ROM row c holds the codes of input
// channel c for all O outputs (hqflow_common.h). The membrane v_int [N][O] lives in the caller.
#ifndef HQFLOW_LINEAR_H_
#define HQFLOW_LINEAR_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_weights.h"

namespace hqflow {

/** The defaults of a linear_lif config; a generated config inherits them and sets every one
 *  (export/hls/configs.py LinearLifConfig). */
struct linear_lif_config : weight_rom_config, lif_config {
    static const unsigned tokens = 1;          // N
    static const unsigned in_channels = 1;     // C
    static const unsigned out_channels = 1;    // O
};

template <class CONFIG>
void linear_lif(const typename CONFIG::in_t x[CONFIG::tokens][CONFIG::in_channels],
                const rom_word_t w[CONFIG::in_channels][CONFIG::row_words],
                const long long bias_int[CONFIG::out_channels], const long long thr_int[CONFIG::out_channels],
                const signed char sign[CONFIG::out_channels],
                typename CONFIG::v_t v_int[CONFIG::tokens][CONFIG::out_channels],
                spike_t s[CONFIG::tokens][CONFIG::out_channels], int t) {
    typedef typename CONFIG::acc_t acc_t;
    typedef typename accumulator<acc_t>::type acc_reg_t;
    typedef typename CONFIG::weight weight;
    const int O = CONFIG::out_channels;
    lif_channel<CONFIG> channel[CONFIG::out_channels];
    for (int o = 0; o < O; o++) channel[o] = lif_constants<CONFIG>(bias_int[o], thr_int[o], sign[o]);
    for (unsigned n = 0; n < CONFIG::tokens; n++) {
        acc_reg_t acc[CONFIG::out_channels];
        HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = acc cyclic factor = CONFIG::parallel)
        for (int o = 0; o < O; o++) acc[o] = 0;
        for (unsigned c = 0; c < CONFIG::in_channels; c++) {
            const typename CONFIG::in_t x_in = x[n][c];
            if (x_in == 0) continue;
            accumulate_row<weight, CONFIG::out_channels, CONFIG::reuse_factor>(acc, w[c], x_in);
        }
        for (int o = 0; o < O; o++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            s[n][o] = lif_update<CONFIG>(v_int[n][o], acc[o], channel[o], t);
        }
    }
}

}  // namespace hqflow

#endif
