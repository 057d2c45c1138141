// Verilator testbench of the whole model (hqflow_top, built with +define+HQFLOW_TRACE), run in the
// export's rtl/ folder. Reads
//   data/tb.txt      samples traced steps frame classes logit_bits nodes, then per node: name buffer size
//   data/frames.txt  samples * steps * frame input values (channels last, one frame per step)
//   data/logits.txt  samples * classes golden logits (the NumPy simulator)
//   data/trace.txt   traced * steps * (sum of the nodes' sizes) golden node outputs (RTL layout)
// Streams each sample's frames through in_valid / in_ready (argument 2, if given: a stall period,
// in_valid low one cycle in every N), and after each step of the first `traced` samples reads every
// node's buffer through the peek port and compares it, then compares the logits. Prints
//   cycles <sample> <step> <core> <N>      cycles each core ran (start to done), per step
//   load <sample> <step> <N>               cycles the step's frame took to arrive
//   latency <sample> <N>                   first frame value to the last logit
//   mismatch <node> sample <b> step <t> index <i> got <x> want <y>   (the first 20)
//   node <name> mismatches: <N>
//   logits mismatches: <N>
// and last `mismatches: <N>` (the sum); exit status 1 on any mismatch, 2 on bad input.
// Argument 1, if given, runs only the first N samples.
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

static Vhqflow_top top;
static long long now = 0;

static void tick() {
    top.clk = 1; top.eval();
    top.clk = 0; top.eval();
    now++;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    std::ifstream cfg("data/tb.txt");
    unsigned samples, traced, steps, frame, classes, logit_bits, nodes;
    if (!(cfg >> samples >> traced >> steps >> frame >> classes >> logit_bits >> nodes) || logit_bits < 1 || logit_bits > 64) { std::printf("data/tb.txt: bad header\n"); return 2; }
    std::vector<std::string> names(nodes);
    std::vector<unsigned> bufs(nodes), sizes(nodes);
    size_t per_step = 0;
    for (unsigned i = 0; i < nodes; i++) {
        if (!(cfg >> names[i] >> bufs[i] >> sizes[i])) { std::printf("data/tb.txt: bad node line %u\n", i); return 2; }
        per_step += sizes[i];
    }
    unsigned run = argc > 1 && argv[1][0] != '+' ? (unsigned)std::atoi(argv[1]) : samples;
    if (run == 0 || run > samples) run = samples;
    const unsigned stall = argc > 2 ? (unsigned)std::atoi(argv[2]) : 0;
    const std::vector<long long> frames = read_values("data/frames.txt", (size_t)samples * steps * frame);
    const std::vector<long long> logits = read_values("data/logits.txt", (size_t)samples * classes);
    const std::vector<long long> trace = read_values("data/trace.txt", (size_t)traced * steps * per_step);

    std::vector<long long> node_mm(nodes, 0);
    long long logit_mm = 0, shown = 0;
    top.rst = 1; top.in_valid = 0; top.in_data = 0; top.dbg_buf = 0; top.dbg_addr = 0;
    tick(); tick();
    top.rst = 0; top.eval();
    for (unsigned b = 0; b < run; b++) {
        std::vector<long long> got(classes, -1);
        const long long begin = now;
        for (unsigned t = 0; t < steps; t++) {
            const long long *x = &frames[((size_t)b * steps + t) * frame];
            const long long load_begin = now;
            for (unsigned i = 0; i < frame;) {          // stream the frame
                const bool valid = !(stall && now % stall == stall - 1);
                top.in_valid = valid; top.in_data = (uint32_t)x[i]; top.eval();
                const bool taken = valid && top.in_ready;
                tick();
                if (taken) i++;
                if (now - load_begin > 100000000LL) { std::printf("the top never takes the frame\n"); return 2; }
            }
            top.in_valid = 0; top.eval();
            std::printf("load %u %u %lld\n", b, t, now - load_begin);
            std::vector<long long> cycles(256, 0);
            const long long run_begin = now;
            while (!top.dbg_step_done) {
                if (top.dbg_node != 255) cycles[top.dbg_node]++;
                if (top.out_valid && top.out_index < classes) {   // sign-extended from logit_bits
                    const unsigned shift = 64 - logit_bits;
                    got[top.out_index] = (long long)((int64_t)((uint64_t)top.out_data << shift) >> shift);
                }
                tick();
                if (now - run_begin > 1000000000LL) { std::printf("step %u of sample %u never ends\n", t, b); return 2; }
            }
            for (unsigned k = 0; k < 256; k++)
                if (cycles[k]) std::printf("cycles %u %u %u %lld\n", b, t, k, cycles[k]);
            if (b < traced) {                           // every node's buffer against the trace
                const long long *want = &trace[((size_t)b * steps + t) * per_step];
                for (unsigned n = 0; n < nodes; n++) {
                    top.dbg_buf = bufs[n];
                    for (unsigned i = 0; i < sizes[n]; i++, want++) {
                        top.dbg_addr = i; top.eval();
                        const long long value = (long long)top.dbg_data;
                        if (value != *want) {
                            node_mm[n]++;
                            if (shown++ < 20)
                                std::printf("mismatch %s sample %u step %u index %u got %lld want %lld\n",
                                            names[n].c_str(), b, t, i, value, *want);
                        }
                    }
                }
            }
        }
        std::printf("latency %u %lld\n", b, now - begin);
        for (unsigned k = 0; k < classes; k++) {
            const long long want = logits[(size_t)b * classes + k];
            if (got[k] != want) {
                logit_mm++;
                if (shown++ < 20) std::printf("mismatch logits sample %u index %u got %lld want %lld\n", b, k, got[k], want);
            }
        }
    }
    long long total = logit_mm;
    for (unsigned n = 0; n < nodes; n++) {
        std::printf("node %s mismatches: %lld\n", names[n].c_str(), node_mm[n]);
        total += node_mm[n];
    }
    std::printf("logits mismatches: %lld\n", logit_mm);
    std::printf("samples: %u traced: %u\n", run, traced < run ? traced : run);
    std::printf("mismatches: %lld\n", total);
    return total ? 1 : 0;
}
