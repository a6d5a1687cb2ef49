// A layer's configuration as it crosses from Python: one flat dict of
// scalars, strings and integer lists, parsed once in bindings.cpp. Each layer
// reads its own keys; a key nobody read is an error (a typo never passes).
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "neuraxis/view.hpp"

namespace neuraxis {

class Config {
  public:
    using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>>;

    Config(std::string where, std::map<std::string, Value> values)
        : where_(std::move(where)), values_(std::move(values)) {}

    const std::string& where() const { return where_; }
    std::string kind() const { return text("kind"); }

    bool has(const std::string& key) const { return values_.count(key) != 0; }
    std::int64_t integer(const std::string& key) const;
    std::int64_t integer(const std::string& key, std::int64_t fallback) const;
    double number(const std::string& key, double fallback) const;
    bool flag(const std::string& key, bool fallback) const;
    std::string text(const std::string& key) const;
    std::string text(const std::string& key, const std::string& fallback) const;
    std::vector<std::int64_t> ints(const std::string& key) const;

    // ValueError naming every key that no reader asked for.
    void check_all_read() const;
    // A copy for a wrapped layer (Bidirectional's inner ones): `changes` set or replace
    // keys, `removed` are dropped; every key of this one counts as read here (the copy
    // checks its own).
    Config derived(const std::string& where, const std::map<std::string, Value>& changes,
                   const std::vector<std::string>& removed) const;
    // ValueError "<where>: <message>".
    [[noreturn]] void fail(const std::string& message) const;

  private:
    const Value& get(const std::string& key) const;
    std::string where_;
    std::map<std::string, Value> values_;
    mutable std::set<std::string> read_;
};

}  // namespace neuraxis
