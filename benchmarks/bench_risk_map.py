"""What a risk map costs, as a ratio to the forward pass it explains, in one run.

For the shipped three-fold synthetic ensemble (32^3) on one preprocessed synthetic-like
input: the ensemble's forward pass (``predict``), the Grad-CAM map and the occlusion map
(129 passes of each fold's risk branch), each the best of ``--repeats`` after one warm-up
call. With ``--paper``, also the risk branch of the paper's UNet at 144^3 on a batch of 8
occluded images (an occlusion map is 129 such images).

Usage (from the repository root)::

    python benchmarks/bench_risk_map.py [--repeats 3] [--paper]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paper", action="store_true")
    args = parser.parse_args()
    import hnprog  # first: turns TensorFlow's oneDNN kernels on
    import keras
    from hnprog.cpu import cpu_name, cpu_vector_extensions
    from hnprog.models.risk_map import risk_activation_map

    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"vector extensions: {', '.join(cpu_vector_extensions()) or 'unknown'}; "
          f"Keras backend {keras.backend.backend()}\n")
    ensemble = hnprog.from_preset("unet3d_multitask_synthetic_petct")
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 32, 2)).astype("float32")
    forward = best_of(args.repeats, lambda: ensemble.predict(x), warmup=True)
    rows = [("forward pass (3 folds)", forward)]
    for method in ("gradcam", "occlusion"):
        seconds = best_of(args.repeats, lambda: risk_activation_map(ensemble, x, method=method)
                          if method == "occlusion" else [risk_activation_map(
                              m.model, x, method=method) for m in ensemble.members],
                          warmup=True)
        rows.append((f"{method} map (3 folds)", seconds))
    print("| shipped ensemble, 32^3 | s | x forward |")
    print("| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / forward:.1f} |")
    if args.paper:
        model = hnprog.build_multitask_unet((144, 144, 144, 2))
        branch = keras.Model(model.inputs, model.get_layer("risk").output)
        batch = np.random.default_rng(1).normal(size=(8, 144, 144, 144, 2)).astype("float32")
        seconds = best_of(args.repeats, lambda: branch.predict_on_batch(batch), warmup=True)
        print(f"\npaper's UNet at 144^3, risk branch, 8 occluded images: {seconds:.2f} s "
              f"({seconds / 8:.2f} s per image; an occlusion map of 129 images about "
              f"{129 * seconds / 8:.0f} s)")


if __name__ == "__main__":
    main()
