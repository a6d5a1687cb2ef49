// Non-owning views and small helpers shared by every kernel.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace neuraxis {

using idx = std::int64_t;

// A row-major matrix view: `rows` rows of `cols` contiguous elements.
template <class T>
struct Mat {
    T* data = nullptr;
    idx rows = 0, cols = 0;
    T* row(idx i) const { return data + i * cols; }
    idx size() const { return rows * cols; }
};

// Work below this many elements stays on one thread: spawning costs more.
constexpr idx kParallelThreshold = 1 << 15;

struct ValueError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

}  // namespace neuraxis
