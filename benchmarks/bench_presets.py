"""Cost of loading a preset safely, as ratios against Keras' own `.keras` loading.

For the paper-size multi-task UNet (1.55 M parameters; the weights do not depend on the input
size, so a 32^3 input keeps the build fast), compare in the same run:

- `keras.saving.load_model` of a `.keras` archive (no checksums), the peer;
- `hnprog.from_preset` on a local preset folder: sha256 of every file, the class allow-list,
  a safe-mode build and `load_weights`;
- `verify_preset` alone (the sha256 checks), to show what the checks cost.

Usage:
    python benchmarks/bench_presets.py [--repeats 3] [--size 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _best(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="input edge in voxels")
    args = parser.parse_args()

    import hnprog  # noqa: F401  (first: turns TensorFlow's oneDNN kernels on)
    import keras

    from hnprog.models import build_multitask_unet
    from hnprog.presets import from_preset, save_to_preset, verify_preset

    model = build_multitask_unet(input_shape=(args.size, args.size, args.size, 2))
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.keras"
        model.save(archive)
        folder = save_to_preset(model, Path(tmp) / "preset",
                                preprocessing={"spacing": [1.0, 1.0, 1.0], "crop_size": args.size})
        weights_mb = (folder / "model.weights.h5").stat().st_size / 1e6
        rows = [
            ("keras.saving.load_model (.keras, peer)", lambda: keras.saving.load_model(archive)),
            ("hnprog.from_preset (verified, safe mode)", lambda: from_preset(folder)),
            ("verify_preset only (sha256 of all files)", lambda: verify_preset(folder)),
        ]
        results = [(label, *_best(func, args.repeats)) for label, func in rows]
    peer = results[0][1]
    print(f"model: {model.count_params():,} parameters, weights file {weights_mb:.1f} MB, "
          f"input {args.size}^3, backend {keras.backend.backend()}, best of {args.repeats}")
    print(f"| {'operation':<42} | best (s) | median (s) | ratio to peer |")
    print(f"| {'-' * 42} | -------- | ---------- | ------------- |")
    for label, best, median in results:
        print(f"| {label:<42} | {best:8.3f} | {median:10.3f} | {best / peer:13.2f} |")


if __name__ == "__main__":
    main()
