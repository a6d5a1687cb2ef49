// One thread knob: OpenMP runs our loops and splits GEMMs; OpenBLAS itself
// stays single-threaded inside those regions (see threads.hpp).
#include "neuraxis/threads.hpp"

#include <omp.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cblas.h>

namespace neuraxis {

namespace {
// GNU OpenMP is not fork-safe: a child forked after the parent ran a parallel region
// inherits a thread pool whose threads do not exist, and its next region with more
// than one thread waits for them forever. So a forked child runs single-threaded.
std::atomic<bool> g_forked{false};
void on_fork_child() {
    g_forked.store(true);
    omp_set_num_threads(1);
}
const int g_atfork = pthread_atfork(nullptr, nullptr, on_fork_child);
}  // namespace

bool forked_child() { return g_forked.load(std::memory_order_relaxed); }

int threads_for(double cost_per_row, idx rows, idx min_rows) {
    if (omp_in_parallel() || rows <= 1 || forked_child()) return 1;
    if (cost_per_row * double(rows) < kMinParallelWork) return 1;
    const idx by_rows = std::max<idx>(1, rows / std::max<idx>(min_rows, 1));
    return int(std::min<idx>(omp_get_max_threads(), by_rows));
}

// More threads than this only add memory (per-thread gradients, OpenBLAS buffers: 100,000
// threads exhausted OpenBLAS's memory regions) and barrier waits.
int thread_cap() { return kThreadsPerCore * std::max(1, omp_get_num_procs()); }

// OMP_NUM_THREADS beyond the cap is capped here too.
void init_threads() {
    scipy_openblas_set_num_threads(1);
    if (omp_get_max_threads() > thread_cap()) omp_set_num_threads(thread_cap());
}

// Something (threadpoolctl, another library) may have raised OpenBLAS's own
// thread count; our GEMMs run inside OpenMP regions, where that would nest.
void ensure_single_threaded_blas() {
    if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
}

int set_num_threads(int n) {
    if (n < 1) throw ValueError("the number of threads must be >= 1, got " + std::to_string(n));
    n = forked_child() ? 1 : std::min(n, thread_cap());
    omp_set_num_threads(n);
    scipy_openblas_set_num_threads(1);
    return n;
}

int get_num_threads() { return omp_get_max_threads(); }

int blas_num_threads() { return scipy_openblas_get_num_threads(); }

std::string blas_config() {
    std::string s = scipy_openblas_get_config();
    s += " (core: ";
    s += scipy_openblas_get_corename();
    s += ")";
    return s;
}

std::string simd_level() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "AVX-512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "AVX2+FMA";
    if (__builtin_cpu_supports("avx")) return "AVX";
    return "SSE2";
#elif defined(__aarch64__)
    return "NEON";
#else
    return "generic";
#endif
}

}  // namespace neuraxis
