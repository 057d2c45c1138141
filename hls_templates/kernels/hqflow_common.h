// hqflow kernel library: common types, packed weight ROMs, the C-simulation trace hook.
//
// Every kernel is a function template on a per-node CONFIG struct (firmware/parameters.h):
// sizes, ap_int types, the weight scheme and the folding. Generated code fills in the configs,
// the tables and the call order of the dataflow; all arithmetic lives in these headers.
#ifndef HQFLOW_COMMON_H_
#define HQFLOW_COMMON_H_

#include <ap_int.h>

#ifndef __SYNTHESIS__
#include <type_traits>
#include <vector>
#endif

namespace hqflow {

typedef ap_uint<1> spike_t;

// Weight ROM word: 64 / BITS codes of BITS bits side by side, lane l in bits
// [l * BITS, (l + 1) * BITS). A table row holds the codes of one input (channel, tap) for every
// output channel o, in word o / lanes, lane o % lanes. Plain 64-bit words keep the tables
// constant-initialized (an array of ap_uint would be initialized element by element at start-up,
// and compile for minutes).
typedef unsigned long long rom_word_t;

// ---- the C simulation's 64-bit model of the ap_int arithmetic -----------------------------------
//
// A plain C simulation computes the integer datapath (accumulators, products, the LIF charge) in
// 64-bit integers and narrows each result to its declared width W the way ap_int<W> does (keep
// the low W bits, read them as two's complement): the same bits, because +, - and << are exact
// modulo 2^W whether the wrap happens at every step or once before the value is read, and every
// width is at most 64 (checked at export). ap_int's own operations cost the C simulation several
// nanoseconds each (every result is re-normalized through a volatile member); these cost one
// instruction. Built with -DHQFLOW_AP_ARITHMETIC (and under synthesis) the kernels use the ap_int
// arithmetic itself; the tests compile both and check both against hqflow.numerics.

/** The value of the low W bits of x as a W-bit two's complement integer (1 <= W <= 64). */
template <int W>
inline long long narrow(unsigned long long x) {
    return W == 64 ? static_cast<long long>(x) : static_cast<long long>(x << (64 - W % 64)) >> (64 - W % 64);
}

/** An ap_int<acc_bits> accumulator (acc_t) modeled in 64 bits: summed exactly, narrowed when read
 *  (|partial sums| <= acc_bound < 2^63, checked at export). */
template <class acc_t>
class exact_sum {
  public:
    exact_sum(long long value = 0) : sum_(value) {}
    exact_sum &operator+=(long long value) {
        sum_ += value;
        return *this;
    }
    long long value() const { return narrow<acc_t::width>(static_cast<unsigned long long>(sum_)); }
    operator acc_t() const { return acc_t(value()); }

  private:
    long long sum_;
};

/** The integer value of an accumulator, either kind. */
template <class A>
inline long long int_value(const exact_sum<A> &acc) {
    return acc.value();
}
template <int W, bool S>
inline long long int_value(const ap_int_base<W, S> &x) {
    return x.to_int64();
}

// The accumulators the kernels use: acc_t itself under synthesis and with -DHQFLOW_AP_ARITHMETIC,
// exact_sum<acc_t> in a plain C simulation.
#if defined(__SYNTHESIS__) || defined(HQFLOW_AP_ARITHMETIC)
template <class acc_t>
struct accumulator {
    typedef acc_t type;
};
#else
template <class acc_t>
struct accumulator {
    typedef exact_sum<acc_t> type;
};
#endif

// HLS directives: seen by the synthesis tool, invisible to the C++ compiler of a C simulation.
#ifdef __SYNTHESIS__
#define HQFLOW_PRAGMA(x) _Pragma(#x)
#else
#define HQFLOW_PRAGMA(x)
#endif

#ifndef __SYNTHESIS__
// C simulation only: the top function reports every node's output at every time step through
// this hook (hqflow_stream.h's trace; the testbench sets it to compare against the golden vectors).
// No hook, no cost.
typedef void (*trace_fn)(int node, int t, const long long *values, int n);

inline trace_fn &trace_hook() {
    static trace_fn hook = 0;
    return hook;
}
#endif

}  // namespace hqflow

#endif
