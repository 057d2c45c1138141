// Verilator testbench of the streaming top (hqflow_top, built with +define+HQFLOW_TRACE), run in the
// export's rtl/ folder. Reads
//   data/tb.txt      samples traced steps elements in_bits classes logit_bits nodes cores, then per node:
//                    name stream size bits offset (its stream's index, elements an image, bits a value:
//                    negative for two's complement values, the stream's offset in dbg_data)
//   data/frames.txt  samples * elements * steps input values (pixel-major, channels last, the T values
//                    of an element together)
//   data/logits.txt  samples * classes golden logits (the NumPy simulator)
//   data/trace.txt   traced * (per node: size * steps) golden node outputs, element by element
// Streams the samples through in_tvalid / in_tready: the first `isolate` samples (argument 3, default
// 1) each alone (fed after the logits of the one before: their latency is the empty pipeline's), the
// rest back to back (their spacing is the pipeline's initiation interval). Every beat of every node's
// stream is compared with the golden values for the traced samples; every sample's logits. Prints
//   active <core> <N>                   cycles each core advanced, over the whole run
//   latency <sample> <N>                first input beat to last logit
//   done <sample> <cycle>               the cycle of its last logit
//   span <node> <first> <last>          sample 0: the cycles of the first and last beat of each node's
//                                       stream, counted from its first input beat (a timeline)
//   mismatch <node> sample <b> step <t> index <i> got <x> want <y>   (the first 20)
//   node <name> mismatches: <N>
//   logits mismatches: <N>
// and last `mismatches: <N>`; exit status 1 on any mismatch, 2 on bad input or a hang.
// Argument 1: run only the first N samples (0: all); argument 2: a stall period (in_tvalid low one
// cycle in every N, and out_tready low one cycle in every N + 1).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>
#include "Vhqflow_top.h"
#include "verilated.h"

static std::vector<long long> read_values(const char *path, size_t expect) {
    std::ifstream in(path);
    std::vector<long long> v;
    long long x;
    while (in >> x) v.push_back(x);
    if (v.size() != expect) {
        std::printf("%s: %zu values, expected %zu\n", path, v.size(), expect);
        std::exit(2);
    }
    return v;
}

// bits [off, off + width) of a signal (width <= 64): an integer port or a wide one (VlWide)
template <typename S> static uint64_t get_bits(const S &sig, unsigned off, unsigned width) {
    const uint64_t v = (uint64_t)sig >> off;
    return width >= 64 ? v : v & ((1ULL << width) - 1);
}
template <std::size_t N> static uint64_t get_bits(const VlWide<N> &sig, unsigned off, unsigned width) {
    uint64_t v = 0;
    for (unsigned b = 0; b < width; b++) {
        const unsigned k = off + b;
        v |= (uint64_t)((sig[k / 32] >> (k % 32)) & 1U) << b;
    }
    return v;
}
template <typename S> static void put_bits(S &sig, unsigned off, unsigned width, uint64_t value) {
    const uint64_t mask = (width >= 64 ? ~0ULL : (1ULL << width) - 1) << off;
    sig = (S)(((uint64_t)sig & ~mask) | ((value << off) & mask));
}
template <std::size_t N> static void put_bits(VlWide<N> &sig, unsigned off, unsigned width, uint64_t value) {
    for (unsigned b = 0; b < width; b++) {
        const unsigned k = off + b;
        const uint32_t bit = 1U << (k % 32);
        sig[k / 32] = ((value >> b) & 1) ? (sig[k / 32] | bit) : (sig[k / 32] & ~bit);
    }
}

static Vhqflow_top top;
static long long now = 0;

