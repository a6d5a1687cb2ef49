"""Thread control and build information."""
import platform

from . import _core


def set_num_threads(n):
    """Set the threads used by neuraxis's own loops (OpenMP) and its GEMM (OpenBLAS).

    Example
    -------
    >>> import neuraxis
    >>> before = neuraxis.get_num_threads()
    >>> neuraxis.set_num_threads(1)
    >>> neuraxis.get_num_threads()
    1
    >>> neuraxis.set_num_threads(before)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """Number of threads neuraxis uses (OpenMP; OpenBLAS is kept in step)."""
    return _core.get_num_threads()


def show_config(file=None):
    """Print the version, BLAS, threads and SIMD level."""
    from . import __version__

    lines = [
        f"neuraxis {__version__}",
        f"python: {platform.python_version()} ({platform.machine()})",
        f"blas: OpenBLAS {_core.blas_config()}",
        f"threads: openmp={_core.get_num_threads()} openblas={_core.blas_num_threads()}",
        f"simd: {_core.simd_level()}",
    ]
    print("\n".join(lines), file=file)
