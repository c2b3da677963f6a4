"""Test support shipped with hnprog: for hnprog's own tests and for code built on it.

| module | holds |
| --- | --- |
| :mod:`hnprog.testing.keras` | Keras round trips (``run_serialization_test``, ``run_model_saving_test``) and ``value_and_grad`` |
| :mod:`hnprog.testing.presets` | a tiny model with the preset contract and ``make_tiny_preset`` |
| :mod:`hnprog.testing.loopback_hub` | ``LoopbackHub``, a Hugging Face Hub on 127.0.0.1 |
| :mod:`hnprog.testing.cohorts` | tiny PET/CT cases of known geometry and the tiny synthetic cohort |

``from hnprog.testing import run_serialization_test, run_model_saving_test`` keeps working;
the Keras helpers are imported on first use, so the loopback Hub can be used without Keras.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run_model_saving_test", "run_serialization_test", "value_and_grad"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("hnprog.testing.keras"), name)
    raise AttributeError(f"module 'hnprog.testing' has no attribute {name!r}")
