// Spiking self-attention (SSA) on spikes followed by the attention LIF, one time step.
//
// q, k, v [N][D] spikes, heads of d = D / num_heads channels. Per head h:
//     kv[i][j] = sum_n k[n][h d + i] * v[n][h d + j]            (counts, <= N)
//     y[n][h d + j] = sum_i q[n][h d + i] * kv[i][j]            (= (q k^T v)[n][h d + j], <= N d)
// then the LIF of numerics.fold_lif(1, 0, attn_scale, 0.5, 0, T): bias 0, one threshold for all
// channels (scale 0.25 or 0.125 and threshold 0.5 make it an exact integer). Products of spikes
// are ANDs; computing k^T v first costs N d^2 instead of N^2 d per head.
#ifndef HQFLOW_SSA_H_
#define HQFLOW_SSA_H_

#include "hqflow_common.h"
#include "hqflow_lif.h"

namespace hqflow {

/** The defaults of an ssa_lif config; a generated config inherits them and sets every one
 *  (export/hls/configs.py SsaConfig). */
struct ssa_config : lif_config {
    typedef ap_int<32> acc_t;                  // q (k^T v), ap_int<acc_bits>: at most tokens * head_dim
    typedef ap_uint<8> kv_t;                   // k^T v counts: at most tokens
    static const unsigned tokens = 1;          // N
    static const unsigned dim = 1;             // D = num_heads * head_dim
    static const unsigned num_heads = 1;
    static const unsigned head_dim = 1;        // d
    static const unsigned parallel = 1;        // unroll factor of the inner products over j
};

template <class CONFIG>
void ssa_lif(const spike_t q[CONFIG::tokens][CONFIG::dim], const spike_t k[CONFIG::tokens][CONFIG::dim],
             const spike_t v[CONFIG::tokens][CONFIG::dim], const long long bias_int[1], const long long thr_int[1],
             const signed char sign[1], typename CONFIG::v_t v_int[CONFIG::tokens][CONFIG::dim],
             spike_t s[CONFIG::tokens][CONFIG::dim], int t) {
    typedef typename CONFIG::acc_t acc_t;
    typedef typename accumulator<acc_t>::type acc_reg_t;
    typedef typename accumulator<typename CONFIG::kv_t>::type kv_reg_t;
    const int N = CONFIG::tokens, HEADS = CONFIG::num_heads, D = CONFIG::head_dim;
    const lif_channel<CONFIG> channel = lif_constants<CONFIG>(bias_int[0], thr_int[0], sign[0]);
    kv_reg_t kv[CONFIG::head_dim][CONFIG::head_dim];
    HQFLOW_PRAGMA(HLS ARRAY_PARTITION variable = kv complete dim = 2)
    for (int h = 0; h < HEADS; h++) {
        const int base = h * D;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) kv[i][j] = 0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < D; i++) {
                if (!k[n][base + i]) continue;
                for (int j = 0; j < D; j++) {
                    HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                    HQFLOW_PRAGMA(HLS UNROLL factor = CONFIG::parallel)
                    kv[i][j] += v[n][base + j].to_int64();
                }
            }
        for (int n = 0; n < N; n++) {
            acc_reg_t y[CONFIG::head_dim];
            for (int j = 0; j < D; j++) y[j] = 0;
            for (int i = 0; i < D; i++) {
                if (!q[n][base + i]) continue;
                for (int j = 0; j < D; j++) {
                    HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                    HQFLOW_PRAGMA(HLS UNROLL factor = CONFIG::parallel)
                    y[j] += typename CONFIG::kv_t(kv[i][j]).to_int64();
                }
            }
            for (int j = 0; j < D; j++) {
                HQFLOW_PRAGMA(HLS PIPELINE II = 1)
                s[n][base + j] = lif_update<CONFIG>(v_int[n][base + j], y[j], channel, t);
            }
        }
    }
}

}  // namespace hqflow

#endif
