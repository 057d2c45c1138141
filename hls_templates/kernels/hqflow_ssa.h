// Spiking self-attention (SSA) on spikes followed by the attention LIF, streaming, all T steps together.
//
// q, k, v: [N][D] words of T spikes (tokens in order, channels last), heads of d = D / num_heads
// channels. Per step t and head h:
//     kv[t][h d + i][j] = sum_n k[t][n][h d + i] * v[t][n][h d + j]          (counts, <= N)
//     y[t][n][h d + j]  = sum_i q[t][n][h d + i] * kv[t][h d + i][j]         (= (q k^T v), <= N d)
// then the LIF of numerics.fold_lif(1, 0, attn_scale, 0.5, 0, T) over t with the membrane in a
// register: bias 0, one threshold for all channels. Products of spikes are ANDs; k^T v first costs
// N d^2 per head instead of N^2 d. A token's k and v enter k^T v as they arrive; q is kept for every
// token (`storage`, with k^T v) until k^T v is whole, then the outputs stream token by token: a barrier (the
// schedule puts a FIFO of a whole map after it).
#ifndef HQFLOW_SSA_H_
#define HQFLOW_SSA_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"
#include "hqflow_stream.h"

namespace hqflow {

/** The defaults of an ssa_lif config; a generated config inherits them and sets every one
 *  (export/hls/configs.py SsaConfig). */
struct ssa_config : lif_config {
    typedef ap_uint<1> word_t;                 // T spikes a word (q, k, v and the output)
    typedef ap_int<32> acc_t;                  // q (k^T v), ap_int<acc_bits>: at most tokens * head_dim
    typedef ap_uint<8> kv_t;                   // k^T v counts: at most tokens
    typedef storage_bram storage;              // q of every token and k^T v
    static const unsigned tokens = 1;          // N
    static const unsigned dim = 1;             // D = num_heads * head_dim
    static const unsigned num_heads = 1;
    static const unsigned head_dim = 1;        // d
    static const unsigned parallel = 1;        // k^T v entries a word, updated at once (the schedule's kv split: d / SPLIT)
};

/** The k^T v counts as the kernel holds them: kv_t (its RAM's words), or in the 64-bit model of a plain C
 *  simulation a 64-bit count (hqflow_common.h's accumulator), narrowed to kv_t when read. */
template <class CONFIG>
struct kv_count {
    typedef typename accumulator<typename CONFIG::kv_t>::type type;
};

template <class CONFIG>
void ssa_tokens(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,
                hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,
                const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1],
                const signed char sign[1], typename CONFIG::word_t q[CONFIG::tokens * CONFIG::dim],
                typename kv_count<CONFIG>::type kv[CONFIG::time_steps][CONFIG::dim][CONFIG::head_dim]) {
    HQFLOW_PRAGMA(HLS INLINE)
    static_assert(CONFIG::word_t::width == CONFIG::time_steps, "hqflow::ssa_lif: words of T spikes");
    typedef typename CONFIG::word_t word_t;
    typedef typename accumulator<typename CONFIG::acc_t>::type acc_reg_t;
    const unsigned N = CONFIG::tokens, D = CONFIG::dim, HD = CONFIG::head_dim, T = CONFIG::time_steps;
    const lif_channel<CONFIG> channel = lif_constants<CONFIG>(bias_int[0], thr_int[0], sign[0]);
    for (unsigned t = 0; t < T; t++)
        for (unsigned i = 0; i < D; i++)
            for (unsigned j = 0; j < HD; j++) kv[t][i][j] = 0;
    for (unsigned n = 0; n < N; n++) {  // k^T v, token by token: row i of head h gains v's spikes where k_i spikes
        word_t k[CONFIG::dim], v[CONFIG::dim];
        for (unsigned d = 0; d < D; d++) {
            HQFLOW_PRAGMA(HLS PIPELINE II = 1)
            q[n * D + d] = in_q.read();
            k[d] = in_k.read();
            v[d] = in_v.read();
        }
        for (unsigned i = 0; i < D; i++) {
            if (k[i] == 0) continue;
            const unsigned base = i / HD * HD;
            for (unsigned t = 0; t < T; t++) {
                if (!value_at<1>(k[i], t)) continue;
                for (unsigned j = 0; j < HD; j++) {
                    HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                    HQFLOW_PRAGMA(HLS UNROLL factor = CONFIG::parallel)
                    kv[t][i][j] += value_at<1>(v[base + j], t);
                }
            }
        }
    }
    for (unsigned n = 0; n < N; n++)  // y = q (k^T v), then the LIF: token by token, head by head
        for (unsigned base = 0; base < D; base += HD) {
            acc_reg_t y[CONFIG::time_steps][CONFIG::head_dim];
            for (unsigned t = 0; t < T; t++)
                for (unsigned j = 0; j < HD; j++) y[t][j] = 0;
            for (unsigned i = 0; i < HD; i++) {
                const word_t &qi = q[n * D + base + i];
                if (qi == 0) continue;
                for (unsigned t = 0; t < T; t++) {
                    if (!value_at<1>(qi, t)) continue;
                    for (unsigned j = 0; j < HD; j++) {
                        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                        HQFLOW_PRAGMA(HLS UNROLL factor = CONFIG::parallel)
                        y[t][j] += int_value(kv[t][base + i][j]);
                    }
                }
            }
            for (unsigned j = 0; j < HD; j++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                typename membrane<CONFIG>::type v_int = 0;
                unsigned long long spikes = 0;  // bit t: step t (T <= 64)
                for (unsigned t = 0; t < T; t++)
                    if (lif_update<CONFIG>(v_int, y[t][j], channel, t)) spikes |= 1ULL << t;
                out.write(word_t(spikes));
            }
        }
}

#define HQFLOW_SSA_WITH(tag, impl)                                                                                   \
    template <class CONFIG>                                                                                         \
    void ssa_lif(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,            \
                 hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,             \
                 const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1], const signed char sign[1], tag) {         \
        typename CONFIG::word_t q[CONFIG::tokens * CONFIG::dim];                                                     \
        HQFLOW_BIND(q, impl)                                                                                        \
        typename kv_count<CONFIG>::type kv[CONFIG::time_steps][CONFIG::dim][CONFIG::head_dim];                       \
        HQFLOW_PRAGMA(HLS ARRAY_RESHAPE variable = kv cyclic factor = CONFIG::parallel dim = 3)                     \
        HQFLOW_BIND(kv, impl)                                                                                       \
        ssa_tokens<CONFIG>(in_q, in_k, in_v, out, bias_int, thr_int, sign, q, kv);                                  \
    }
HQFLOW_SSA_WITH(storage_bram, bram)
HQFLOW_SSA_WITH(storage_uram, uram)
HQFLOW_SSA_WITH(storage_lutram, lutram)
#undef HQFLOW_SSA_WITH

/** One image through the attention: q of every token and k^T v (a word of `parallel` counts) in the
 *  memory the config's `storage` names. */
template <class CONFIG>
void ssa_lif(hls::stream<typename CONFIG::word_t> &in_q, hls::stream<typename CONFIG::word_t> &in_k,
             hls::stream<typename CONFIG::word_t> &in_v, hls::stream<typename CONFIG::word_t> &out,
             const typename CONFIG::table_t bias_int[1], const typename CONFIG::table_t thr_int[1], const signed char sign[1]) {
    ssa_lif<CONFIG>(in_q, in_k, in_v, out, bias_int, thr_int, sign, typename CONFIG::storage());
}

}  // namespace hqflow

#endif
