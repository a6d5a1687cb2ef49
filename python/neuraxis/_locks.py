"""One lock per model object: fit, predict and friends on the same object run one at a time.

Fitting one object from two threads is not supported by scikit-learn or Keras either, but
here it must not crash (the engine reallocates the training buffers another thread may be
reading): the second call waits for the first. A predict that overlaps a fit waits too, so
it answers with the model before or after that fit, never a half-updated one. The lock is
reentrant (callbacks inside `fit` may call `predict` / `evaluate`) and lives outside the
object (pickling, `clone` and `get_params` do not see it).

Example
-------
>>> class Model:
...     @serialized
...     def fit(self):
...         return "fitted"
>>> Model().fit()
'fitted'
"""
import functools
import threading
import weakref

_locks = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def object_lock(obj):
    """The reentrant lock of `obj`, created on first use."""
    with _guard:
        lock = _locks.get(obj)
        if lock is None:
            lock = _locks[obj] = threading.RLock()
        return lock


def serialized(method):
    """Run `method` holding its object's lock."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with object_lock(self):
            return method(self, *args, **kwargs)
    return locked
