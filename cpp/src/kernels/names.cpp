// The name table: every activation, loss, metric, optimizer and layer kind the
// engine accepts. Parsing and error messages here; Python's registries read
// the same table through `_core.names()`.
#include <utility>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

namespace {

// Canonical names first; aliases after (accepted, not listed in errors).
const std::pair<const char*, Act> kActs[] = {
    {"identity", Act::identity}, {"logistic", Act::logistic}, {"tanh", Act::tanh},
    {"relu", Act::relu},         {"leaky_relu", Act::leaky_relu}, {"elu", Act::elu},
    {"softplus", Act::softplus}, {"softmax", Act::softmax},   {"step", Act::step},
    {"exp", Act::exp},           {"linear", Act::identity},   {"sigmoid", Act::logistic},
    {"binary_step", Act::step}};
constexpr int kCanonicalActs = 10;

const std::pair<const char*, Loss> kLosses[] = {
    {"softmax_log_loss", Loss::softmax_log_loss},
    {"logistic_log_loss", Loss::logistic_log_loss},
    {"squared_error", Loss::squared_error},
    {"poisson", Loss::poisson},
    {"categorical_crossentropy", Loss::categorical_crossentropy},
    {"binary_crossentropy", Loss::binary_crossentropy},
    {"mse", Loss::mse},
    {"mae", Loss::mae}};

const std::pair<const char*, Metric> kMetrics[] = {
    {"categorical_accuracy", Metric::categorical_accuracy},
    {"binary_accuracy", Metric::binary_accuracy},
    {"mse", Metric::mse},
    {"mae", Metric::mae},
    {"top_k_categorical_accuracy", Metric::top_k_categorical_accuracy},
    {"confusion", Metric::confusion},
    {"fbeta", Metric::fbeta}};

const char* const kOptimizers[] = {"sgd",     "adam",     "rmsprop", "adagrad",
                                   "adadelta", "adamax", "nadam"};
const char* const kLayers[] = {"dense",   "activation", "dropout",   "flatten",
                               "reshape", "conv2d",     "max_pool2d", "avg_pool2d",
                               // 1-D, global and spatial layers (layers/conv.cpp, spatial.cpp)
                               "conv1d", "max_pool1d", "avg_pool1d", "global_max_pool",
                               "global_avg_pool", "zero_pad1d", "zero_pad2d", "crop1d", "crop2d",
                               "upsample1d", "upsample2d",
                               "batch_norm", "simple_rnn", "lstm", "gru",
                               "bidirectional", "masking", "embedding",
                               "conv2d_transpose"};

template <class Table>
std::vector<std::string> firsts(const Table& t, int count = -1) {
    std::vector<std::string> out;
    for (const auto& e : t) {
        if (count >= 0 && int(out.size()) == count) break;
        out.emplace_back(e.first);
    }
    return out;
}

template <class Table>
auto lookup(const Table& t, const std::string& name, const char* what,
            const std::vector<std::string>& valid) {
    for (const auto& [n, v] : t)
        if (name == n) return v;
    throw ValueError(std::string("unknown ") + what + " '" + name + "'; expected one of " +
                     join_names(valid));
}

}  // namespace

std::string join_names(const std::vector<std::string>& names) {
    std::string s;
    for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
    return s;
}

std::vector<std::pair<std::string, std::vector<std::string>>> name_table() {
    return {{"activations", firsts(kActs, kCanonicalActs)},
            {"activation_aliases", firsts(kActs)},
            {"losses", firsts(kLosses)},
            {"metrics", firsts(kMetrics)},
            {"optimizers", std::vector<std::string>(std::begin(kOptimizers), std::end(kOptimizers))},
            {"layers", std::vector<std::string>(std::begin(kLayers), std::end(kLayers))}};
}

std::vector<std::string> names_of(const std::string& family) {
    for (auto& [f, names] : name_table())
        if (f == family) return names;
    return {};
}

Activation parse_activation(const std::string& name, double alpha) {
    return Activation{lookup(kActs, name, "activation", firsts(kActs, kCanonicalActs)), alpha};
}

Loss parse_loss(const std::string& name) { return lookup(kLosses, name, "loss", firsts(kLosses)); }

Metric parse_metric(const std::string& name) {
    return lookup(kMetrics, name, "metric", firsts(kMetrics));
}

MetricSpec parse_metric_spec(const std::string& spec) {
    const std::string prefix = "weighted:";
    const bool weighted = spec.compare(0, prefix.size(), prefix) == 0;
    const std::string name = weighted ? spec.substr(prefix.size()) : spec;
    const auto q = name.find('?');
    MetricSpec m{parse_metric(name.substr(0, q)), weighted};
    if (q != std::string::npos) parse_metric_params(m, name.substr(q + 1));
    return m;
}

void check_optimizer(const std::string& name) {
    for (const char* n : kOptimizers)
        if (name == n) return;
    throw ValueError("unknown optimizer '" + name + "'; expected one of " +
                     join_names(std::vector<std::string>(std::begin(kOptimizers),
                                                         std::end(kOptimizers))));
}

}  // namespace neuraxis
