"""A bound on the weight memory that building a model may allocate, for loading files.

A model file's config decides every weight shape (`Dense(units=10**9)`), so a hostile
or broken file could make `from_config` allocate gigabytes before a single array is
read. While a loader holds `weight_budget(n)`, `Layer.add_weight` calls `charge` with
each shape *before* creating it; the weights of a genuine file are all stored in it,
so the file's (bounded) size is a safe budget.

Example
-------
>>> from neuraxis._keras.alloc import weight_budget
>>> from neuraxis.layers import Dense
>>> with weight_budget(1000, "m.keras"):
...     Dense(10**6).build((None, 8))
Traceback (most recent call last):
...
ValueError: m.keras: its config asks for a weight of shape (8, 1000000) (32000000 bytes), more than the 1000 bytes of weights the file can hold
"""
import contextlib
import contextvars
import math

_budget = contextvars.ContextVar("neuraxis_weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(nbytes, what):
    """Inside the block, layers may create at most `nbytes` of float32 weights in total."""
    token = _budget.set([int(nbytes), what])
    try:
        yield
    finally:
        _budget.reset(token)


def charge(shape, itemsize=4):
    """Count one weight of `shape` against the current budget (no-op outside a loader)."""
    state = _budget.get()
    if state is None:
        return
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError):
        raise ValueError(f"{state[1]}: invalid weight shape {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{state[1]}: invalid weight shape {tuple(dims)}")
    need = math.prod(dims) * itemsize
    if need > state[0]:
        raise ValueError(f"{state[1]}: its config asks for a weight of shape {tuple(dims)} "
                         f"({need} bytes), more than the {state[0]} bytes of weights the file "
                         "can hold")
    state[0] -= need
