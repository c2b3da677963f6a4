"""Training throughput, peak memory and data-pipeline overhead of the multi-task UNet.

Each measurement runs in a fresh subprocess (so peak RSS is that measurement's own, and the
backend is chosen with ``KERAS_BACKEND``). Printed as a table of ratios against a peer in
the same run:

- ``step``: samples/s of ``train_on_batch`` on one in-memory batch (the train step alone);
- ``epoch``: samples/s of ``model.fit`` on a :class:`hnprog.data.dataset.CohortDataset` of a
  generated cohort (cached crops, augmentation on): the data pipeline in the loop;
- overhead = ``1 - epoch / step`` samples/s;
- peak RSS (``resource.getrusage``) of the step measurement.

Usage::

    python benchmarks/bench_train.py                       # 64^3, batch 2, TF and JAX
    python benchmarks/bench_train.py --sizes 64 144 --batch 2 --steps 3

Batch 10 at 144^3 takes minutes per step on 2 CPU cores; measure batch 2 and read the
memory column as a lower bound (activations grow linearly with the batch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys, time
import numpy as np, keras
from hnprog.training import TrainingConfig
from hnprog.training.fit import build_model, compile_model
from hnprog.transforms import PreprocessConfig
size, batch, steps = (int(v) for v in sys.argv[1:4])
mode, data, workers = sys.argv[4], sys.argv[5], int(sys.argv[7])
precision = sys.argv[8] or None
filters = [int(f) for f in sys.argv[6].split(",")] if sys.argv[6] else None
config = TrainingConfig(preprocessing=PreprocessConfig(spacing=144.0 / size, crop_size=size),
                        batch_size=batch, epochs=1, mixed_precision=precision,
                        **({"filters": filters} if filters else {}))
model = build_model(config)
if mode == "step":
    compile_model(model, config, steps_per_epoch=steps)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, size, 2)).astype("float32")
    y = {"segmentation": (rng.random((batch, size, size, size, 1)) > 0.9).astype("float32"),
         "risk": np.stack([rng.uniform(100, 2000, batch), np.arange(batch) % 2], 1)
                 .astype("float32")}
    model.train_on_batch({"image": x}, y)  # compile
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch({"image": x}, y)
    elapsed = time.perf_counter() - start
else:
    from hnprog.data.cohort import read_cohort
    from hnprog.data.dataset import CohortDataset
    cohort = read_cohort(data)
    ds = CohortDataset(cohort, config=config.preprocessing,
                       batch_size=batch, augment=True, shuffle=True, n_jobs=workers,
                       cache_dir=os.path.join(data, "cache"))
    compile_model(model, config, steps_per_epoch=len(ds))

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.elapsed = time.perf_counter() - self.start

    timer = EpochTimer()
    # Epoch 1 fills the caches and compiles the step; epoch 2 is timed.
    model.fit(ds, epochs=2, verbose=0, callbacks=[timer])
    elapsed = timer.elapsed
    steps = len(ds)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
print(json.dumps({"samples_per_s": steps * batch / elapsed, "peak_gib": peak}))
"""


def measure(backend: str, size: int, batch: int, steps: int, mode: str, data: str,
            filters: str = "", workers: int = 1, precision: str = "") -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(batch), str(steps), mode, data, filters,
         str(workers), precision],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode < 0:  # killed by a signal: SIGKILL is the kernel's out-of-memory killer
        return {"error": f"killed by signal {-out.returncode}"
                         + (" (out of memory)" if out.returncode == -9 else "")}
    if out.returncode:
        errors = [line for line in out.stderr.splitlines() if "Error" in line]
        return {"error": (errors or out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--patients", type=int, default=None,
                        help="cohort size of the epoch run (default: batch * steps)")
    parser.add_argument("--filters", default="",
                        help="encoder filters, e.g. 4,8,16,32,64 (default: the paper's)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading threads")
    parser.add_argument("--mixed-precision", default="",
                        choices=["", "mixed_bfloat16", "mixed_float16"],
                        help="Keras dtype policy (default: float32)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the fit-on-dataset run")
    args = parser.parse_args()

    from hnprog.data.synthetic import generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        data = str(generate_cohort(os.path.join(tmp, "data"), n_patients=args.patients or args.batch * args.steps,
                                   censoring=0.5))
        policy = args.mixed_precision or "float32"
        print(f"dtype policy: {policy}")
        print("| backend | size | batch | step samples/s | epoch samples/s | pipeline overhead "
              "| peak RSS (GiB) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for size in args.sizes:
            for backend in args.backends:
                step = measure(backend, size, args.batch, args.steps, "step", data, args.filters,
                               precision=args.mixed_precision)
                epoch = {} if args.no_pipeline else measure(
                    backend, size, args.batch, args.steps, "epoch", data, args.filters, args.workers,
                    args.mixed_precision)
                if "error" in step:
                    print(f"| {backend} | {size} | {args.batch} | error: {step['error']} | | | |")
                    continue
                eps = epoch.get("samples_per_s")
                overhead = f"{1 - eps / step['samples_per_s']:.1%}" if eps else (
                    epoch.get("error", "n/a"))
                print(f"| {backend} | {size}^3 | {args.batch} | {step['samples_per_s']:.3f} | "
                      f"{eps if eps is None else f'{eps:.3f}'} | {overhead} | "
                      f"{step['peak_gib']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
