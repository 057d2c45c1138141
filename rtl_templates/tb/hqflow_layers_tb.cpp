// Verilator testbench of single-layer cores (rendered top hqflow_layers_top: one core per case,
// selected by `sel`). Reads cases.txt (one line per case:
//   name samples T n_in spatial O G P
// ) and each case's <name>/x.txt (samples * T * n_in input values) and <name>/s.txt (samples * T *
// spatial * O golden spikes, [spatial][O] per step) from the NumPy simulator. Drives every step
// (start, first at t = 0), models the input RAM (x_data answers x_addr one cycle later), collects
// the spikes written (out_addr = pos * G + g, bit p: channel g * P + p) and prints
//   <name> sample b step t cycles N     per step, then  <name> mismatches: N   and finally  mismatches: N
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>
#include "Vhqflow_layers_top.h"
#include "verilated.h"

static std::vector<long long> read_values(const std::string &path) {
    std::ifstream in(path);
    std::vector<long long> v;
    long long x;
    while (in >> x) v.push_back(x);
    return v;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    Vhqflow_layers_top top;
    std::ifstream cases("cases.txt");
    std::string name;
    long long total = 0;
    int sel = 0;
    top.clk = 0; top.start = 0; top.first = 0; top.x_data = 0; top.sel = 0;
    top.eval();
    unsigned samples, steps, n_in, spatial, outputs, groups, lanes;
    while (cases >> name >> samples >> steps >> n_in >> spatial >> outputs >> groups >> lanes) {
        const std::vector<long long> x = read_values(name + "/x.txt"), s = read_values(name + "/s.txt");
        if (x.size() != (size_t)samples * steps * n_in || s.size() != (size_t)samples * steps * spatial * outputs) {
            std::printf("%s: vector files of the wrong size\n", name.c_str());
            return 2;
        }
        long long mismatches = 0;
        top.sel = sel++;
        std::vector<int> got(spatial * outputs);
        for (unsigned b = 0; b < samples; b++)
            for (unsigned t = 0; t < steps; t++) {
                const long long *xs = &x[((size_t)b * steps + t) * n_in];
                std::fill(got.begin(), got.end(), -1);
                top.start = 1; top.first = t == 0;
                long long cycles = 0;
                bool done = false;
                while (!done) {
                    const uint32_t addr = top.x_addr;
                    top.clk = 1; top.eval();
                    cycles++;
                    top.start = 0;
                    top.x_data = addr < n_in ? (uint32_t)xs[addr] : 0;
                    if (top.out_we) {
                        const unsigned pos = top.out_addr / groups, g = top.out_addr % groups;
                        for (unsigned p = 0; p < lanes && g * lanes + p < outputs; p++)
                            if (pos < spatial) got[pos * outputs + g * lanes + p] = (top.out_data >> p) & 1;
                    }
                    done = top.done;
                    top.clk = 0; top.eval();
                    if (cycles > 100000000LL) { std::printf("%s: no done\n", name.c_str()); return 2; }
                }
                const long long *want = &s[((size_t)b * steps + t) * spatial * outputs];
                for (size_t i = 0; i < got.size(); i++) mismatches += got[i] != want[i];
                std::printf("%s sample %u step %u cycles %lld\n", name.c_str(), b, t, cycles);
            }
        std::printf("%s mismatches: %lld\n", name.c_str(), mismatches);
        total += mismatches;
    }
    std::printf("mismatches: %lld\n", total);
    return total ? 1 : 0;
}
