"""Where the first call's time goes: ``hnprog info``, and the first train step at 32^3.

Each measurement runs in a fresh subprocess (a warm process would hide the cost):

- ``hnprog --help`` and ``hnprog info``, wall time;
- in one Python process: ``import hnprog``, ``import keras`` (which starts TensorFlow), building
  the paper's UNet at 32^3, compiling it, the first ``train_on_batch`` (tracing the step), the
  second (the step itself), then a second model built and compiled in the same process and its
  first step (what every further fold of a cross-validation pays again), and the first
  ``predict_on_batch``.

Usage (from the repository root)::

    python benchmarks/bench_first_call.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, time
t = {}
start = time.perf_counter()
import hnprog
t["import hnprog"] = time.perf_counter() - start; mark = time.perf_counter()
import keras
t["import keras (starts TensorFlow)"] = time.perf_counter() - mark
import numpy as np
x = np.random.default_rng(1).normal(size=(4, 32, 32, 32, 2)).astype("float32")
y = {"risk": np.stack([np.arange(1, 5) * 100.0, [1, 0, 1, 1]], 1).astype("float32"),
     "segmentation": (x[..., :1] > 1).astype("float32")}
for fold in (1, 2):
    mark = time.perf_counter()
    model = hnprog.build_multitask_unet(input_shape=(32, 32, 32, 2))
    t[f"fold {fold}: build the UNet"] = time.perf_counter() - mark; mark = time.perf_counter()
    model.compile(optimizer="adam", loss={"risk": hnprog.CoxLoss(), "segmentation": hnprog.DiceLoss()})
    t[f"fold {fold}: compile"] = time.perf_counter() - mark; mark = time.perf_counter()
    model.train_on_batch({"image": x}, y)
    t[f"fold {fold}: first train step (traces)"] = time.perf_counter() - mark; mark = time.perf_counter()
    model.train_on_batch({"image": x}, y)
    t[f"fold {fold}: second train step"] = time.perf_counter() - mark
mark = time.perf_counter()
model.predict_on_batch({"image": x[:1]})
t["first predict_on_batch (traces)"] = time.perf_counter() - mark
print(json.dumps(t))
"""


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    env_python = sys.executable
    hnprog_cli = os.path.join(os.path.dirname(env_python), "hnprog")
    print(f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print("| step | s |")
    print("| --- | ---: |")
    print(f"| `hnprog --help` | {wall([hnprog_cli, '--help']):.2f} |")
    print(f"| `hnprog info` | {wall([hnprog_cli, 'info']):.2f} |")
    done = subprocess.run([env_python, "-c", CHILD], capture_output=True, text=True, check=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    for step, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
        print(f"| {step} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
