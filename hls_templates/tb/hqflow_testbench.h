// hqflow testbench: reads the golden vectors that the NumPy simulator wrote (tb/data), compares
// the C simulation with them, and prints the verdict. Test code: never synthesized.
//
// tb/data/inputs.txt         one line per sample: the frames [T][C][H][W], flattened
// tb/data/labels.txt         one label per line
// tb/data/golden_logits.txt  one line per sample: the integer logits
// tb/data/golden_trace.txt   one line per (sample, step, node) of the first samples:
//                            "sample step node count values..." (every node but the head)
//
// Every file is checked against the sizes the project was generated with (samples, traced
// samples, values per line, node sizes, T) before anything runs: a missing, empty, truncated or
// malformed file, or one from another export, stops the testbench with one line
// "error: <file>[, line N]: ... expected ..." on stderr and exit status 2.
#ifndef HQFLOW_TESTBENCH_H_
#define HQFLOW_TESTBENCH_H_

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
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
    int samples, trace_samples;     // the vectors' sample count, and how many of them are traced
};

class Testbench {
  public:
    Testbench(const std::string &data_dir, const Model &model) : dir_(data_dir), model_(model) {}

    /** Read and check every file; false (and one line "error: <file>...") when one is missing or malformed. */
    bool load() {
        return read_rows("inputs.txt", model_.input_size, "the input frames of one sample, flattened", inputs_) &&
               read_rows("golden_logits.txt", model_.num_classes, "the integer logits of one sample", logits_) &&
               read_rows("labels.txt", 1, "the label of one sample", labels_) && check_labels() &&
               read_trace("golden_trace.txt");
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
        if (n)
            std::printf("accuracy: %.2f%% (%d / %d), golden %.2f%%\n", 100.0 * correct_ / n, correct_, n,
                        100.0 * correct_golden_ / n);
        const int timed = count_ ? count_ : traced_count_;
        const double seconds = count_ ? seconds_ : traced_seconds_;
        if (timed)
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

    std::string path(const char *file) const { return dir_ + "/" + file; }

    /** One line of whitespace-separated integers; false (message in bad) at the first token that is not one. */
    static bool parse_line(const std::string &line, std::vector<long long> &values, std::string &bad) {
        std::istringstream fields(line);
        std::string token;
        while (fields >> token) {
            errno = 0;
            char *end = 0;
            const long long value = std::strtoll(token.c_str(), &end, 10);
            if (end == token.c_str() || *end != '\0') {
                bad = "\"" + printable(token.substr(0, 24)) + (token.size() > 24 ? "..." : "") + "\" is not an integer";
                return false;
            }
            if (errno == ERANGE) {
                bad = token + " does not fit a 64-bit integer";
                return false;
            }
            values.push_back(value);
        }
        return true;
    }

    /** text with every byte outside printable ASCII written as \xNN */
    static std::string printable(const std::string &text) {
        std::string out;
        for (std::string::size_type i = 0; i < text.size(); i++) {
            const unsigned char c = static_cast<unsigned char>(text[i]);
            if (c >= 0x20 && c < 0x7f) {
                out += static_cast<char>(c);
            } else {
                char hex[8];
                std::snprintf(hex, sizeof hex, "\\x%02x", c);
                out += hex;
            }
        }
        return out;
    }

    static bool fail(const std::string &message) {
        std::fprintf(stderr, "error: %s\n", message.c_str());
        return false;
    }

    static std::string at(const std::string &file, int line) {
        std::ostringstream where;
        where << file << ", line " << line;
        return where.str();
    }

    /** model_.samples lines of `width` integers each. */
    bool read_rows(const char *name, int width, const char *what, std::vector<std::vector<long long> > &rows) const {
        const std::string file = path(name);
        std::ifstream in(file.c_str());
        if (!in) return fail(file + ": cannot be opened (expected " + what + " on each line)");
        std::string line, bad;
        int number = 0;
        while (std::getline(in, line)) {
            number++;
            std::vector<long long> row;
            row.reserve(width);
            if (!parse_line(line, row, bad)) return fail(at(file, number) + ": " + bad);
            if (static_cast<int>(row.size()) != width) {
                std::ostringstream msg;
                msg << at(file, number) << ": " << row.size() << " values, expected " << width << " (" << what << ")";
                return fail(msg.str());
            }
            if (number > model_.samples) break;
            rows.push_back(row);
        }
        if (number != model_.samples) {
            std::ostringstream msg;
            msg << file << ": " << (number > model_.samples ? "more than " : "") << number << " line"
                << (number == 1 ? "" : "s") << ", expected " << model_.samples << " (one per test sample of this "
                << "project: " << what << ")";
            return fail(msg.str());
        }
        return true;
    }

    bool check_labels() const {
        for (int s = 0; s < static_cast<int>(labels_.size()); s++)
            if (labels_[s][0] < 0 || labels_[s][0] >= model_.num_classes) {
                std::ostringstream msg;
                msg << at(path("labels.txt"), s + 1) << ": label " << labels_[s][0] << ", expected 0.."
                    << model_.num_classes - 1;
                return fail(msg.str());
            }
        return true;
    }

    /** One line per (sample, step, node) of samples 0 .. trace_samples - 1, each exactly once. */
    bool read_trace(const char *name) {
        const std::string file = path(name);
        std::ifstream in(file.c_str());
        if (!in) return fail(file + ": cannot be opened (expected \"sample step node count values...\" lines)");
        std::string line, bad;
        int number = 0;
        const long long expected = static_cast<long long>(model_.trace_samples) * model_.time_steps * model_.num_nodes;
        while (std::getline(in, line)) {
            number++;
            std::vector<long long> row;
            if (!parse_line(line, row, bad)) return fail(at(file, number) + ": " + bad);
            std::ostringstream msg;
            msg << at(file, number) << ": ";
            if (row.size() < 4) {
                msg << row.size() << " values, expected \"sample step node count values...\"";
                return fail(msg.str());
            }
            const long long sample = row[0], step = row[1], node = row[2], count = row[3];
            if (sample < 0 || sample >= model_.trace_samples) {
                msg << "sample " << sample << ", expected ";
                if (model_.trace_samples) msg << "0.." << model_.trace_samples - 1 << " (the traced samples)";
                else msg << "no line (this project traces no sample)";
                return fail(msg.str());
            }
            if (step < 0 || step >= model_.time_steps) {
                msg << "step " << step << ", expected 0.." << model_.time_steps - 1;
                return fail(msg.str());
            }
            if (node < 0 || node >= model_.num_nodes || model_.node_sizes[node] <= 0) {
                msg << "node " << node << ", expected the index of a traced node (0.." << model_.num_nodes - 1 << ")";
                return fail(msg.str());
            }
            const long long size = model_.node_sizes[node];
            if (count != size || static_cast<long long>(row.size()) - 4 != size) {
                msg << "node " << model_.node_names[node] << ": count " << count << " and " << row.size() - 4
                    << " values, expected " << size;
                return fail(msg.str());
            }
            const long long k = key(static_cast<int>(sample), static_cast<int>(step), static_cast<int>(node));
            if (trace_.count(k)) {
                msg << "sample " << sample << ", step " << step << ", node " << model_.node_names[node]
                    << " given twice";
                return fail(msg.str());
            }
            trace_[k] = std::vector<long long>(row.begin() + 4, row.end());
        }
        if (static_cast<long long>(trace_.size()) != expected) {
            std::ostringstream msg;
            msg << file << ": " << trace_.size() << " lines, expected " << expected << " (" << model_.trace_samples
                << " traced samples x " << model_.time_steps << " steps x " << model_.num_nodes << " nodes)";
            return fail(msg.str());
        }
        traced_samples_ = model_.trace_samples;
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
