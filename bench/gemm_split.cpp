// Measures what cpp/include/neuraxis/blas.hpp relies on: OpenBLAS multiplies a
// product of up to ~1e6 multiply-adds straight from its operands and packs
// both above that, and a product just above that size runs faster as two
// unpacked halves of its rows. Prints one-call vs two-halves times (single
// thread, microseconds) for products of 1e6..2e6 multiply-adds:
//
//   OB=$(python -c "import scipy_openblas32 as s; print(s.get_include_dir(), s.get_lib_dir())")
//   g++ -O2 bench/gemm_split.cpp -I${OB% *} -L${OB#* } -lscipy_openblas -Wl,-rpath,${OB#* } \
//       -o /tmp/gemm_split && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/gemm_split
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
template <class T> void g(bool ta, int M, int N, int K, const T* A, int lda, const T* B, T* C);
template <> void g<float>(bool ta, int M, int N, int K, const float* A, int lda, const float* B, float* C) {
  scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A, lda, B, N, 0.f, C, N); }
template <> void g<double>(bool ta, int M, int N, int K, const double* A, int lda, const double* B, double* C) {
  scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, 1., A, lda, B, N, 0., C, N); }
template <class T> double bench(bool ta, int M, int N, int K, bool split) {
  std::vector<T> A(size_t(M) * K + 64, T(0.5)), B(size_t(K) * N, T(0.25)), C(size_t(M) * N);
  int lda = ta ? M : K;
  auto run = [&] {
    if (!split) { g<T>(ta, M, N, K, A.data(), lda, B.data(), C.data()); return; }
    int h = M / 2;
    g<T>(ta, h, N, K, A.data(), lda, B.data(), C.data());
    g<T>(ta, M - h, N, K, ta ? A.data() + h : A.data() + size_t(h) * lda, lda, B.data(), C.data() + size_t(h) * N);
  };
  for (int i = 0; i < 20; ++i) run();
  double best = 1e9;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    int n = 200; for (int i = 0; i < n; ++i) run();
    best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n);
  }
  return best;
}
int main() {
  scipy_openblas_set_num_threads(1);
  int shapes[][2] = {{100, 784}, {256, 512}, {512, 256}, {64, 2048}, {1000, 100}, {10, 10000}, {128, 128}, {100, 20}, {50, 100}, {300, 300}};
  for (auto& s : shapes) {
    int N = s[0], K = s[1];
    for (double target : {1.2e6, 1.9e6}) {
      int M = int(target / (double(N) * K) + 0.5);
      if (M < 8) continue;
      double macs = double(M) * N * K;
      if (macs <= 1e6 || macs > 2e6) continue;
      for (int ta = 0; ta < 2; ++ta) {
        double a = bench<float>(ta, M, N, K, false), b = bench<float>(ta, M, N, K, true);
        double c = bench<double>(ta, M, N, K, false), d = bench<double>(ta, M, N, K, true);
        std::printf("M=%4d N=%5d K=%5d %s  f32 one %7.1f split %7.1f (%.2fx)  f64 one %7.1f split %7.1f (%.2fx)\n", M, N, K, ta ? "TN" : "NN", a, b, a / b, c, d, c / d);
      }
    }
  }
}
