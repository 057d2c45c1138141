// hqflow testbench: reads the golden vectors that the NumPy simulator wrote (tb/data), compares
// the C simulation with them, and prints the verdict. Test code: never synthesized.
//
// tb/data/inputs.txt         one line per sample: the frames [T][C][H][W], flattened
// tb/data/labels.txt         one label per line
// tb/data/golden_logits.txt  one line per sample: the integer logits
// tb/data/golden_trace.txt   one line per (sample, step, node) of the first samples:
//                            "sample step node count values..." (every node but the head)
#ifndef HQFLOW_TESTBENCH_H_
#define HQFLOW_TESTBENCH_H_

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../firmware/kernels/hqflow_common.h"

namespace hqflow_tb {

struct Model {
    const char *name;
    const char *const *node_names;  // indexed like the graph's nodes
    const int *node_sizes;          // values per step of each node (0 for the head)
    int num_nodes, input_size, num_classes, time_steps;
};

class Testbench {
  public:
    Testbench(const std::string &data_dir, const Model &model) : dir_(data_dir), model_(model) {}

    /** Read every file; false (and a message naming the file and line) when one is missing or malformed. */
    bool load() {
        return read_rows(dir_ + "/inputs.txt", model_.input_size, inputs_) &&
               read_rows(dir_ + "/golden_logits.txt", model_.num_classes, logits_) &&
               read_rows(dir_ + "/labels.txt", 1, labels_) && same_count() && read_trace(dir_ + "/golden_trace.txt");
    }

    int samples() const { return static_cast<int>(labels_.size()); }
    const std::vector<long long> &input(int s) const { return inputs_[s]; }

    void begin_sample(int s) {
        sample_ = s;
        traced_ = trace_.count(key(s, 0, 0)) > 0;
        current() = this;
        hqflow::trace_hook() = traced_ ? &Testbench::on_trace : 0;
        start_ = std::chrono::steady_clock::now();
    }

    void end_sample(const long long *logits) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        hqflow::trace_hook() = 0;
        (traced_ ? traced_seconds_ : seconds_) += seconds;
        (traced_ ? traced_count_ : count_) += 1;
        int best = 0, best_golden = 0;
        for (int k = 0; k < model_.num_classes; k++) {
            compare("logits", -1, k, logits[k], logits_[sample_][k]);
            if (logits[k] > logits[best]) best = k;
            if (logits_[sample_][k] > logits_[sample_][best_golden]) best_golden = k;
        }
        correct_ += best == labels_[sample_][0];
        correct_golden_ += best_golden == labels_[sample_][0];
    }

    /** Print the summary; the last line is "mismatches: N". Returns the exit status. */
    int finish() const {
        const int n = samples();
        std::printf("%s: %d samples (every node at every step for the first %d), %d logits compared\n",
                    model_.name, n, traced_samples_, n * model_.num_classes);
        std::printf("trace values compared: %lld\n", trace_values_);
        std::printf("accuracy: %.2f%% (%d / %d), golden %.2f%%\n", 100.0 * correct_ / n, correct_, n,
                    100.0 * correct_golden_ / n);
        const int timed = count_ ? count_ : traced_count_;
        const double seconds = count_ ? seconds_ : traced_seconds_;
        std::printf("time per sample: %.3f ms (%d samples%s)\n", 1e3 * seconds / timed, timed,
                    count_ ? " without trace" : ", with trace");
        if (mismatches_) std::printf("first mismatch: %s\n", first_.c_str());
        std::printf("mismatches: %lld\n", mismatches_);
        return mismatches_ ? 1 : 0;
    }

  private:
    static long long key(int sample, int step, int node) { return (static_cast<long long>(sample) * 4096 + step) * 4096 + node; }

    static Testbench *&current() {
        static Testbench *tb = 0;
        return tb;
    }

    static void on_trace(int node, int t, const long long *values, int n) { current()->check_trace(node, t, values, n); }

