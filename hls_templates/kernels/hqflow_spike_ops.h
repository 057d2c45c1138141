// The layers without weights, streaming: spike max pooling (an OR) and the residual add. Words of
// T values (hqflow_stream.h); tokens is no layer at all: a [C][H][W] map's stream, channels last,
// is already its tokens [H W][C].
#ifndef HQFLOW_SPIKE_OPS_H_
#define HQFLOW_SPIKE_OPS_H_

#include "hqflow_common.h"
#include "hqflow_stream.h"

namespace hqflow {

/** The defaults of a maxpool_or config; a generated config inherits them and sets every one
 *  (export/hls/configs.py MaxpoolConfig). */
struct maxpool_config {
    typedef ap_uint<1> word_t;                 // T spikes a word (input and output)
    typedef storage_bram storage;              // the line buffer's memory
    static const unsigned channels = 1;        // C
    static const unsigned in_height = 1;       // H
    static const unsigned in_width = 1;        // W
    static const unsigned out_height = 1;      // (H - 1) / 2 + 1
    static const unsigned out_width = 1;       // (W - 1) / 2 + 1
    static const unsigned bits = 1;            // of each value: 1 (spikes: an OR), more (a max per value)
    static const unsigned is_signed = 0;       // the values two's complement
    static const unsigned kernel_size = 3;     // the window: maxpool_or implements 3x3,
    static const unsigned stride = 2;          // stride 2
    static const unsigned padding = 1;         // and padding 1 (checked at compile time)
};

/** The defaults of an add config (export/hls/configs.py AddConfig). */
struct add_config {
    typedef ap_uint<1> a_word_t;               // T values of a_bits a word
    typedef ap_uint<1> b_word_t;               // T values of b_bits
    typedef ap_uint<2> out_word_t;             // T values of out_bits: each holds a's largest plus b's
    static const unsigned a_bits = 1;
    static const unsigned b_bits = 1;
    static const unsigned out_bits = 2;
    static const unsigned time_steps = 1;      // T
    static const unsigned a_signed = 0;        // a's values two's complement (the membrane shortcut's sums)
    static const unsigned b_signed = 0;
    static const unsigned size = 1;            // elements an image
};

/** The larger, value by value, of two words of T values of BITS bits (two's complement when IS_SIGNED);
 *  of spikes (BITS 1, unsigned) an OR. */
template <unsigned BITS, bool IS_SIGNED, unsigned T, class W>
inline W max_values(const W &a, const W &b) {
    if (BITS == 1 && !IS_SIGNED) return a | b;
    W out = 0;
    for (unsigned t = 0; t < T; t++) {
        const long long x = field_at<BITS, IS_SIGNED>(a, t), y = field_at<BITS, IS_SIGNED>(b, t);
        set_field<BITS>(out, t, x > y ? x : y);
    }
    return out;
}

/** 3x3 max pooling, stride 2, padding 1: an OR of each window's spikes at every step (numerics.maxpool_or),
 *  or the max of multi-bit values (numerics.maxpool_int: the padding takes no part). in [H][W][C] -> out [(H - 1) / 2 + 1][(W - 1) / 2 + 1][C], through a line
 *  buffer of 3 rows: output row y once input row 2 y + 1 (or the last) has arrived. */
template <class CONFIG>
void maxpool_rows(hls::stream<typename CONFIG::word_t> &in, hls::stream<typename CONFIG::word_t> &out,
                  typename CONFIG::word_t line[3][CONFIG::in_width * CONFIG::channels]) {
    HQFLOW_PRAGMA(HLS INLINE)
    static_assert(CONFIG::kernel_size == 3 && CONFIG::stride == 2 && CONFIG::padding == 1,
                  "hqflow::maxpool_or implements a 3x3 window, stride 2, padding 1");
    const unsigned C = CONFIG::channels, H = CONFIG::in_height, W = CONFIG::in_width;
    for (unsigned r = 0; r < H; r++) {
        for (unsigned e = 0; e < W * C; e++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            line[r % 3][e] = in.read();
        }
        if (r % 2 == 0 && r != H - 1) continue;  // output row y = (r - 1) / 2 needs rows 2y-1 .. 2y+1
        const unsigned y = r / 2;                // r odd: (r - 1) / 2; the last row, even: r / 2
        for (unsigned x = 0; x < CONFIG::out_width; x++)
            for (unsigned c = 0; c < C; c++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                typename CONFIG::word_t pooled = 0;
                bool first = true;
                for (unsigned i = 0; i < 3; i++)
                    for (unsigned j = 0; j < 3; j++) {
                        const unsigned yy = 2 * y + i, xx = 2 * x + j;  // the input position + 1
                        if (yy < 1 || yy > H || xx < 1 || xx > W) continue;
                        const typename CONFIG::word_t &word = line[(yy - 1) % 3][(xx - 1) * C + c];
                        const unsigned T = CONFIG::word_t::width / CONFIG::bits;
                        pooled = first ? word : max_values<CONFIG::bits, CONFIG::is_signed != 0, T>(pooled, word);
                        first = false;
                    }
                out.write(pooled);
            }
    }
}

#define HQFLOW_MAXPOOL_WITH(tag, impl)                                                                       \
    template <class CONFIG>                                                                                 \
    void maxpool_or(hls::stream<typename CONFIG::word_t> &in, hls::stream<typename CONFIG::word_t> &out, tag) { \
        typename CONFIG::word_t line[3][CONFIG::in_width * CONFIG::channels];                                \
        HQFLOW_BIND(line, impl)                                                                             \
        maxpool_rows<CONFIG>(in, out, line);                                                                \
    }
HQFLOW_MAXPOOL_WITH(storage_bram, bram)
HQFLOW_MAXPOOL_WITH(storage_uram, uram)
HQFLOW_MAXPOOL_WITH(storage_lutram, lutram)
#undef HQFLOW_MAXPOOL_WITH

/** One image through the pooling: the line buffer in the memory the config's `storage` names. */
template <class CONFIG>
void maxpool_or(hls::stream<typename CONFIG::word_t> &in, hls::stream<typename CONFIG::word_t> &out) {
    maxpool_or<CONFIG>(in, out, typename CONFIG::storage());
}

/** Residual add, elementwise at every step: out[t] = a[t] + b[t] (out_bits holds the sum's range; two's
 *  complement fields where a or b is signed). */
template <class CONFIG>
void add(hls::stream<typename CONFIG::a_word_t> &in_a, hls::stream<typename CONFIG::b_word_t> &in_b,
         hls::stream<typename CONFIG::out_word_t> &out) {
    static_assert(CONFIG::a_word_t::width == CONFIG::time_steps * CONFIG::a_bits &&
                  CONFIG::b_word_t::width == CONFIG::time_steps * CONFIG::b_bits &&
                  CONFIG::out_word_t::width == CONFIG::time_steps * CONFIG::out_bits, "hqflow::add: words of T values");
    for (unsigned e = 0; e < CONFIG::size; e++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        const typename CONFIG::a_word_t a = in_a.read();
        const typename CONFIG::b_word_t b = in_b.read();
        typename CONFIG::out_word_t sum = 0;
        for (unsigned t = 0; t < CONFIG::time_steps; t++)
            set_field<CONFIG::out_bits>(sum, t, field_at<CONFIG::a_bits, CONFIG::a_signed != 0>(a, t) +
                                                    field_at<CONFIG::b_bits, CONFIG::b_signed != 0>(b, t));
        out.write(sum);
    }
}

}  // namespace hqflow

#endif
