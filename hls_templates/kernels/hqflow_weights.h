// Weight schemes: how a BITS-bit ROM code becomes a product with an input value x.
//
// Each scheme is a struct with `code_bits` and `product(x, code)`: x times the DeployGraph's
// integer weight w_eff (numerics.w_eff_from_codes) of a BITS-bit ROM code (rom_word_t). A product is
// exact in 64 bits (|x w_eff| <= acc_bound < 2^63, checked at export); the kernels add it into an
// ap_int<acc_bits> accumulator, wide enough for every partial sum.
#ifndef HQFLOW_WEIGHTS_H_
#define HQFLOW_WEIGHTS_H_

#include "hqflow_common.h"

// x * w of an input x (ap_uint<k>) and a weight w of type w_t (ap_int<m>): under synthesis (and in
// a C simulation built with -DHQFLOW_AP_ARITHMETIC) a k x m-bit multiplier; in a plain C simulation
// the same product in 64-bit integers, exact since |x w| <= acc_bound < 2^63 (checked at export),
// without ap_int's per-operation cost.
#if defined(__SYNTHESIS__) || defined(HQFLOW_AP_ARITHMETIC)
#define HQFLOW_EXACT_PRODUCT(x, w_t, w) ((x) * w_t(w)).to_int64()
#else
#define HQFLOW_EXACT_PRODUCT(x, w_t, w) (static_cast<long long>((x).to_uint64()) * (w))
#endif

namespace hqflow {

/** uniform-b: code w_int in [0, 2^b), w_eff = w_int - ZERO_POINT in [-(2^b - 1), 2^b - 1].
 *  One (b+1)-bit signed multiply per product. */
template <unsigned BITS, int ZERO_POINT>
struct uniform_weight {
    static const unsigned code_bits = BITS;
    typedef ap_int<BITS + 1> w_t;

    static long long value(unsigned w_int) { return static_cast<long long>(w_int) - ZERO_POINT; }

    template <class x_t>
    static long long product(const x_t &x, unsigned w_int) {
        if (x_t::width == 1) return value(w_int);  // a spike adds the weight itself
        return HQFLOW_EXACT_PRODUCT(x, w_t, value(w_int));
    }
};

/** po2-b (ZERO_LEVEL false) and po2z-b (true): code = [negative : 1][shift : b - 1],
 *  w_eff = (-1)^negative * 2^shift; with ZERO_LEVEL the all-ones shift field is the weight 0.
 *  A shift and a conditional negation: no multiplier. */
template <unsigned BITS, bool ZERO_LEVEL>
struct po2_weight {
    static const unsigned code_bits = BITS;
    static const unsigned shift_mask = (1u << (BITS - 1)) - 1;

    template <class x_t>
    static long long product(const x_t &x, unsigned code) {
        const unsigned shift = code & shift_mask;
        if (ZERO_LEVEL && shift == shift_mask) return 0;
        const long long magnitude = x.to_int64() << shift;
        return (code >> (BITS - 1)) ? -magnitude : magnitude;
    }
};

/** fp32 as 32-bit fixed point: the code is w_eff in two's complement; a 32-bit multiply. */
struct fixed_weight {
    static const unsigned code_bits = 32;
    typedef ap_int<32> w_t;

    static long long value(unsigned code) { return static_cast<int>(code); }  // two's complement

    template <class x_t>
    static long long product(const x_t &x, unsigned code) {
        if (x_t::width == 1) return value(code);
        return HQFLOW_EXACT_PRODUCT(x, w_t, value(code));
    }
};

/** The defaults of a weighted kernel's input, weights and accumulator; the kernels' configs
 *  (wlif_config, head_config) inherit them, and a generated config sets
 *  every one (export/hls/configs.py WeightRomConfig). */
struct weight_rom_config {
    typedef spike_t in_t;                      // input values: spikes, event counts or residual sums
    typedef ap_int<32> acc_t;                  // the accumulator, ap_int<acc_bits>: holds every partial sum
    typedef uniform_weight<8, 128> weight;     // the weight scheme: uniform_weight, po2_weight or fixed_weight
    static const unsigned row_words = 1;       // ROM words per row: ceil(outputs / (64 / weight::code_bits))
    static const unsigned reuse_factor = 1;    // initiation interval of the accumulation's loop over the inputs
};

/** acc[o] += x * w_eff[o] for the N outputs of one ROM row (the codes of one input). One ROM word
 *  per II cycles; its 64 / BITS lanes in parallel. */
template <class WEIGHT, unsigned N, unsigned II, class acc_reg_t, class x_t>
inline void accumulate_row(acc_reg_t acc[N], const rom_word_t *row, const x_t &x) {
    const unsigned lanes = 64 / WEIGHT::code_bits;
    const rom_word_t mask = (1ULL << WEIGHT::code_bits) - 1;
    for (unsigned first = 0; first < N; first += lanes) {
        HQFLOW_PRAGMA(HLS PIPELINE II = II)
        const rom_word_t word = row[first / lanes];
        const unsigned count = N - first < lanes ? N - first : lanes;
        for (unsigned lane = 0; lane < count; lane++) {
            HQFLOW_PRAGMA(HLS UNROLL)
            const unsigned code = static_cast<unsigned>((word >> (lane * WEIGHT::code_bits)) & mask);
            acc[first + lane] += WEIGHT::product(x, code);
        }
    }
}

}  // namespace hqflow

#endif
