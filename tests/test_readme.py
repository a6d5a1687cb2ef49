"""The README's Python examples run as written (progress output silenced)."""
import pathlib
import re
import warnings

import pytest

import neuraxis  # noqa: F401  (imported outside output capture: an editable
import neuraxis.layers  # noqa: F401   install may rebuild on first import)
import neuraxis.models  # noqa: F401
import neuraxis.neural_network  # noqa: F401
import neuraxis.utils  # noqa: F401

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[i].replace("epochs=30)", "epochs=30, verbose=0)")
    # Deprecated spellings users copy from older tutorials (input_dim=, input_shape=,
    # LeakyReLU(alpha=)) must keep working and warn as Keras does, wherever an example has them.
    expected = [w for w in ("input_dim=", "input_shape=", "alpha=") if w in code]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, f"README.md example {i}", "exec"), {})
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(expected), messages
    if "input_dim=" in expected:
        assert any("input_shape`/`input_dim`" in m for m in messages)
    if "alpha=" in expected:
        assert any("`alpha` is deprecated" in m for m in messages)
    out = capsys.readouterr().out
    scores = [float(x) for x in re.findall(r"(?<![\d.])0\.\d+", out)]
    assert scores and max(scores) > 0.7  # the printed score / accuracy (chance: 0.5, 0.1)
