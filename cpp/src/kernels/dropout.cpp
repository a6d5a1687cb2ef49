// Inverted dropout with counter-based masks: entry (row, col) of a layer's
// mask is a hash of (seed, layer, row, col), so forward and backward agree
// without storing the mask, whatever the thread split or batch chunking.
#include <cmath>

#include "neuraxis/kernels.hpp"

namespace neuraxis {

namespace {

// Counter-based uniform in [0, 1) (splitmix64 finaliser over the mixed counters).
inline double uniform01(std::uint64_t seed, std::uint64_t layer, std::uint64_t row,
                        std::uint64_t col) {
    std::uint64_t z = seed ^ (layer * 0x9E3779B97F4A7C15ULL) ^ (row * 0xD1B54A32D192ED03ULL) ^
                      (col * 0xAEF17502108EF2D9ULL);
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

double dropout_scale(std::uint64_t seed, std::uint64_t layer, std::uint64_t row, std::uint64_t col,
                     double rate) {
    return uniform01(seed, layer, row, col) < rate ? 0.0 : 1.0 / (1.0 - rate);
}

// y = x * mask: keep with probability 1 - rate, scaled by 1 / (1 - rate)
template <class T>
void dropout_apply(std::uint64_t seed, std::uint64_t layer, idx row0, idx m, idx k, double rate,
                   const T* x, T* y) {
    const T keep = T(1.0 / (1.0 - rate));
    for (idx i = 0; i < m; ++i) {
        const std::uint64_t row = std::uint64_t(row0 + i);
        for (idx j = 0; j < k; ++j) {
            const idx e = i * k + j;
            y[e] = x[e] * (uniform01(seed, layer, row, std::uint64_t(j)) < rate ? T(0) : keep);
        }
    }
}

template <class T>
bool all_finite(const T* x, idx n) {
    T probe = T(0);  // any inf/NaN makes the sum NaN (inf * 0 = NaN)
#pragma omp simd reduction(+ : probe)
    for (idx i = 0; i < n; ++i) probe += x[i] * T(0);
    return probe == T(0);
}

template void dropout_apply<float>(std::uint64_t, std::uint64_t, idx, idx, idx, double,
                                   const float*, float*);
template void dropout_apply<double>(std::uint64_t, std::uint64_t, idx, idx, idx, double,
                                    const double*, double*);
template bool all_finite<float>(const float*, idx);
template bool all_finite<double>(const double*, idx);

}  // namespace neuraxis
