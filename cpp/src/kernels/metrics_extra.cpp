// Keras's top-k accuracy and its streaming metrics' counts (AUC, Precision, Recall,
// F-beta). The counts are additive, so each thread adds its rows' counts to its own
// slots and the loop sums the threads in order, as for the per-row metrics.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

namespace {
std::vector<double> parse_numbers(const std::string& s, const std::string& key) {
    std::vector<double> out;
    std::size_t at = 0;
    while (at < s.size()) {
        const auto comma = s.find(',', at);
        const std::string item = s.substr(at, comma == std::string::npos ? s.npos : comma - at);
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (item.empty() || *end) throw ValueError("metric parameter '" + key + "': not a number '" +
                                                   item + "'");
        out.push_back(v);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return out;
}
}  // namespace

// "key=value&key=value": k, thresholds (comma-separated), top_k, class_id, clip.
void parse_metric_params(MetricSpec& m, const std::string& params) {
    std::size_t at = 0;
    while (at < params.size()) {
        const auto amp = params.find('&', at);
        const std::string kv = params.substr(at, amp == std::string::npos ? params.npos
                                                                          : amp - at);
        const auto eq = kv.find('=');
        if (eq == std::string::npos) throw ValueError("metric parameter without '=': '" + kv + "'");
        const std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
        const auto nums = parse_numbers(val, key);
        if (key == "thresholds") {
            m.thresholds = nums;
            if (!std::is_sorted(m.thresholds.begin(), m.thresholds.end()))
                throw ValueError("metric thresholds must be ascending");
        } else if (nums.size() != 1) {
            throw ValueError("metric parameter '" + key + "' takes one number");
        } else if (key == "k") {
            m.k = idx(nums[0]);
        } else if (key == "top_k") {
            m.top_k = idx(nums[0]);
        } else if (key == "class_id") {
            m.class_id = idx(nums[0]);
        } else if (key == "clip") {
            m.clip = nums[0] != 0.0;
        } else {
            throw ValueError("unknown metric parameter '" + key + "'");
        }
        if (amp == std::string::npos) break;
        at = amp + 1;
    }
    if (m.metric == Metric::confusion && m.thresholds.empty())
        throw ValueError("a confusion metric needs thresholds");
    if (m.metric == Metric::fbeta && m.thresholds.size() > 1)
        throw ValueError("an fbeta metric takes one threshold or none");
}

std::size_t layout_metrics(std::vector<MetricSpec>& metrics, idx classes) {
    std::size_t at = 0;
    for (auto& m : metrics) {
        if (m.metric == Metric::confusion) {
            if (m.class_id >= classes)
                throw ValueError("metric class_id " + std::to_string(m.class_id) +
                                 " is out of range for " + std::to_string(classes) + " outputs");
            m.slots = 2 * (m.thresholds.size() + 1);
        } else {
            m.slots = m.metric == Metric::fbeta ? std::size_t(4 * classes) : 1;
        }
        m.offset = at;
        at += m.slots;
    }
    return at;
}

std::size_t metric_slots(const std::vector<MetricSpec>& metrics) {
    return metrics.empty() ? 0 : metrics.back().offset + metrics.back().slots;
}

template <class T>
double metric_sum(const MetricSpec& m, const T* P, const T* Y, const T* sw, idx n, idx k) {
    if (m.metric != Metric::top_k_categorical_accuracy) return metric_sum(m.metric, P, Y, sw, n, k);
    double total = 0.0;
    for (idx i = 0; i < n; ++i) {
        const T* p = P + i * k;
        const T* y = Y + i * k;
        const T target = p[std::max_element(y, y + k) - y];  // the label: argmax of one-hot
        idx above = 0;  // in the top k <=> fewer than k outputs beat it (ties are in)
        for (idx j = 0; j < k; ++j) above += p[j] > target;
        total += (sw ? double(sw[i]) : 1.0) * (above < m.k ? 1.0 : 0.0);
    }
    return total;
}

template <class T>
void stream_add(const MetricSpec& m, const T* P, const T* Y, const T* sw, idx n, idx k,
                idx positions, double* out) {
    n *= positions;
    if (m.metric == Metric::fbeta) {
        // Keras's F-beta: a prediction is positive above the threshold, or (none) where it is
        // the row's maximum and not ~0.
        const bool argmax = m.thresholds.empty();
        const double thr = argmax ? 0.0 : m.thresholds[0];
        for (idx i = 0; i < n; ++i) {
            const T* p = P + i * k;
            const T* y = Y + i * k;
            const double w = sw ? double(sw[i / positions]) : 1.0;
            const T top = *std::max_element(p, p + k);
            for (idx j = 0; j < k; ++j) {
                const bool pos = argmax ? (p[j] >= top && std::abs(double(p[j])) > 1e-9)
                                        : double(p[j]) > thr;
                const double yj = y[j], pj = pos ? 1.0 : 0.0;
                out[j] += w * pj * yj;
                out[k + j] += w * pj * (1.0 - yj);
                out[2 * k + j] += w * (1.0 - pj) * yj;
                out[3 * k + j] += w * yj;
            }
        }
        return;
    }
    // confusion: an element is predicted positive at threshold t iff p > t; with c
    // thresholds below p, it is positive at thresholds 0..c-1 (Python takes the sums).
    const std::size_t nt = m.thresholds.size();
    const double* thr = m.thresholds.data();
    double* pos = out;
    double* neg = out + nt + 1;
    const idx j0 = m.class_id >= 0 ? m.class_id : 0, j1 = m.class_id >= 0 ? m.class_id + 1 : k;
    const idx keep = m.top_k > 0 ? std::min(m.top_k, k) : k;
    std::vector<idx> order(m.top_k > 0 ? k : 0);
    std::vector<char> kept(k, 1);
    for (idx i = 0; i < n; ++i) {
        const T* p = P + i * k;
        const T* y = Y + i * k;
        const double w = sw ? double(sw[i / positions]) : 1.0;
        if (m.top_k > 0) {  // Keras's _filter_top_k: the others become -1e10 (never positive)
            for (idx j = 0; j < k; ++j) order[j] = j;
            std::stable_sort(order.begin(), order.end(), [p](idx a, idx b) { return p[a] > p[b]; });
            std::fill(kept.begin(), kept.end(), 0);
            for (idx r = 0; r < keep; ++r) kept[order[r]] = 1;
        }
        for (idx j = j0; j < j1; ++j) {
            double v = kept[j] ? double(p[j]) : -1e10;
            if (m.clip) v = std::clamp(v, 0.0, 1.0);
            const std::size_t c = std::lower_bound(thr, thr + nt, v) - thr;  // thresholds < v
            if (y[j] != T(0))
                pos[c] += w;
            else
                neg[c] += w;
        }
    }
}

template double metric_sum<float>(const MetricSpec&, const float*, const float*, const float*,
                                  idx, idx);
template double metric_sum<double>(const MetricSpec&, const double*, const double*,
                                   const double*, idx, idx);
template void stream_add<float>(const MetricSpec&, const float*, const float*, const float*, idx,
                                idx, idx, double*);
template void stream_add<double>(const MetricSpec&, const double*, const double*, const double*,
                                 idx, idx, idx, double*);

}  // namespace neuraxis