// the rising edge; the falling edge is evaluated with the next cycle's inputs (one eval fewer a cycle)
static void tick() {
    top.clk = 1; top.eval();
    top.clk = 0;
    now++;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    std::ifstream cfg("data/tb.txt");
    unsigned samples, traced, steps, elements, in_bits, classes, logit_bits, nodes, cores;
    if (!(cfg >> samples >> traced >> steps >> elements >> in_bits >> classes >> logit_bits >> nodes >> cores)
        || logit_bits < 1 || logit_bits > 64 || in_bits < 1 || in_bits > 64) {
        std::printf("data/tb.txt: bad header\n"); return 2;
    }
    std::vector<std::string> names(nodes);
    std::vector<unsigned> stream(nodes), sizes(nodes), bits(nodes), offset(nodes);
    std::vector<bool> is_signed(nodes);
    std::vector<size_t> trace_base(nodes);
    size_t per_sample = 0;
    for (unsigned i = 0; i < nodes; i++) {
        int signed_bits = 0;  // negative: the node's values two's complement in -signed_bits bits
        if (!(cfg >> names[i] >> stream[i] >> sizes[i] >> signed_bits >> offset[i]) || signed_bits == 0 ||
            signed_bits > 64 || signed_bits < -64) {
            std::printf("data/tb.txt: bad node line %u\n", i); return 2;
        }
        is_signed[i] = signed_bits < 0;
        bits[i] = (unsigned)(signed_bits < 0 ? -signed_bits : signed_bits);
        trace_base[i] = per_sample;
        per_sample += (size_t)sizes[i] * steps;
    }
    unsigned run = argc > 1 && argv[1][0] != '+' ? (unsigned)std::atoi(argv[1]) : samples;
    if (run == 0 || run > samples) run = samples;
    const unsigned stall = argc > 2 ? (unsigned)std::atoi(argv[2]) : 0;
    const unsigned isolate = argc > 3 ? (unsigned)std::atoi(argv[3]) : 1;
    const std::vector<long long> frames = read_values("data/frames.txt", (size_t)samples * elements * steps);
    const std::vector<long long> logits = read_values("data/logits.txt", (size_t)samples * classes);
    const std::vector<long long> trace = read_values("data/trace.txt", (size_t)traced * per_sample);

    std::vector<long long> node_mm(nodes, 0), seen(nodes, 0), active(cores, 0);
    std::vector<long long> first_beat(run, -1), last_logit(run, -1), span_first(nodes, -1), span_last(nodes, -1);
    long long logit_mm = 0, shown = 0;
    unsigned fed = 0, fed_el = 0, done = 0, out_count = 0;
    top.rst = 1; top.in_tvalid = 0; top.in_tlast = 0; top.out_tready = 1;
    top.eval(); tick(); top.eval(); tick();
    top.rst = 0; top.eval();
    const long long begin = now;
    while (done < run) {
        // the input: sample `fed`, element `fed_el`
        const bool may_feed = fed < run && (fed > isolate || done == fed);
        const bool stalled = stall && now % stall == stall - 1;
        top.in_tvalid = may_feed && !stalled;
        if (may_feed) {
            const long long *x = &frames[((size_t)fed * elements + fed_el) * steps];
            for (unsigned t = 0; t < steps; t++) put_bits(top.in_tdata, t * in_bits, in_bits, (uint64_t)x[t]);
            top.in_tlast = fed_el == elements - 1;
        }
        top.out_tready = !(stall && now % (stall + 1) == stall);
        top.eval();
        if (top.in_tvalid && top.in_tready) {
            if (fed_el == 0) first_beat[fed] = now;
            if (++fed_el == elements) { fed_el = 0; fed++; }
        }
        for (unsigned c = 0; c < cores; c++) active[c] += get_bits(top.dbg_active, c, 1);
        for (unsigned n = 0; n < nodes; n++) {
            if (!get_bits(top.dbg_fire, stream[n], 1)) continue;
            const long long k = seen[n]++;
            const unsigned b = (unsigned)(k / sizes[n]), i = (unsigned)(k % sizes[n]);
            if (k == 0) span_first[n] = now - first_beat[0];
            if (k == (long long)sizes[n] - 1) span_last[n] = now - first_beat[0];
            if (b >= traced) continue;
            const long long *want = &trace[(size_t)b * per_sample + trace_base[n] + (size_t)i * steps];
            for (unsigned t = 0; t < steps; t++) {
                uint64_t raw = get_bits(top.dbg_data, offset[n] + t * bits[n], bits[n]);
                if (is_signed[n] && bits[n] < 64 && ((raw >> (bits[n] - 1)) & 1)) raw |= ~0ULL << bits[n];
                const long long got = (long long)raw;
                if (got != want[t]) {
                    node_mm[n]++;
                    if (shown++ < 20)
                        std::printf("mismatch %s sample %u step %u index %u got %lld want %lld\n", names[n].c_str(),
                                    b, t, i, got, want[t]);
                }
            }
        }
        if (top.out_tvalid && top.out_tready) {
            const unsigned shift = 64 - logit_bits;
            const long long got = (long long)((int64_t)((uint64_t)top.out_tdata << shift) >> shift);
            const long long want = logits[(size_t)done * classes + out_count];
            if (got != want) {
                logit_mm++;
                if (shown++ < 20)
                    std::printf("mismatch logits sample %u index %u got %lld want %lld\n", done, out_count, got, want);
            }
            if ((out_count == classes - 1) != (bool)top.out_tlast) {
                logit_mm++;
                if (shown++ < 20) std::printf("mismatch logits sample %u index %u: tlast %d\n", done, out_count,
                                              (int)top.out_tlast);
            }
            if (++out_count == classes) {
                out_count = 0;
                last_logit[done] = now;
                std::printf("latency %u %lld\n", done, now - first_beat[done] + 1);
                std::printf("done %u %lld\n", done, now - begin);
                done++;
            }
        }
        tick();
        if (now - begin > 2000000000LL) { std::printf("the pipeline hangs (sample %u)\n", done); return 2; }
        if (done < run && first_beat[done] >= 0 && now - first_beat[done] > 400000000LL) {
            std::printf("sample %u never ends\n", done); return 2;
        }
    }
    for (unsigned c = 0; c < cores; c++) std::printf("active %u %lld\n", c, active[c]);
    for (unsigned n = 0; n < nodes; n++) std::printf("span %s %lld %lld\n", names[n].c_str(), span_first[n], span_last[n]);
    long long total = logit_mm;
    for (unsigned n = 0; n < nodes; n++) {
        const long long expect = (long long)run * sizes[n];
        if (seen[n] < expect) {   // a stream that stopped short
            node_mm[n] += expect - seen[n];
            std::printf("mismatch %s: %lld beats, expected %lld\n", names[n].c_str(), seen[n], expect);
        }
        std::printf("node %s mismatches: %lld\n", names[n].c_str(), node_mm[n]);
        total += node_mm[n];
    }
    std::printf("logits mismatches: %lld\n", logit_mm);
    std::printf("samples: %u traced: %u\n", run, traced < run ? traced : run);
    std::printf("mismatches: %lld\n", total);
    return total ? 1 : 0;
}
