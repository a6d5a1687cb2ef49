// Runtime SIMD dispatch for hot loops: the default build stays portable (no
// -march), and GCC compiles a function marked NX_CLONES for AVX-512, AVX2 and
// the baseline, choosing one at load time by cpuid. The clones name ISA
// features, not CPUs: "arch=haswell" / "arch=skylake-avx512" dispatch on the
// CPU model (__builtin_cpu_is), so every other CPU (Zen, Sapphire Rapids...)
// silently ran the baseline clone. The build uses -ffp-contract=off, so every
// clone rounds exactly like the scalar code (and like NumPy).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NX_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NX_CLONES
#endif
#define NX_INLINE inline __attribute__((always_inline))
