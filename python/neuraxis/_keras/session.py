"""Session state of the Keras front: auto-name counters and the global random stream.

Keras names layers `dense`, `dense_1`, ... with a per-session counter and draws
unseeded initial weights, shuffles and dropout seeds from a global generator that
`set_random_seed` resets. Both live here so that `clear_session()` can reset them
together, as `keras.utils.clear_session()` does.
"""
import random
from collections import defaultdict

import numpy as np

_uids = defaultdict(int)
_rng = np.random.default_rng()


def unique_name(prefix):
    """`prefix` the first time, then `prefix_1`, `prefix_2`, ..."""
    n = _uids[prefix]
    _uids[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def clear_session():
    """Reset the auto-name counters (the next Dense is `dense` again).

    Example
    -------
    >>> from neuraxis._keras.session import clear_session
    >>> from neuraxis.layers import Dense
    >>> clear_session(); Dense(3).name
    'dense'
    """
    _uids.clear()


def set_random_seed(seed):
    """Seed every random draw of the Keras front (and Python's and NumPy's legacy ones).

    Initial weights, shuffling and dropout masks are then reproducible, as with
    `keras.utils.set_random_seed`.

    Example
    -------
    >>> from neuraxis._keras.session import set_random_seed
    >>> from neuraxis.initializers import GlorotUniform
    >>> set_random_seed(0); a = GlorotUniform()((2, 3))
    >>> set_random_seed(0); bool((a == GlorotUniform()((2, 3))).all())
    True
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _rng = np.random.default_rng(int(seed))


def rng():
    """The global generator (reset by `set_random_seed`)."""
    return _rng


def draw_seed():
    """A fresh 63-bit seed from the global stream, for the engine's dropout masks."""
    return int(_rng.integers(0, 2**63 - 1))
