// Branch-free float32 exp / sigmoid / tanh that GCC vectorizes (glibc's expf and
// tanhf are scalar calls; tanhf goes through expm1f). Cephes's polynomials: within
// ~2 ulp of the exact values. double keeps the exact libm functions (the float64
// tests compare against NumPy at 1e-12).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "neuraxis/simd.hpp"

namespace neuraxis::fast {

NX_INLINE float exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    // round to nearest by the 1.5 * 2^23 trick (nearbyint is a libm call without SSE4.1,
    // which would keep the loops around this scalar)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // x - n ln2, in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const std::int32_t bits = (std::int32_t(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
NX_INLINE double exp(double x) { return std::exp(x); }

NX_INLINE float sigmoid(float x) { return 1.0f / (1.0f + fast::exp(-x)); }
NX_INLINE double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

NX_INLINE float tanh(float x) {
    const float a = std::fabs(x);
    // |x| < 0.625: an odd polynomial; else 1 - 2 / (e^{2|x|} + 1) with x's sign
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = p * z * x + x;
    const float big = 1.0f - 2.0f / (fast::exp(2.0f * a) + 1.0f);
    return a < 0.625f ? small : std::copysign(big, x);
}
NX_INLINE double tanh(double x) { return std::tanh(x); }

}  // namespace neuraxis::fast
