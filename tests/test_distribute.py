"""Data-parallel training under JAX: two simulated CPU devices give the single-device step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

SCRIPT = r"""
import json
import numpy as np, keras
from hnprog.training import TrainingConfig
from hnprog.training.fit import build_model, compile_model, distribution_scope
from hnprog.transforms import PreprocessConfig

rng = np.random.default_rng(0)
n, s = 4, 16
x = {"image": rng.normal(size=(n, s, s, s, 2)).astype("float32")}
y = {"segmentation": (rng.random((n, s, s, s, 1)) > 0.8).astype("float32"),
     "risk": np.array([[100, 1], [200, 0], [300, 1], [400, 1]], "float32")}

def run(distribute):
    config = TrainingConfig(preprocessing=PreprocessConfig(spacing=9.0, crop_size=s), batch_size=n,
                            filters=(2, 2, 4, 4, 4), distribute=distribute, seed=1)
    with distribution_scope(config) as n_devices:
        model = build_model(config)
        compile_model(model, config, steps_per_epoch=1)
        before = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
        model.train_on_batch(x, y)
        after = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    weights = [np.asarray(w).ravel().tolist() for w in model.trainable_weights]
    return {"devices": n_devices, "before": before, "after": after, "weights": weights}

print(json.dumps({"single": run(False), "parallel": run(True)}))
"""


def test_jax_data_parallel_keeps_the_whole_batch_risk_set():
    """Under keras.distribution.DataParallel the loss is one global computation: the Cox loss
    and batch statistics see the whole batch, so two devices train exactly like one."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    single, parallel = result["single"], result["parallel"]
    assert single["devices"] == 1 and parallel["devices"] == 2
    for key in ("loss", "risk_loss", "segmentation_loss"):
        assert parallel["before"][key] == pytest.approx(single["before"][key], abs=1e-6)
        assert parallel["after"][key] == pytest.approx(single["after"][key], abs=1e-5)
    # Adam's first step moves each weight by about the learning rate (1e-3) times the sign of
    # its gradient; gradients at float32 noise level (summed in another order on two devices)
    # can move a weight by a fraction of that, a per-device risk set would flip many.
    for a, b in zip(single["weights"], parallel["weights"]):
        assert a == pytest.approx(b, abs=2e-4)
