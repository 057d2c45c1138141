// Streams between the layers: T-step words, storage tags, the fork, and the C-simulation stream trace.
//
// Every stream carries one element a beat: the T values of one position and channel, value t in
// bits [t * BITS, (t + 1) * BITS) of an ap_uint<T * BITS> word (spikes: BITS 1, bit t = step t),
// pixel-major and channels last ((y * W + x) * C + c; tokens n * C + c). A layer reads a word once
// and applies it to all T steps; its LIF runs over t = 0 .. T - 1 with the membrane in a register.
#ifndef HQFLOW_STREAM_H_
#define HQFLOW_STREAM_H_

#include <hls_stream.h>

#include "hqflow_common.h"

namespace hqflow {

/** Value t (BITS bits, at most 64) of a T-step word. */
template <unsigned BITS, class W>
inline unsigned long long value_at(const W &word, unsigned t) {
    const unsigned long long mask = BITS >= 64 ? ~0ULL : (1ULL << (BITS % 64)) - 1;
    if (W::width <= 64) return (word.to_uint64() >> (t * BITS % 64)) & mask;
    return W(word >> (t * BITS)).to_uint64() & mask;
}

/** Every value of a T-step word at once: values[t] = value t (BITS bits, at most 64), the word read in
 *  64-bit limbs (a wide word, such as T event counts, without a wide shift per value). */
template <unsigned BITS, unsigned T, class W>
inline void unpack(const W &word, unsigned long long values[T]) {
    const unsigned LIMBS = (W::width + 63) / 64;
    const unsigned long long mask = BITS >= 64 ? ~0ULL : (1ULL << (BITS % 64)) - 1;
    unsigned long long limb[LIMBS + 1];
    for (unsigned k = 0; k < LIMBS; k++) limb[k] = W::width <= 64 ? word.to_uint64() : W(word >> (64 * k)).to_uint64();
    limb[LIMBS] = 0;
    for (unsigned t = 0; t < T; t++) {
        const unsigned at = t * BITS, shift = at % 64;
        unsigned long long value = limb[at / 64] >> shift;
        if (shift + BITS > 64) value |= limb[at / 64 + 1] << ((64 - shift) % 64);
        values[t] = value & mask;
    }
}

/** Sets value t (BITS bits, value < 2^BITS) of a T-step word whose other bits of that value are 0. */
template <unsigned BITS, class W>
inline void set_value(W &word, unsigned t, unsigned long long value) {
    if (W::width <= 64) {
        word = word.to_uint64() | (value << (t * BITS % 64));
        return;
    }
    word |= W(value) << (t * BITS);
}

/** Value t of a word of T fields of BITS bits, read as two's complement when IS_SIGNED. */
template <unsigned BITS, bool IS_SIGNED, class W>
inline long long field_at(const W &word, unsigned t) {
    const unsigned long long value = value_at<BITS>(word, t);
    return IS_SIGNED ? narrow<BITS>(value) : static_cast<long long>(value);
}

/** Sets value t (two's complement in BITS bits) of a word whose other bits of that value are 0. */
template <unsigned BITS, class W>
inline void set_field(W &word, unsigned t, long long value) {
    const unsigned long long mask = BITS >= 64 ? ~0ULL : (1ULL << (BITS % 64)) - 1;
    set_value<BITS>(word, t, static_cast<unsigned long long>(value) & mask);
}

// Where a kernel's large array goes (a config's `storage` typedef, chosen by the schedule): the kernel
// declares the array once per tag, under that tag's BIND_STORAGE, and runs its body on it.
struct storage_bram {};    // block RAM (BRAM18K)
struct storage_uram {};    // UltraRAM (URAM288: 72-bit words, 4K deep)
struct storage_lutram {};  // LUT RAM (a small array)

#define HQFLOW_BIND(var, impl) HQFLOW_PRAGMA(HLS BIND_STORAGE variable = var type = ram_2p impl = impl)

/** A broadcast: every word of `in` (SIZE an image) to each output, in one pass. */
template <unsigned SIZE, class W>
void fork(hls::stream<W> &in, hls::stream<W> &out_0, hls::stream<W> &out_1) {
    for (unsigned e = 0; e < SIZE; e++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        const W word = in.read();
        out_0.write(word);
        out_1.write(word);
    }
}

template <unsigned SIZE, class W>
void fork(hls::stream<W> &in, hls::stream<W> &out_0, hls::stream<W> &out_1, hls::stream<W> &out_2) {
    for (unsigned e = 0; e < SIZE; e++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        const W word = in.read();
        out_0.write(word);
        out_1.write(word);
        out_2.write(word);
    }
}

template <unsigned SIZE, class W>
void fork(hls::stream<W> &in, hls::stream<W> &out_0, hls::stream<W> &out_1, hls::stream<W> &out_2,
          hls::stream<W> &out_3) {
    for (unsigned e = 0; e < SIZE; e++) {
        HQFLOW_PRAGMA(HLS PIPELINE II = 1)
        const W word = in.read();
        out_0.write(word);
        out_1.write(word);
        out_2.write(word);
        out_3.write(word);
    }
}

#ifndef __SYNTHESIS__
/** C simulation only: a node's output, as it stands in its stream after the node's process ran (the
 *  processes of the dataflow region run one after another in a C simulation), reported to the trace
 *  hook step by step in the node's own layout: `pixels` > 0: a feature map [C][H W] whose stream is
 *  channels last (element p * C + c is value c * pixels + p); 0: the stream's order; is_signed: the
 *  values two's complement. The stream is left as it was. */
template <class W>
void trace(int node, hls::stream<W> &s, unsigned steps, unsigned bits, unsigned channels, unsigned pixels,
           bool is_signed) {
    if (!trace_hook()) return;
    std::vector<W> words;
    while (!s.empty()) words.push_back(s.read());
    for (unsigned e = 0; e < words.size(); e++) s.write(words[e]);
    const unsigned n = words.size();
    std::vector<long long> values(n);
    for (unsigned t = 0; t < steps; t++) {
        for (unsigned e = 0; e < n; e++) {
            const unsigned at = pixels ? (e % channels) * pixels + e / channels : e;
            unsigned long long value = W(words[e] >> (t * bits)).to_uint64() & (bits >= 64 ? ~0ULL : (1ULL << bits) - 1);
            if (is_signed && bits < 64 && (value >> (bits - 1)) & 1) value |= ~0ULL << bits;  // two's complement
            values[at] = static_cast<long long>(value);
        }
        trace_hook()(node, t, values.data(), n);
    }
}
#define HQFLOW_TRACE_STREAM(node, s, steps, bits, channels, pixels, is_signed) \
    ::hqflow::trace((node), (s), (steps), (bits), (channels), (pixels), (is_signed))
#else
#define HQFLOW_TRACE_STREAM(node, s, steps, bits, channels, pixels, is_signed)
#endif

}  // namespace hqflow

#endif
