// The ops without weights: spike max pooling (an OR), the residual add, and tokens
// ([C][H][W] -> [H W][C]). One time step each.
#ifndef HQFLOW_SPIKE_OPS_H_
#define HQFLOW_SPIKE_OPS_H_

#include "hqflow_common.h"

namespace hqflow {

/** The defaults of a maxpool_or config; a generated config inherits them and sets every one
 *  (export/hls/configs.py MaxpoolConfig). */
struct maxpool_config {
    static const unsigned channels = 1;        // C
    static const unsigned in_height = 1;       // H
    static const unsigned in_width = 1;        // W
    static const unsigned out_height = 1;      // (H - 1) / 2 + 1
    static const unsigned out_width = 1;       // (W - 1) / 2 + 1
    static const unsigned kernel_size = 3;     // the window: maxpool_or implements 3x3,
    static const unsigned stride = 2;          // stride 2
    static const unsigned padding = 1;         // and padding 1 (checked at compile time)
};

/** The defaults of an add config (export/hls/configs.py AddConfig). */
struct add_config {
    typedef spike_t a_t;                       // the first operand's values
    typedef spike_t b_t;                       // the second operand's values
    typedef ap_uint<2> out_t;                  // the sum: holds a_t's largest plus b_t's
    static const unsigned size = 1;            // values per operand
};

/** The defaults of a tokens config (export/hls/configs.py TokensConfig). */
struct tokens_config {
    typedef spike_t in_t;                      // the values moved (input and output alike)
    static const unsigned channels = 1;        // C
    static const unsigned height = 1;          // H
    static const unsigned width = 1;           // W
};

/** 3x3 max pooling, stride 2, padding 1, of spikes: an OR of each window (numerics.maxpool_or).
 *  x [C][H][W] -> out [C][(H - 1) / 2 + 1][(W - 1) / 2 + 1]. */
template <class CONFIG>
void maxpool_or(const spike_t x[CONFIG::channels][CONFIG::in_height][CONFIG::in_width],
                spike_t out[CONFIG::channels][CONFIG::out_height][CONFIG::out_width]) {
    static_assert(CONFIG::kernel_size == 3 && CONFIG::stride == 2 && CONFIG::padding == 1,
                  "hqflow::maxpool_or implements a 3x3 window, stride 2, padding 1");
    const int C = CONFIG::channels, H = CONFIG::in_height, W = CONFIG::in_width;
    for (int c = 0; c < C; c++)
        for (unsigned oy = 0; oy < CONFIG::out_height; oy++)
            for (unsigned ox = 0; ox < CONFIG::out_width; ox++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                spike_t any = 0;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        const int y = 2 * oy + i - 1, xx = 2 * ox + j - 1;
                        if (y >= 0 && y < H && xx >= 0 && xx < W) any |= x[c][y][xx];
                    }
                out[c][oy][ox] = any;
            }
}

/** Residual add: out = a + b elementwise over SIZE values (out_t holds the sum's range). */
template <class CONFIG>
void add(const typename CONFIG::a_t a[CONFIG::size], const typename CONFIG::b_t b[CONFIG::size],
         typename CONFIG::out_t out[CONFIG::size]) {
    for (unsigned i = 0; i < CONFIG::size; i++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        out[i] = a[i] + b[i];
    }
}

/** Feature map to tokens: x [C][H][W] -> out [H W][C], token n = y * W + x. */
template <class CONFIG>
void tokens(const typename CONFIG::in_t x[CONFIG::channels][CONFIG::height][CONFIG::width],
            typename CONFIG::in_t out[CONFIG::height * CONFIG::width][CONFIG::channels]) {
    for (unsigned c = 0; c < CONFIG::channels; c++)
        for (unsigned y = 0; y < CONFIG::height; y++)
            for (unsigned xx = 0; xx < CONFIG::width; xx++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                out[y * CONFIG::width + xx][c] = x[c][y][xx];
            }
}

}  // namespace hqflow

#endif
