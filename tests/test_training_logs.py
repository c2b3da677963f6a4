"""Training logs redirected to a file are plain text (issue #13 item 19)."""

from __future__ import annotations

import io
import subprocess
import sys

from hnprog.training.fit import fit_verbosity


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_verbosity_is_one_line_per_epoch_unless_a_terminal():
    assert fit_verbosity("auto", io.StringIO()) == 2
    assert fit_verbosity("auto", _Terminal()) == "auto"
    assert fit_verbosity(0, _Terminal()) == 0 and fit_verbosity(1, io.StringIO()) == 1


def test_a_redirected_fit_log_has_no_ansi_codes(tmp_path):
    code = (
        "import numpy as np, keras\n"
        "from hnprog.training.fit import fit_verbosity\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "m.compile('sgd', 'mse')\n"
        "m.fit(np.zeros((8, 3)), np.zeros((8, 1)), epochs=2, verbose=fit_verbosity('auto'))\n"
    )
    log = tmp_path / "log.txt"
    with open(log, "wb") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, stderr=subprocess.DEVNULL,
                       check=True, timeout=120)
    text = log.read_bytes()
    assert b"Epoch 2/2" in text
    assert b"\x1b[" not in text and b"\x08" not in text
