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


@pytest.fixture
def restore_threads():
    """Put neuraxis's thread count back however the test ends."""
    import neuraxis

    original = neuraxis.get_num_threads()
    yield original
    neuraxis.set_num_threads(original)
    assert neuraxis.get_num_threads() == original
