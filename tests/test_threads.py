"""Thread control, the bundled OpenBLAS as threadpoolctl sees it, and determinism."""
import os

import numpy as np
import pytest

import neuraxis
from neuraxis import ops

import threadpoolctl  # a scikit-learn dependency: always installed


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def _package_dirs():
    # An editable install splits the package: Python files in python/neuraxis,
    # the compiled _core and its bundled OpenBLAS in the build tree. Both are
    # on neuraxis.__path__; the directory of _core is the one that matters.
    from neuraxis import _core

    return {os.path.dirname(os.path.realpath(_core.__file__)), *map(os.path.realpath,
                                                                  neuraxis.__path__)}


def _neuraxis_blas(info=None):
    info = threadpoolctl.threadpool_info() if info is None else info
    dirs = _package_dirs()
    found = [e for e in info if e["internal_api"] == "openblas"
             and any(_inside(e["filepath"], d) for d in dirs)]
    assert len(found) == 1, f"no single OpenBLAS inside {dirs}: {info}"
    return found[0]


def test_set_get_num_threads_round_trip(restore_threads):
    for n in (1, 3, 2, 1):
        neuraxis.set_num_threads(n)
        assert neuraxis.get_num_threads() == n
        # One pool: our OpenMP threads split each GEMM and call OpenBLAS
        # single-threaded, so OpenBLAS's own pool stays at 1 thread.
        assert _neuraxis_blas()["num_threads"] == 1


def test_set_num_threads_rejects_bad_values(restore_threads):
    before = neuraxis.get_num_threads()
    with pytest.raises(ValueError):
        neuraxis.set_num_threads(0)
    with pytest.raises(ValueError):
        neuraxis.set_num_threads(-2)
    with pytest.raises(TypeError):
        neuraxis.set_num_threads(1.5)
    with pytest.raises(TypeError):
        neuraxis.set_num_threads("2")
    with pytest.raises(TypeError):
        neuraxis.set_num_threads(True)
    assert neuraxis.get_num_threads() == before  # a rejected call changes nothing


def test_threadpool_info_lists_openmp_and_the_bundled_openblas():
    info = threadpoolctl.threadpool_info()
    openmp = [e for e in info if e["user_api"] == "openmp"]
    assert any(e["prefix"] == "libgomp" for e in openmp), info
    blas = _neuraxis_blas(info)
    assert blas["user_api"] == "blas"
    assert "openblas" in os.path.basename(blas["filepath"]).lower()


def test_threadpool_limits_is_honoured_by_neuraxis(restore_threads):
    neuraxis.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1):
        assert neuraxis.get_num_threads() == 1  # OpenMP (libgomp) limited
        assert _neuraxis_blas()["num_threads"] == 1
    assert neuraxis.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert neuraxis.get_num_threads() == 1
        X = np.random.RandomState(0).rand(300, 200)
        W = np.random.RandomState(1).rand(200, 100)
        np.testing.assert_allclose(ops.dense_forward(X, W), X @ W, rtol=1e-12)
    assert neuraxis.get_num_threads() == 2


def test_set_num_threads_puts_openblas_back_to_one_thread(restore_threads):
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        neuraxis.set_num_threads(2)
        assert _neuraxis_blas()["num_threads"] == 1


def test_show_config(capsys, restore_threads):
    neuraxis.set_num_threads(1)
    neuraxis.show_config()
    out = capsys.readouterr().out
    low = out.lower()
    assert "neuraxis" in low and neuraxis.__version__ in out
    assert "openblas" in low
    assert "threads" in low and "openmp=1" in low and "openblas=1" in low
    assert "simd" in low
    assert len(out.strip().splitlines()) >= 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_forward_is_deterministic_for_a_thread_count(dtype, restore_threads):
    """DESIGN.md: the same inputs and thread count give bit-identical results.

    Across thread counts the results agree only to rounding: OpenBLAS splits
    the rows among threads, and the rows at the end of each thread's block go
    through its edge micro-kernel, which sums in another order (here, 1 vs 2
    threads differ by ~1e-14 in rows 74, 149, 224, 299 of 300).
    """
    rng = np.random.default_rng(42)
    X = rng.normal(size=(300, 200)).astype(dtype)
    W = rng.normal(size=(200, 100)).astype(dtype)
    b = rng.normal(size=100).astype(dtype)
    runs = {1: [], 2: []}
    for n in (1, 2, 1, 2):
        neuraxis.set_num_threads(n)
        runs[n].append(ops.dense_forward(X, W, b))
    for n, (first, second) in runs.items():
        assert np.array_equal(first, second), f"{n} thread(s): two runs differ"
    exact = X.astype(np.float64) @ W.astype(np.float64) + b
    tight = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-4)
    for n in runs:
        np.testing.assert_allclose(runs[n][0], exact, **tight)
    np.testing.assert_allclose(runs[1][0], runs[2][0], **tight)


def test_omp_num_threads_is_honoured():
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c",
                          "import neuraxis; print('threads', neuraxis.get_num_threads())"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "threads 1" in out.stdout


def test_engine_puts_openblas_back_to_one_thread_before_training(restore_threads):
    # threadpoolctl (or another library) may raise OpenBLAS's own count; the engine's
    # GEMMs run inside OpenMP regions, so it must not nest a second pool there.
    from neuraxis.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X, y = rng.rand(64, 5), np.arange(64) % 2
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
        assert _neuraxis_blas()["num_threads"] == 1
