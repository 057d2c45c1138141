// Spiking 3x3 convolution (stride 1, zero padding 1) followed by the LIF, one time step.
//
// x [C][H][W] -> s [O][H][W];  acc[o][y][x] = sum_{c,i,j} w_eff[o][c][i][j] * x[c][y + i - 1][x + j - 1]
// Event driven: each nonzero input adds its weights into the nine outputs it reaches, so the work
// is proportional to the input spikes. ROM rows: w[(c * 3 + i) * 3 + j] holds that tap's codes
// for all O output channels (hqflow_common.h). The membrane v_int [H][W][O] lives in the caller.
#ifndef HQFLOW_CONV_H_
#define HQFLOW_CONV_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_weights.h"

namespace hqflow {

/** The defaults of a conv_lif config; a generated config inherits them and sets every one
 *  (export/hls/configs.py ConvLifConfig). */
struct conv_lif_config : weight_rom_config, lif_config {
    static const unsigned in_channels = 1;     // C
    static const unsigned out_channels = 1;    // O
    static const unsigned height = 1;          // H, of the input and the output
    static const unsigned width = 1;           // W, of the input and the output
    static const unsigned kernel_size = 3;     // the window: conv_lif implements 3x3,
    static const unsigned stride = 1;          // stride 1
    static const unsigned padding = 1;         // and zero padding 1 (checked at compile time)
};

template <class CONFIG>
void conv_lif(const typename CONFIG::in_t x[CONFIG::in_channels][CONFIG::height][CONFIG::width],
              const rom_word_t w[CONFIG::in_channels * 9][CONFIG::row_words],
              const long long bias_int[CONFIG::out_channels], const long long thr_int[CONFIG::out_channels],
              const signed char sign[CONFIG::out_channels],
              typename CONFIG::v_t v_int[CONFIG::height][CONFIG::width][CONFIG::out_channels],
              spike_t s[CONFIG::out_channels][CONFIG::height][CONFIG::width], int t) {
    static_assert(CONFIG::kernel_size == 3 && CONFIG::stride == 1 && CONFIG::padding == 1,
                  "hqflow::conv_lif implements a 3x3 window, stride 1, padding 1");
    typedef typename CONFIG::acc_t acc_t;
    typedef typename accumulator<acc_t>::type acc_reg_t;
    typedef typename CONFIG::weight weight;
    const int H = CONFIG::height, W = CONFIG::width, O = CONFIG::out_channels;
    lif_channel<CONFIG> channel[CONFIG::out_channels];
    for (int o = 0; o < O; o++) channel[o] = lif_constants<CONFIG>(bias_int[o], thr_int[o], sign[o]);
    static acc_reg_t acc[CONFIG::height][CONFIG::width][CONFIG::out_channels];
    HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = acc cyclic factor = CONFIG::parallel dim = 3)
    // clear the accumulators
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            for (int o = 0; o < O; o++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                acc[y][xx][o] = 0;
            }
    // scatter: input (c, y, xx) reaches output (y + 1 - i, xx + 1 - j) through tap (i, j)
    for (unsigned c = 0; c < CONFIG::in_channels; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                const typename CONFIG::in_t x_in = x[c][y][xx];
                if (x_in == 0) continue;
                for (int i = 0; i < 3; i++) {
                    const int oy = y + 1 - i;
                    if (oy < 0 || oy >= H) continue;
                    for (int j = 0; j < 3; j++) {
                        const int ox = xx + 1 - j;
                        if (ox < 0 || ox >= W) continue;
                        accumulate_row<weight, CONFIG::out_channels, CONFIG::reuse_factor>(
                            acc[oy][ox], w[(c * 3 + i) * 3 + j], x_in);
                    }
                }
            }
    // charge, fire, reset
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            for (int o = 0; o < O; o++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                s[o][y][xx] = lif_update<CONFIG>(v_int[y][xx][o], acc[y][xx][o], channel[o], t);
            }
}

}  // namespace hqflow

#endif
