#include "neuraxis/config.hpp"

namespace neuraxis {

void Config::fail(const std::string& message) const { throw ValueError(where_ + ": " + message); }

const Config::Value& Config::get(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) fail("missing key '" + key + "'");
    read_.insert(key);
    return it->second;
}

std::int64_t Config::integer(const std::string& key) const {
    const Value& v = get(key);
    if (auto p = std::get_if<std::int64_t>(&v)) return *p;
    fail("'" + key + "' must be an integer");
}

std::int64_t Config::integer(const std::string& key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
}

double Config::number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const Value& v = get(key);
    if (auto p = std::get_if<double>(&v)) return *p;
    if (auto p = std::get_if<std::int64_t>(&v)) return double(*p);
    fail("'" + key + "' must be a number");
}

bool Config::flag(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const Value& v = get(key);
    if (auto p = std::get_if<bool>(&v)) return *p;
    fail("'" + key + "' must be True or False");
}

std::string Config::text(const std::string& key) const {
    const Value& v = get(key);
    if (auto p = std::get_if<std::string>(&v)) return *p;
    fail("'" + key + "' must be a string");
}

std::string Config::text(const std::string& key, const std::string& fallback) const {
    return has(key) ? text(key) : fallback;
}

std::vector<std::int64_t> Config::ints(const std::string& key) const {
    const Value& v = get(key);
    if (auto p = std::get_if<std::vector<std::int64_t>>(&v)) return *p;
    if (auto p = std::get_if<std::int64_t>(&v)) return {*p};
    fail("'" + key + "' must be a list of integers");
}

void Config::check_all_read() const {
    std::string unknown;
    for (const auto& kv : values_)
        if (!read_.count(kv.first)) unknown += (unknown.empty() ? "'" : ", '") + kv.first + "'";
    if (!unknown.empty()) fail("unknown key(s) " + unknown);
}

Config Config::derived(const std::string& where, const std::map<std::string, Value>& changes,
                       const std::vector<std::string>& removed) const {
    std::map<std::string, Value> values = values_;
    for (const auto& kv : values_) read_.insert(kv.first);
    for (const auto& k : removed) values.erase(k);
    for (const auto& kv : changes) values[kv.first] = kv.second;
    return Config(where, std::move(values));
}

}  // namespace neuraxis
