// The weighted layers, streaming: a K x K window (conv 3x3, stride 1, padding 1; linear as a 1x1 window
// over the tokens as an N x 1 image) followed by the LIF, all T steps of a neuron together.
//
// in: [H][W][C] words of T input values; out: [H][W][O] words of T spikes. Per output pixel and
// output channel o:
//     acc[t][o] = sum_{i, j, c} w_eff[o][c][i][j] * x[t][c][y + i - PAD][x + j - PAD]   (t = 0 .. T - 1)
// then the LIF over t with the membrane in a register (hqflow_lif.h). The input rows pass through a
// line buffer of K rows (`storage`); output row y is computed once row y + PAD has arrived. The output
// channels go in groups of `lanes` (P, the schedule's folding): one group's T x P accumulators at a
// time, its P lanes unrolled. Event driven: a zero input word (no value at any step) is skipped.
// ROM rows: w[(c * K + i) * K + j] holds tap (c, i, j)'s codes for all O outputs (hqflow_common.h).
#ifndef HQFLOW_WLIF_H_
#define HQFLOW_WLIF_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_stream.h"
#include "hqflow_weights.h"

namespace hqflow {

/** The defaults of a wlif config; a generated config inherits them and sets every one
 *  (export/hls/configs.py WlifConfig). */
struct wlif_config : weight_rom_config, lif_config {
    typedef ap_uint<1> in_word_t;              // T input values (in_t) a word
    typedef ap_uint<1> out_word_t;             // T spikes a word
    typedef storage_bram storage;              // the line buffer's memory
    static const unsigned height = 1;          // H, of the input and the output (linear: N tokens)
    static const unsigned width = 1;           // W (linear: 1)
    static const unsigned in_channels = 1;     // C
    static const unsigned out_channels = 1;    // O
    static const unsigned kernel_size = 3;     // K: 3 (conv, padding 1) or 1 (linear, padding 0), stride 1
    static const unsigned padding = 1;         // PAD = (K - 1) / 2
    static const unsigned lanes = 1;           // P: output channels a group (the folding)
};

/** acc[p] += x * w_eff[first + p] for the lanes of one group (outputs first .. first + P - 1 < outputs). */
template <class WEIGHT, unsigned P, class acc_reg_t, class x_t>
inline void accumulate_lanes(acc_reg_t acc[P], const rom_word_t *row, unsigned first, unsigned outputs,
                             const x_t &x) {
    const unsigned per_word = 64 / WEIGHT::code_bits;
    const rom_word_t mask = (1ULL << WEIGHT::code_bits) - 1;
    if (outputs % P == 0 && (P % per_word == 0 || per_word % P == 0)) {  // every lane live, whole words or
        const unsigned chunk = P < per_word ? P : per_word;                 // parts of one: no per-lane test
        for (unsigned k = 0; k < P / chunk; k++) {
            const unsigned o = first + k * chunk;
            const rom_word_t word = row[o / per_word] >> (o % per_word * WEIGHT::code_bits);
            for (unsigned lane = 0; lane < chunk; lane++) {
                HQFLOW_PRAGMA(HLS UNROLL)
                acc[k * chunk + lane] += WEIGHT::product(x, static_cast<unsigned>((word >> (lane * WEIGHT::code_bits)) & mask));
            }
        }
        return;
    }
    for (unsigned p = 0; p < P; p++) {
        HQFLOW_PRAGMA(HLS UNROLL)
        const unsigned o = first + p;
        if (o < outputs) {
            const unsigned code = static_cast<unsigned>((row[o / per_word] >> (o % per_word * WEIGHT::code_bits)) & mask);
            acc[p] += WEIGHT::product(x, code);
        }
    }
}

/** The output channels of one pass over a pixel's window: the schedule's lanes P (under synthesis and with
 *  HQFLOW_AP_ARITHMETIC); in the 64-bit model of a plain C simulation all O at once: the same sums (the
 *  groups are independent), the window read once a pixel instead of once a group. */
template <class CONFIG>
struct group_size {
#if defined(__SYNTHESIS__) || defined(HQFLOW_AP_ARITHMETIC)
    static const unsigned lanes = CONFIG::lanes;
#else
    static const unsigned lanes = CONFIG::out_channels;
#endif
};

/** The T x P accumulators of output pixel (y, x) and the output channels first .. first + P - 1 from the line
 *  buffer's rows (event driven: a zero input word is skipped). P: group_size<CONFIG>::lanes. */
template <class CONFIG, class acc_reg_t>
inline void accumulate_window(
    const typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels],
    const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],
    unsigned y, unsigned x, unsigned first, acc_reg_t acc[CONFIG::time_steps][group_size<CONFIG>::lanes]) {
    HQFLOW_PRAGMA(HLS INLINE)
    typedef typename CONFIG::weight weight;
    typedef typename CONFIG::in_t in_t;
    const unsigned H = CONFIG::height, W = CONFIG::width, C = CONFIG::in_channels, O = CONFIG::out_channels;
    const unsigned K = CONFIG::kernel_size, PAD = CONFIG::padding, T = CONFIG::time_steps, P = group_size<CONFIG>::lanes;
    const unsigned IN_BITS = in_t::width;
    for (unsigned t = 0; t < T; t++)
        for (unsigned p = 0; p < P; p++) acc[t][p] = 0;
    for (unsigned i = 0; i < K; i++) {
        if (y + i < PAD || y + i - PAD >= H) continue;
        const unsigned slot = (y + i - PAD) % K;
        for (unsigned j = 0; j < K; j++) {
            if (x + j < PAD || x + j - PAD >= W) continue;
            for (unsigned c = 0; c < C; c++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = CONFIG::reuse_factor)
                const typename CONFIG::in_word_t &word = line[slot][(x + j - PAD) * C + c];
                if (word == 0) continue;
                const rom_word_t *row = w[(c * K + i) * K + j];
#if !defined(__SYNTHESIS__) && !defined(HQFLOW_AP_ARITHMETIC)
                const unsigned long long spikes = word.to_uint64();
                if (IN_BITS == 1 && (spikes & (spikes - 1)) != 0) {
                    // the 64-bit model: spikes at several steps: the weights decoded once, added at each
                    long long w_eff[group_size<CONFIG>::lanes] = {0};
                    accumulate_lanes<weight, group_size<CONFIG>::lanes>(w_eff, row, first, O, in_t(1));
                    for (unsigned t = 0; t < T; t++)
                        if ((spikes >> t) & 1)
                            for (unsigned p = 0; p < P; p++) acc[t][p] += w_eff[p];
                    continue;
                }
#endif
                unsigned long long values[CONFIG::time_steps];
                unpack<IN_BITS, CONFIG::time_steps>(word, values);
                for (unsigned t = 0; t < T; t++)
                    if (values[t])
                        accumulate_lanes<weight, group_size<CONFIG>::lanes>(acc[t], row, first, O, in_t(values[t]));
            }
        }
    }
}

