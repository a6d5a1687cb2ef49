"""Thread control and build information."""
import platform
import warnings

import numpy as np

from . import _core


def set_num_threads(n):
    """Set the threads used by neuraxis's own loops (OpenMP) and its GEMM (OpenBLAS).

    At most 4 per available core (more only add memory and barrier waits): a larger `n`,
    or OMP_NUM_THREADS, is capped there (`set_num_threads` warns). A process forked from one
    that used neuraxis runs single-threaded: GNU OpenMP's thread pool does not survive a
    fork (its next parallel region would wait forever for threads that do not exist).

    Example
    -------
    >>> import neuraxis
    >>> before = neuraxis.get_num_threads()
    >>> neuraxis.set_num_threads(1)
    >>> neuraxis.get_num_threads()
    1
    >>> neuraxis.set_num_threads(before)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > 2**31 - 1:
        raise ValueError(f"n must be a thread count below 2**31, got {n}")
    used = _core.set_num_threads(n)
    if used != n and _core.forked_child():
        warnings.warn(f"set_num_threads({n}): this process was forked from one that used "
                      "neuraxis, and GNU OpenMP's threads do not survive a fork; it runs "
                      "single-threaded (use the 'spawn' or 'forkserver' start method for "
                      "threads in workers)", RuntimeWarning, stacklevel=2)
    elif used != n:
        warnings.warn(f"set_num_threads({n}): capped at {used} threads ({_core.thread_cap()} "
                      "= 4 per available core; more only add memory and waiting)",
                      RuntimeWarning, stacklevel=2)


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
