"""Whether real Keras 3 (torch backend) can run here, for the parity tests.

Checked in a subprocess so Keras's backend and threads never enter the test process.
CI installs the `compare` extra and sets NEURAXIS_REQUIRE_KERAS, so a missing Keras
fails there instead of skipping.
"""
import os
import subprocess
import sys

import pytest

HAVE_KERAS = subprocess.run(
    [sys.executable, "-c", "import torch, keras"], capture_output=True,
    env=dict(os.environ, KERAS_BACKEND="torch")).returncode == 0
if os.environ.get("NEURAXIS_REQUIRE_KERAS") and not HAVE_KERAS:
    raise RuntimeError("NEURAXIS_REQUIRE_KERAS is set but keras + torch do not import")
needs_keras = pytest.mark.skipif(not HAVE_KERAS, reason="keras + torch not installed "
                                 "(pip install '.[compare]')")
