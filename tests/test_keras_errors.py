"""Keras front: every bad input is a ValueError that says what was expected."""
import numpy as np
import pytest

from neuraxis import losses, metrics, optimizers
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.layers import Dense, Input
from neuraxis.models import Sequential


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


X = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
LABELS = np.arange(20) % 3
ONEHOT = np.eye(3)[LABELS]


def model(loss="categorical_crossentropy", out=3, act="softmax", metrics=("accuracy",)):
    m = Sequential([Input((6,)), Dense(out, activation=act)])
    m.compile(optimizer="adam", loss=loss, metrics=list(metrics))
    return m


def test_fit_before_compile_uses_keras_message():
    m = Sequential([Input((6,)), Dense(3)])
    with pytest.raises(ValueError, match=r"^You must call `compile\(\)` before calling `fit\(\)`"):
        m.fit(X, ONEHOT)
    with pytest.raises(ValueError, match=r"before calling `evaluate\(\)`"):
        m.evaluate(X, ONEHOT)
    m.predict(X, verbose=0)  # predict needs no compile, as in Keras


def test_compile_without_loss():
    m = Sequential([Input((6,)), Dense(3)])
    m.compile(optimizer="adam")
    with pytest.raises(ValueError, match="No loss to compute"):
        m.fit(X, ONEHOT, verbose=0)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_wrong_input_shape(call):
    m = model()
    bad = np.ones((5, 4))
    args = (bad,) if call == "predict" else (bad, ONEHOT[:5])
    with pytest.raises(ValueError, match=r"expected shape=\(None, 6\), found shape=\(5, 4\)"):
        getattr(m, call)(*args, verbose=0)
    with pytest.raises(ValueError, match=r"x.reshape\(-1, 1\)"):
        m.predict(np.ones(6), verbose=0)


def test_integer_labels_with_categorical_crossentropy_names_the_sparse_loss():
    m = model()
    for y in (LABELS, LABELS[:, None]):
        with pytest.raises(ValueError, match="loss='sparse_categorical_crossentropy'"):
            m.fit(X, y, verbose=0)


def test_sparse_loss_refuses_one_hot_fractions_and_out_of_range():
    m = model("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="loss='categorical_crossentropy' for one-hot"):
        m.fit(X, ONEHOT, verbose=0)
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        m.fit(X, LABELS + 1, verbose=0)
    with pytest.raises(ValueError, match="fractional"):
        m.fit(X, LABELS + 0.5, verbose=0)


def test_target_shape_and_range_for_other_losses():
    with pytest.raises(ValueError, match=r"do not match the model's output shape \(None, 3\)"):
        model("mse", act="linear").fit(X, np.ones((20, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"binary_crossentropy expects targets in \[0, 1\]"):
        model("binary_crossentropy", out=1, act="sigmoid").fit(X, LABELS, verbose=0)
    with pytest.raises(ValueError, match=r"one-hot targets of shape \(n, 3\)"):
        model().evaluate(X, LABELS, verbose=0)


def test_nan_and_inf_in_inputs_and_targets():
    m = model()
    bad = X.copy()
    bad[3, 2] = np.nan
    for call in (lambda: m.fit(bad, ONEHOT, verbose=0), lambda: m.evaluate(bad, ONEHOT, verbose=0),
                 lambda: m.predict(bad, verbose=0), lambda: m.predict_on_batch(bad)):
        with pytest.raises(ValueError, match="contains NaN or infinity"):
            call()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        m.predict(bad, verbose=0)
    y = ONEHOT.copy()
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="Targets y contain NaN"):
        m.fit(X, y, verbose=0)


def test_unknown_strings_list_the_valid_ones():
    m = Sequential([Input((6,)), Dense(3)])
    with pytest.raises(ValueError, match=r"\['adadelta', 'adagrad', 'adam', 'adamax', 'adamw', "
                                         r"'nadam', 'rmsprop', 'sgd'\]"):
        m.compile(optimizer="adamw_typo", loss="mse")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        m.compile(optimizer="adam", loss="hinge_typo")
    with pytest.raises(ValueError, match="categorical_accuracy"):
        m.compile(optimizer="adam", loss="mse", metrics=["f1_typo"])
    with pytest.raises(ValueError, match="Expected `metrics` argument to be a list"):
        m.compile(optimizer="adam", loss="mse", metrics="accuracy")
    with pytest.raises(ValueError, match="Valid names"):
        optimizers.get("nadam_typo")
    with pytest.raises(ValueError, match="Valid names"):
        losses.get("nope")
    with pytest.raises(ValueError, match="Valid names"):
        metrics.check("nope")


def test_bad_arrays_and_arguments():
    m = model()
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        m.fit(X, ONEHOT[:10], verbose=0)
    with pytest.raises(ValueError, match="must contain numbers"):
        m.fit(np.array([["a"] * 6] * 20), ONEHOT, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        m.fit(X, ONEHOT, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="verbose must be"):
        m.fit(X, ONEHOT, verbose=3)
    with pytest.raises(ValueError, match="not sufficient to split"):
        m.fit(X, ONEHOT, validation_split=0.99, verbose=0)
    with pytest.raises(ValueError, match="validation_split must be in"):
        m.fit(X, ONEHOT, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="must contain either 2 items"):
        m.fit(X, ONEHOT, validation_data=X, verbose=0)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 6\)"):
        m.fit(X, ONEHOT, validation_data=(np.ones((4, 2)), ONEHOT[:4]), verbose=0)
    with pytest.raises(ValueError, match="sample_weight sizes: 3"):
        m.fit(X, ONEHOT, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="non-negative"):
        m.fit(X, ONEHOT, sample_weight=-np.ones(20), verbose=0)
    with pytest.raises(ValueError, match="class_weight must be a dict"):
        m.fit(X, ONEHOT, class_weight=[1, 2, 3], verbose=0)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        m.fit(X, ONEHOT, epochs=2.5, verbose=0)
    with pytest.raises(ValueError, match="needs targets"):
        m.fit(X, verbose=0)
    with pytest.raises(ValueError, match="0 samples"):
        m.predict(np.ones((0, 6)), verbose=0)
    with pytest.raises(ValueError, match="needs loss='sparse_categorical_crossentropy'"):
        model(metrics=["sparse_categorical_accuracy"]).fit(X, ONEHOT, verbose=0)
