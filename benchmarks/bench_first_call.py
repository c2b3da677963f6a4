"""Where the first call's time goes: ``hnprog info``, and the first train step at 32^3.

Each measurement runs in a fresh subprocess (a warm process would hide the cost):

- ``hnprog --help`` and ``hnprog info``, wall time;
- in one Python process: ``import hnprog``, ``import keras`` (which starts TensorFlow), building
  the paper's UNet at 32^3, compiling it, the first ``train_on_batch`` (tracing the step), the
  second (the step itself), then a second model built and compiled in the same process and its
  first step (what every further fold of a cross-validation pays again), and the first
  ``predict_on_batch``.

- ``hnprog.training.train_model`` for 2 epochs of 2 batches at 32^3, with and without the
  eager build of the loss trackers before ``fit`` (:func:`hnprog.training.fit.build_loss_trackers`),
  each in its own process, run alternately: the wall time and how many times the train step
  was traced (calls of ``CoxLoss.call``, which run once per trace and once per whole-set
  validation pass, less the validation passes);
- three such trainings one after another in one process (the folds of one setting of a
  cross-validation), each with a new model, or with one model kept and reset by a
  :class:`hnprog.training.fit.ModelCache` (what ``cross_validate`` does).

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


TRAIN = r"""
import json, sys, tempfile, time
import numpy as np
import hnprog  # first: turns TensorFlow's oneDNN kernels on
import keras
from hnprog.losses import CoxLoss
from hnprog.training import TrainingConfig, train_model
import hnprog.training.fit as fit
from hnprog.transforms import PreprocessConfig

calls = [0]
call = CoxLoss.call
def counted(self, *args, **kwargs):
    calls[0] += 1
    return call(self, *args, **kwargs)
CoxLoss.call = counted
if sys.argv[1] == "without":
    fit.build_loss_trackers = lambda model, data: None

class Batches(keras.utils.PyDataset):
    def __init__(self, n, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 32, 32, 32, 2)).astype("float32")
        self.y = np.stack([rng.uniform(100, 1000, n), np.arange(n) % 2], 1).astype("float32")
    def __len__(self):
        return len(self.x) // 4
    def __getitem__(self, i):
        s = slice(4 * i, 4 * i + 4)
        return {"image": self.x[s]}, {"risk": self.y[s],
                                      "segmentation": (self.x[s, ..., :1] > 1).astype("float32")}

config = TrainingConfig(epochs=2, batch_size=4, preprocessing=PreprocessConfig(spacing=4.5,
                        crop_size=32))
folds = 3 if sys.argv[1].startswith("folds") else 1
models = fit.ModelCache() if sys.argv[1] == "folds-cache" else None
start = time.perf_counter()
for fold in range(folds):  # the folds of one setting of a cross-validation, one after another
    train_model(Batches(8, 1 + fold), Batches(4, 10 + fold), tempfile.mkdtemp(), config=config,
                verbose=0, export=False, models=models)
seconds = time.perf_counter() - start
eager = 1 if sys.argv[1] != "without" else 0  # build_loss_trackers' own call per new model
new_models = 1 if models is not None else folds
print(json.dumps({"seconds": seconds,
                  "train traces": calls[0] - new_models * eager - 2 * folds}))
"""


def train_runs(repeats: int = 3) -> None:
    """``train_model`` with and without the eager loss build, alternately, fresh processes."""
    rows: dict[str, list[dict]] = {"with": [], "without": []}
    for _ in range(repeats):
        for mode in rows:
            done = subprocess.run([sys.executable, "-c", TRAIN, mode], capture_output=True,
                                  text=True, check=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            rows[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("\n| train_model, 2 epochs x 2 batches at 32^3 | median s | train-step traces |")
    print("| --- | ---: | ---: |")
    for mode, runs in rows.items():
        seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        print(f"| {mode} the eager loss build | {seconds:.2f} | {runs[0]['train traces']} |")


def fold_runs(repeats: int = 3) -> None:
    """Three folds of one setting in one process: a new model per fold, or a ModelCache."""
    rows: dict[str, list[dict]] = {"folds-new": [], "folds-cache": []}
    for _ in range(repeats):
        for mode in rows:
            done = subprocess.run([sys.executable, "-c", TRAIN, mode], capture_output=True,
                                  text=True, check=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            rows[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("\n| 3 folds of train_model, 2 epochs x 2 batches at 32^3 | median s "
          "| train-step traces |")
    print("| --- | ---: | ---: |")
    labels = {"folds-new": "a new model per fold",
              "folds-cache": "one model reset per fold (ModelCache, hnprog cv's default)"}
    for mode, runs in rows.items():
        seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        print(f"| {labels[mode]} | {seconds:.2f} | {runs[0]['train traces']} |")


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
    train_runs()
    fold_runs()


if __name__ == "__main__":
    main()
