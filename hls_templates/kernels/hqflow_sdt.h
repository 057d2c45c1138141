// The Spike-driven Transformer's layers, streaming (words of T values, as every layer's; hqflow_stream.h):
//   wbn         a weighted layer whose BN output joins the residual path as a fixed-point value (no LIF):
//               per output channel o and step t, y = (acc[t][o] * m_int[o] + b_int[o]) >> shift, two's
//               complement in out_bits (numerics.requant); the window and accumulation of hqflow_wlif.h
//   lif_stream  a LIF alone on a (signed) fixed-point stream: one channel of tables for every element
//   sdsa        spike-driven self-attention: count[t][d] = sum_n k[t][n][d] AND v[t][n][d]; the LIF over
//               t of each channel's count gives mask[t][d]; out[t][n][d] = q[t][n][d] AND mask[t][d].
//               q of every token is kept (the mask needs the last token's k and v).
#ifndef HQFLOW_SDT_H_
#define HQFLOW_SDT_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_stream.h"
#include "hqflow_weights.h"
#include "hqflow_wlif.h"

namespace hqflow {

// ---- wbn: window, accumulation, requantization ------------------------------------------------------

/** The defaults of a wbn config (export/hls/ops.py WbnConfig). */
struct wbn_config : weight_rom_config {
    typedef ap_uint<1> in_word_t;              // T input values (in_t) a word
    typedef ap_uint<1> out_word_t;             // T fixed-point values (out_bits each) a word
    typedef storage_bram storage;              // the line buffer's memory
    static const unsigned height = 1;
    static const unsigned width = 1;
    static const unsigned in_channels = 1;
    static const unsigned out_channels = 1;
    static const unsigned kernel_size = 3;     // 3 (conv, padding 1) or 1 (linear, padding 0), stride 1
    static const unsigned padding = 1;
    static const unsigned lanes = 1;           // P: output channels a group
    static const unsigned time_steps = 1;      // T
    static const unsigned out_bits = 1;        // the output values' width (two's complement)
    static const unsigned shift = 0;           // the requantization's right shift
};

template <class CONFIG>
void wbn_rows(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,
              const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],
              const int m_int[CONFIG::out_channels], const long long b_int[CONFIG::out_channels],
              typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels]) {
    HQFLOW_PRAGMA(HLS INLINE)
    static_assert((CONFIG::kernel_size == 3 && CONFIG::padding == 1) || (CONFIG::kernel_size == 1 && CONFIG::padding == 0),
                  "hqflow::wbn implements a 3x3 window with padding 1 and a 1x1 window without, stride 1");
    static_assert(CONFIG::out_word_t::width == CONFIG::time_steps * CONFIG::out_bits, "hqflow::wbn: words of T values");
    typedef typename accumulator<typename CONFIG::acc_t>::type acc_reg_t;
    const unsigned H = CONFIG::height, W = CONFIG::width, O = CONFIG::out_channels;
    const unsigned PAD = CONFIG::padding, T = CONFIG::time_steps, P = group_size<CONFIG>::lanes;
    for (unsigned r = 0; r < H + PAD; r++) {
        if (!read_row<CONFIG>(in, line, r)) continue;
        const unsigned y = r - PAD;
        for (unsigned x = 0; x < W; x++)
            for (unsigned first = 0; first < O; first += P) {
                acc_reg_t acc[CONFIG::time_steps][group_size<CONFIG>::lanes];
                HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = acc complete dim = 0)
                accumulate_window<CONFIG>(line, w, y, x, first, acc);
                for (unsigned p = 0; p < P && first + p < O; p++) {  // (acc m + b) >> shift at each step
                    HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                    const unsigned o = first + p;
                    typename CONFIG::out_word_t word = 0;
                    for (unsigned t = 0; t < T; t++) {
                        // |acc m + b| < 2^63 (checked at export): exact in 64 bits; >> floors (b_int rounds)
                        const long long product = int_value(acc[t][p]) * static_cast<long long>(m_int[o]) + b_int[o];
                        set_field<CONFIG::out_bits>(word, t, product >> CONFIG::shift);
                    }
                    out.write(word);
                }
            }
    }
}

#define HQFLOW_WBN_WITH(tag, impl)                                                                                    \
    template <class CONFIG>                                                                                          \
    void wbn(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,            \
             const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],  \
             const int m_int[CONFIG::out_channels], const long long b_int[CONFIG::out_channels], tag) {              \
        typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels];                    \
        HQFLOW_BIND(line, impl)                                                                                      \
        wbn_rows<CONFIG>(in, out, w, m_int, b_int, line);                                                            \
    }
HQFLOW_WBN_WITH(storage_bram, bram)
HQFLOW_WBN_WITH(storage_uram, uram)
HQFLOW_WBN_WITH(storage_lutram, lutram)
#undef HQFLOW_WBN_WITH

/** One image through the layer: the line buffer in the memory the config's `storage` names. */
template <class CONFIG>
void wbn(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,
         const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],
         const int m_int[CONFIG::out_channels], const long long b_int[CONFIG::out_channels]) {
    wbn<CONFIG>(in, out, w, m_int, b_int, typename CONFIG::storage());
}

