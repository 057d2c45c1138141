// hqflow kernel library: common types, packed weight ROMs, the C-simulation trace hook.
//
// Every kernel is a function template on a per-node CONFIG struct (firmware/parameters.h):
// sizes, ap_int types, the weight scheme and the reuse factor. Generated code fills in the
// configs, the tables and the call order; all arithmetic lives in these headers.
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

/** A C-simulation model of an ap_int<acc_bits> accumulator (acc_t): the sum runs in 64 bits and is
 *  narrowed to acc_t when read. The same bits as adding in acc_t: two's complement addition in
 *  acc_bits is addition modulo 2^acc_bits, whether the wrap happens at every add or once at the
 *  end, and no partial sum exceeds 64 bits (|acc| <= acc_bound < 2^63, checked at export). Mixed
 *  ap_int additions cost the C simulation ~2.5 ns each, this ~0.1 ns. */
template <class acc_t>
class exact_sum {
  public:
    exact_sum(long long value = 0) : sum_(value) {}
    exact_sum &operator+=(long long value) {
        sum_ += value;
        return *this;
    }
    operator acc_t() const { return acc_t(sum_); }

  private:
    long long sum_;
};

// The accumulators the kernels use: acc_t itself under synthesis (and in a C simulation built with
// -DHQFLOW_AP_ARITHMETIC, which runs the synthesis arithmetic), exact_sum<acc_t> in a plain C
// simulation. The tests compile both and check both against hqflow.numerics.
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
// this hook (the testbench sets it to compare against the golden vectors). No hook, no cost.
typedef void (*trace_fn)(int node, int t, const long long *values, int n);

inline trace_fn &trace_hook() {
    static trace_fn hook = 0;
    return hook;
}

template <class A>
void trace(int node, int t, const A &array) {
    if (!trace_hook()) return;
    typedef typename std::remove_all_extents<A>::type element_t;
    const int n = sizeof(A) / sizeof(element_t);
    const element_t *first = reinterpret_cast<const element_t *>(&array);
    std::vector<long long> values(n);
    for (int i = 0; i < n; i++) values[i] = first[i].to_int64();
    trace_hook()(node, t, values.data(), n);
}
#define HQFLOW_TRACE(node, t, array) ::hqflow::trace((node), (t), (array))
#else
#define HQFLOW_TRACE(node, t, array)
#endif

}  // namespace hqflow

#endif
