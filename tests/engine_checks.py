"""Checks of an engine network shared by the test files: its gradient of its own objective
against central finite differences (float64)."""
import numpy as np
from numpy.testing import assert_allclose

import reference as ref

FD_TOL = dict(rtol=1e-6, atol=1e-8)


def engine_grads(net, params, X, Y):
    """(objective, gradients) from `net.loss_grad`; every gradient entry must be written."""
    grads = [np.full_like(p, np.nan) for p in params]
    return net.loss_grad(params, grads, X, Y, None, 0.0), grads


def fd_check(net, params, X, Y, **tol):
    """The engine's gradient against central differences of its objective, parameter by
    parameter; returns the engine's gradients."""
    _, grads = engine_grads(net, params, X, Y)
    scratch = [np.zeros_like(p) for p in params]
    for i, p in enumerate(params):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return net.loss_grad(ps, scratch, X, Y, None, 0.0)
        assert_allclose(grads[i], ref.numerical_grad(f, p), **(tol or FD_TOL),
                        err_msg=f"param {i}")
    return grads