/** Input row r into the line buffer (r < H); returns whether output row r - PAD is due (r >= PAD). */
template <class CONFIG>
inline bool read_row(hls::stream<typename CONFIG::in_word_t> &in,
                     typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels],
                     unsigned r) {
    HQFLOW_PRAGMA(HLS INLINE)
    if (r < CONFIG::height)
        for (unsigned e = 0; e < CONFIG::width * CONFIG::in_channels; e++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            line[r % CONFIG::kernel_size][e] = in.read();
        }
    return r >= CONFIG::padding;
}

template <class CONFIG>
void wlif_rows(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,
               const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],
               const typename CONFIG::table_t bias_int[CONFIG::out_channels], const typename CONFIG::table_t thr_int[CONFIG::out_channels],
               const signed char sign[CONFIG::out_channels],
               typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels]) {
    HQFLOW_PRAGMA(HLS INLINE)
    static_assert((CONFIG::kernel_size == 3 && CONFIG::padding == 1) || (CONFIG::kernel_size == 1 && CONFIG::padding == 0),
                  "hqflow::wlif implements a 3x3 window with padding 1 and a 1x1 window without, stride 1");
    static_assert(CONFIG::in_word_t::width == CONFIG::time_steps * CONFIG::in_t::width &&
                  CONFIG::out_word_t::width == CONFIG::time_steps, "hqflow::wlif: words of T values");
    typedef typename accumulator<typename CONFIG::acc_t>::type acc_reg_t;
    const unsigned H = CONFIG::height, W = CONFIG::width, O = CONFIG::out_channels;
    const unsigned PAD = CONFIG::padding, T = CONFIG::time_steps, P = group_size<CONFIG>::lanes;
    for (unsigned r = 0; r < H + PAD; r++) {  // input row r in; then output row r - PAD out
        if (!read_row<CONFIG>(in, line, r)) continue;
        const unsigned y = r - PAD;
        for (unsigned x = 0; x < W; x++)
            for (unsigned first = 0; first < O; first += P) {
                acc_reg_t acc[CONFIG::time_steps][group_size<CONFIG>::lanes];
                HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = acc complete dim = 0)
                accumulate_window<CONFIG>(line, w, y, x, first, acc);
                for (unsigned p = 0; p < P && first + p < O; p++) {  // charge, fire, reset over the T steps
                    HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                    const unsigned o = first + p;
                    const lif_channel<CONFIG> channel = lif_constants<CONFIG>(bias_int[o], thr_int[o], sign[o]);
                    typename membrane<CONFIG>::type v_int = 0;
                    unsigned long long spikes = 0;  // bit t: step t (T <= 64)
                    for (unsigned t = 0; t < T; t++)
                        if (lif_update<CONFIG>(v_int, acc[t][p], channel, t)) spikes |= 1ULL << t;
                    out.write(typename CONFIG::out_word_t(spikes));
                }
            }
    }
}

#define HQFLOW_WLIF_WITH(tag, impl)                                                                                   \
    template <class CONFIG>                                                                                          \
    void wlif(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,           \
              const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words], \
              const typename CONFIG::table_t bias_int[CONFIG::out_channels], const typename CONFIG::table_t thr_int[CONFIG::out_channels],        \
              const signed char sign[CONFIG::out_channels], tag) {                                                   \
        typename CONFIG::in_word_t line[CONFIG::kernel_size][CONFIG::width * CONFIG::in_channels];                    \
        HQFLOW_BIND(line, impl)                                                                                      \
        wlif_rows<CONFIG>(in, out, w, bias_int, thr_int, sign, line);                                                \
    }
HQFLOW_WLIF_WITH(storage_bram, bram)
HQFLOW_WLIF_WITH(storage_uram, uram)
HQFLOW_WLIF_WITH(storage_lutram, lutram)
#undef HQFLOW_WLIF_WITH

/** One image through the layer: the line buffer in the memory the config's `storage` names. */
template <class CONFIG>
void wlif(hls::stream<typename CONFIG::in_word_t> &in, hls::stream<typename CONFIG::out_word_t> &out,
          const rom_word_t w[CONFIG::in_channels * CONFIG::kernel_size * CONFIG::kernel_size][CONFIG::row_words],
          const typename CONFIG::table_t bias_int[CONFIG::out_channels], const typename CONFIG::table_t thr_int[CONFIG::out_channels],
          const signed char sign[CONFIG::out_channels]) {
    wlif<CONFIG>(in, out, w, bias_int, thr_int, sign, typename CONFIG::storage());
}

}  // namespace hqflow

#endif