// ---- lif_stream: a LIF alone ----------------------------------------------------------------------------

/** The defaults of a lif_stream config (export/hls/ops.py LifStreamConfig). */
struct lif_stream_config : lif_config {
    typedef ap_uint<1> in_word_t;              // T input values (in_bits each) a word
    typedef ap_uint<1> out_word_t;             // T spikes a word
    typedef ap_int<2> acc_t;                   // one input value (the LIF's charge reads it as its acc)
    static const unsigned in_bits = 1;
    static const unsigned in_signed = 1;       // the input values two's complement
    static const unsigned size = 1;            // elements an image
};

template <class CONFIG>
void lif_stream(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,
                const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1],
                const signed char sign[1]) {
    static_assert(CONFIG::in_word_t::width == CONFIG::time_steps * CONFIG::in_bits &&
                  CONFIG::out_word_t::width == CONFIG::time_steps, "hqflow::lif_stream: words of T values");
    const lif_channel<CONFIG> channel = lif_constants<CONFIG>(bias_int[0], thr_int[0], sign[0]);
    for (unsigned e = 0; e < CONFIG::size; e++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        const typename CONFIG::in_word_t word = in.read();
        typename membrane<CONFIG>::type v_int = 0;
        unsigned long long spikes = 0;
        for (unsigned t = 0; t < CONFIG::time_steps; t++) {
            const typename CONFIG::acc_t x = field_at<CONFIG::in_bits, CONFIG::in_signed != 0>(word, t);
            if (lif_update<CONFIG>(v_int, x, channel, t)) spikes |= 1ULL << t;
        }
        out.write(typename CONFIG::out_word_t(spikes));
    }
}

// ---- sdsa: spike-driven self-attention -----------------------------------------------------------------

/** The defaults of an sdsa config (export/hls/ops.py SdsaConfig). */
struct sdsa_config : lif_config {
    typedef ap_uint<1> word_t;                 // T spikes: q, k, v and the output
    typedef ap_int<2> acc_t;                   // a count, as the LIF's charge reads it: 0 .. tokens
    typedef ap_uint<1> count_t;                // a count's register
    typedef storage_bram storage;              // q of every token
    static const unsigned tokens = 1;          // N
    static const unsigned dim = 1;             // D
};

template <class CONFIG>
void sdsa_body(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,
               hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,
               const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1],
               const signed char sign[1], typename CONFIG::word_t q[CONFIG::tokens * CONFIG::dim]) {
    HQFLOW_PRAGMA(HLS INLINE)
    const unsigned N = CONFIG::tokens, D = CONFIG::dim, T = CONFIG::time_steps;
    typename CONFIG::count_t count[CONFIG::time_steps][CONFIG::dim];
    HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = count complete dim = 1)
    typename CONFIG::word_t mask[CONFIG::dim];
    for (unsigned d = 0; d < D; d++)
        for (unsigned t = 0; t < T; t++) count[t][d] = 0;
    for (unsigned n = 0; n < N; n++)  // the counts of k AND v, q kept
        for (unsigned d = 0; d < D; d++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            q[n * D + d] = in_q.read();
            const typename CONFIG::word_t both = in_k.read() & in_v.read();
            for (unsigned t = 0; t < T; t++) count[t][d] += (both >> t) & 1;
        }
    const lif_channel<CONFIG> channel = lif_constants<CONFIG>(bias_int[0], thr_int[0], sign[0]);
    for (unsigned d = 0; d < D; d++) {  // the mask: the LIF over t of each channel's count
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        typename membrane<CONFIG>::type v_int = 0;
        unsigned long long spikes = 0;
        for (unsigned t = 0; t < T; t++)
            if (lif_update<CONFIG>(v_int, typename CONFIG::acc_t(count[t][d]), channel, t)) spikes |= 1ULL << t;
        mask[d] = typename CONFIG::word_t(spikes);
    }
    for (unsigned n = 0; n < N; n++)
        for (unsigned d = 0; d < D; d++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            out.write(q[n * D + d] & mask[d]);
        }
}

#define HQFLOW_SDSA_WITH(tag, impl)                                                                                   \
    template <class CONFIG>                                                                                          \
    void sdsa(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,               \
              hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,                \
              const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1],                \
              const signed char sign[1], tag) {                                                                      \
        typename CONFIG::word_t q[CONFIG::tokens * CONFIG::dim];                                                     \
        HQFLOW_BIND(q, impl)                                                                                         \
        sdsa_body<CONFIG>(in_q, in_k, in_v, out, bias_int, thr_int, sign, q);                                        \
    }
HQFLOW_SDSA_WITH(storage_bram, bram)
HQFLOW_SDSA_WITH(storage_uram, uram)
HQFLOW_SDSA_WITH(storage_lutram, lutram)
#undef HQFLOW_SDSA_WITH

/** One image through the attention: q of every token in the memory the config's `storage` names. */
template <class CONFIG>
void sdsa(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,
          hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,
          const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1],
          const signed char sign[1]) {
    sdsa<CONFIG>(in_q, in_k, in_v, out, bias_int, thr_int, sign, typename CONFIG::storage());
}

}  // namespace hqflow

#endif
