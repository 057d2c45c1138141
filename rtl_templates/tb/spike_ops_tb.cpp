// Verilator testbench of spike_ops_tb.v: runs the cases of a vector file (written by
// hqflow.export.rtl.spike_ops from hqflow.numerics) and compares every output of every step.
//
//   spike_ops_tb CASES_FILE
// File: whitespace-separated integers.  ncases, then per case:
//   sel steps out_bits bias thr sign(-1/0/1)
//   per step: first last  na a[na]  nb b[nb]  nc c[nc]  ne e[ne]
// The a, b, c memories are modelled as synchronous RAMs (data one cycle after abc_addr); the outputs
// are collected from the write port into a memory of ne words, every word to be written once.
// Prints one line per step (`case I step T cycles N mismatches M`) and ends with `mismatches: N`
// (exit status 1 on any mismatch).
#include "Vspike_ops_tb.h"
#include "verilated.h"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

static Vspike_ops_tb *top;
static std::vector<uint64_t> mem_a, mem_b, mem_c, mem_out;
static std::vector<int> written;
static long stray_writes;

static void tick() {
    const uint32_t ra = top->abc_addr;
    const bool we = top->out_we;
    const uint32_t wa = top->out_addr;
    const uint64_t wd = top->out_data;
    top->clk = 1;
    top->eval();
    top->a_data = ra < mem_a.size() ? mem_a[ra] : 0;
    top->b_data = ra < mem_b.size() ? mem_b[ra] : 0;
    top->c_data = ra < mem_c.size() ? mem_c[ra] : 0;
    if (we) {
        if (wa < mem_out.size()) {
            mem_out[wa] = wd;
            written[wa]++;
        } else {
            stray_writes++;
        }
    }
    top->eval();
    top->clk = 0;
    top->eval();
}

static std::vector<uint64_t> read_list(std::ifstream &in) {
    long long n;
    in >> n;
    std::vector<uint64_t> v(n);
    for (long long i = 0; i < n; i++) {
        long long x;
        in >> x;
        v[i] = static_cast<uint64_t>(x);
    }
    return v;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CASES_FILE\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    top = new Vspike_ops_tb;
    long total = 0;
    int ncases;
    in >> ncases;
    for (int cs = 0; cs < ncases; cs++) {
        int sel, steps, out_bits, sign;
        long long bias, thr;
        in >> sel >> steps >> out_bits >> bias >> thr >> sign;
        const uint64_t mask = out_bits >= 64 ? ~0ULL : ((1ULL << out_bits) - 1);
        top->sel = sel;
        top->bias = static_cast<uint64_t>(bias);
        top->thr = static_cast<uint64_t>(thr);
        top->sign = sign > 0 ? 1 : sign < 0 ? 3 : 0;
        top->start = 0;
        top->rst = 1;
        tick();
        tick();
        top->rst = 0;
        tick();
        for (int t = 0; t < steps; t++) {
            int first, last;
            in >> first >> last;
            mem_a = read_list(in);
            mem_b = read_list(in);
            mem_c = read_list(in);
            std::vector<uint64_t> expect = read_list(in);
            mem_out.assign(expect.size(), 0);
            written.assign(expect.size(), 0);
            stray_writes = 0;
            top->first = first;
            top->last = last;
            top->start = 1;
            tick();  // the edge that samples start
            top->start = 0;
            long cycles = 0, bad = 0;
            const long limit = 1000000;
            for (;;) {
                const bool d = top->done;
                tick();
                cycles++;
                if (d) break;
                if (cycles > limit) {
                    std::printf("case %d step %d: no done after %ld cycles\n", cs, t, limit);
                    bad++;
                    break;
                }
            }
            for (size_t i = 0; i < expect.size(); i++) {
                if (written[i] != 1 || ((mem_out[i] ^ expect[i]) & mask)) {
                    if (bad < 5)
                        std::printf("case %d step %d out[%zu]: got %llu (written %d times), expected %llu\n", cs, t,
                                    i, (unsigned long long)(mem_out[i] & mask), written[i],
                                    (unsigned long long)(expect[i] & mask));
                    bad++;
                }
            }
            bad += stray_writes;
            std::printf("case %d step %d cycles %ld mismatches %ld\n", cs, t, cycles, bad);
            total += bad;
        }
    }
    top->final();
    delete top;
    std::printf("mismatches: %ld\n", total);
    return total ? 1 : 0;
}
