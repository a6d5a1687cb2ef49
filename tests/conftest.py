import warnings

import pytest


@pytest.fixture(autouse=True)
def _quiet_convergence():
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(params=[0, 42])
def global_random_seed(request):
    """scikit-learn's fixture of the same name, used by its upstream MLP tests."""
    return request.param