    void check_trace(int node, int t, const long long *values, int n) {
        std::map<long long, std::vector<long long> >::const_iterator it = trace_.find(key(sample_, t, node));
        if (it == trace_.end() || static_cast<int>(it->second.size()) != n) {
            mismatches_ += n;
            if (first_.empty()) {
                std::ostringstream msg;
                msg << "node " << model_.node_names[node] << ", step " << t << ", sample " << sample_
                    << ": no golden vector of " << n << " values";
                first_ = msg.str();
            }
            return;
        }
        trace_values_ += n;
        for (int i = 0; i < n; i++) compare(model_.node_names[node], t, i, values[i], it->second[i]);
    }

    void compare(const char *what, int t, int index, long long csim, long long golden) {
        if (csim == golden) return;
        if (mismatches_++ == 0) {
            std::ostringstream msg;
            msg << "node " << what;
            if (t >= 0) msg << ", step " << t;
            msg << ", sample " << sample_ << ", index " << index << ": csim " << csim << ", golden " << golden;
            first_ = msg.str();
        }
    }

    bool same_count() const {
        if (inputs_.size() == logits_.size() && inputs_.size() == labels_.size() && !inputs_.empty()) return true;
        std::fprintf(stderr, "error: %s: inputs.txt, golden_logits.txt and labels.txt hold %zu, %zu and %zu samples\n",
                     dir_.c_str(), inputs_.size(), logits_.size(), labels_.size());
        return false;
    }

    static bool read_rows(const std::string &path, int width, std::vector<std::vector<long long> > &rows) {
        std::ifstream file(path.c_str());
        if (!file) {
            std::fprintf(stderr, "error: %s: cannot open\n", path.c_str());
            return false;
        }
        std::string line;
        for (int number = 1; std::getline(file, line); number++) {
            std::istringstream fields(line);
            std::vector<long long> row;
            row.reserve(width);
            long long value;
            while (fields >> value) row.push_back(value);
            if (static_cast<int>(row.size()) != width) {
                std::fprintf(stderr, "error: %s, line %d: %zu values, expected %d\n", path.c_str(), number,
                             row.size(), width);
                return false;
            }
            rows.push_back(row);
        }
        return true;
    }

    bool read_trace(const std::string &path) {
        std::ifstream file(path.c_str());
        if (!file) {
            std::fprintf(stderr, "error: %s: cannot open\n", path.c_str());
            return false;
        }
        std::string line;
        int last_sample = -1;
        for (int number = 1; std::getline(file, line); number++) {
            std::istringstream fields(line);
            int sample, step, node, count;
            if (!(fields >> sample >> step >> node >> count) || node < 0 || node >= model_.num_nodes ||
                count != model_.node_sizes[node] || step < 0 || step >= model_.time_steps) {
                std::fprintf(stderr, "error: %s, line %d: expected \"sample step node count values...\" for a "
                             "known node and step\n", path.c_str(), number);
                return false;
            }
            std::vector<long long> values(count);
            for (int i = 0; i < count; i++)
                if (!(fields >> values[i])) {
                    std::fprintf(stderr, "error: %s, line %d: fewer than %d values\n", path.c_str(), number, count);
                    return false;
                }
            trace_[key(sample, step, node)] = values;
            if (sample > last_sample) last_sample = sample;
        }
        traced_samples_ = last_sample + 1;
        return true;
    }

    std::string dir_;
    Model model_;
    std::vector<std::vector<long long> > inputs_, logits_, labels_;
    std::map<long long, std::vector<long long> > trace_;
    int traced_samples_ = 0, sample_ = 0, correct_ = 0, correct_golden_ = 0, count_ = 0, traced_count_ = 0;
    bool traced_ = false;
    long long mismatches_ = 0, trace_values_ = 0;
    double seconds_ = 0, traced_seconds_ = 0;
    std::string first_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace hqflow_tb

#endif
