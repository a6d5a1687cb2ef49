// The one threading rule, and the thread knobs (threads.cpp).
//
// One pool: OpenMP. OpenBLAS stays single-threaded and is called from inside
// OpenMP regions (two pools spinning against each other on few cores were
// measured 2-40x slower). Every parallel loop asks `threads_for` how many
// threads its work gets; all thresholds live here.
#pragma once
#include <omp.h>

#include <string>

#include "neuraxis/view.hpp"

namespace neuraxis {

// Work is counted in multiply-adds. An elementwise operation (a load, a few
// flops, a store: memory bound) counts kElementCost of them.
constexpr double kElementCost = 8.0;
// Below this much work a parallel region costs more than it saves.
constexpr double kMinParallelWork = 2.5e5;

// Threads for `rows` independent rows of `cost_per_row` multiply-adds each:
// 1 inside a parallel region or when the total is below kMinParallelWork,
// else the pool's size, capped so each thread gets >= min_rows rows.
int threads_for(double cost_per_row, idx rows, idx min_rows = 1);

// body(i0, i1) over [0, n) in one contiguous block per thread, as the rule
// says. With one thread it runs inline: no OpenMP region at all (a nested or
// one-thread region still costs about a microsecond, which small batches feel).
template <class F>
void parallel_for(idx n, double cost_per_item, F&& body) {
    const int nt = threads_for(cost_per_item, n);
    if (nt <= 1) {
        if (n > 0) body(idx(0), n);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const idx i0 = n * t / T, i1 = n * (t + 1) / T;
        if (i0 < i1) body(i0, i1);
    }
}

void init_threads();
void ensure_single_threaded_blas();
// Threads per core (omp_get_num_procs) that set_num_threads and OMP_NUM_THREADS are capped at.
constexpr int kThreadsPerCore = 4;
int thread_cap();
// True in a process forked from one that loaded neuraxis: it runs single-threaded.
bool forked_child();
// Sets min(n, thread_cap()) threads and returns that number.
int set_num_threads(int n);
int get_num_threads();
int blas_num_threads();
std::string blas_config();
std::string simd_level();

}  // namespace neuraxis
