// Small definitions shared by every kernel.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace neuraxis {

using idx = std::int64_t;

struct ValueError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

}  // namespace neuraxis
