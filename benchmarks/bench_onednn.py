"""TensorFlow with its oneDNN kernels off, as TensorFlow leaves them on AVX2-only CPUs, against
hnprog's default (on), on this CPU.

Each setting runs in its own subprocess (TF_ENABLE_ONEDNN_OPTS is read when TensorFlow starts),
alternating, and times the paper's UNet (1.55 M parameters): a forward pass of one 144^3
patient and a train step at 32^3, batch 4. It prints the CPU's model and vector extensions
(the result depends on them: TensorFlow turns oneDNN on by itself only with AVX-512
VNNI/BF16 or AMX), GFLOP/s from the analytically counted FLOPs, and the fraction of the
machine's fp32 peak (cores x 2 FMA units x lanes x 2 FLOP x GHz, with the lanes of the
widest vector unit and the clock from /proc/cpuinfo or --ghz).

Usage (from the repository root)::

    python benchmarks/bench_onednn.py [--repeats 3] [--rounds 2] [--ghz 3.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, "benchmarks")
import numpy as np
import keras
from _timing import best_of
from bench_core import count_flops
import hnprog

repeats = int(sys.argv[1])
model = hnprog.build_multitask_unet(input_shape=(144, 144, 144, 2))
x = np.random.default_rng(0).normal(size=(1, 144, 144, 144, 2)).astype("float32")
forward = best_of(repeats, lambda: model.predict_on_batch({"image": x}), warmup=True)
flops = count_flops(model)
small = hnprog.build_multitask_unet(input_shape=(32, 32, 32, 2))
small.compile(optimizer="adam", loss={"risk": hnprog.CoxLoss(), "segmentation": hnprog.DiceLoss()})
xs = np.random.default_rng(1).normal(size=(4, 32, 32, 32, 2)).astype("float32")
ys = {"risk": np.stack([np.arange(1, 5) * 100.0, [1, 0, 1, 1]], 1).astype("float32"),
      "segmentation": (xs[..., :1] > 1).astype("float32")}
step = best_of(repeats, lambda: small.train_on_batch({"image": xs}, ys), warmup=True)
print(json.dumps({"forward_s": forward, "gflop": flops / 1e9, "train_step_s": step,
                  "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}))
"""


def cpu_peak_gflops(ghz: float | None) -> tuple[float, str]:
    """fp32 peak of this machine, GFLOP/s, and how it was computed."""
    from hnprog.cpu import cpu_vector_extensions

    extensions = cpu_vector_extensions()
    lanes = 16 if "AVX-512F" in extensions else 8 if "AVX2" in extensions else 4
    if ghz is None:
        ghz = 3.0
        try:
            with open("/proc/cpuinfo") as f:
                mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
            ghz = max(mhz) / 1000 if mhz else ghz
        except OSError:
            pass
    cores = os.cpu_count() or 1
    peak = cores * 2 * lanes * 2 * ghz
    return peak, f"{cores} cores x 2 FMA x {lanes} lanes x 2 FLOP x {ghz:.2f} GHz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per setting")
    parser.add_argument("--ghz", type=float, default=None)
    args = parser.parse_args()

    from hnprog.cpu import cpu_name, cpu_vector_extensions

    results: dict[str, list[dict]] = {"0": [], "1": []}
    for _ in range(args.rounds):
        for value in results:
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(args.repeats)], env=env,
                                  capture_output=True, text=True, check=True)
            results[value].append(json.loads(done.stdout.strip().splitlines()[-1]))
    peak, how = cpu_peak_gflops(args.ghz)
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs")
    print(f"vector extensions: {', '.join(cpu_vector_extensions()) or 'unknown'}")
    print(f"fp32 peak: {peak:.0f} GFLOP/s ({how})\n")
    print("| TF_ENABLE_ONEDNN_OPTS | forward 144^3 s | GFLOP/s | % of fp32 peak "
          "| train step 32^3 x4 s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    best = {}
    for value, runs in results.items():
        forward = min(r["forward_s"] for r in runs)
        step = min(r["train_step_s"] for r in runs)
        gflops = runs[0]["gflop"] / forward
        best[value] = (forward, step)
        label = "0 (off: TensorFlow's default on AVX2-only CPUs)" if value == "0" else (
            "1 (on: hnprog's default)")
        print(f"| {label} | {forward:.2f} | {gflops:.0f} | {100 * gflops / peak:.0f}% "
              f"| {step:.3f} |")
    print(f"\noneDNN on is {best['0'][0] / best['1'][0]:.1f}x faster for the forward pass and "
          f"{best['0'][1] / best['1'][1]:.1f}x for the train step on this CPU "
          f"({runs[0]['gflop']:.1f} GFLOP per 144^3 forward pass).")


if __name__ == "__main__":
    main()
