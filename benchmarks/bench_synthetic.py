"""Benchmark: time to generate a synthetic cohort, and the automatic box on it.

Machines are noisy, so every number is also given as a ratio against a peer measured in the
same run: generation against the cost of only writing the same NIfTI files (read back and
rewritten), and 2 worker processes against 1.

Usage:
    python benchmarks/bench_synthetic.py [--patients 20] [--scale 1.0] [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.data.bbox import auto_bbox
from hnprog.geometry import voxel_centres
from hnprog.data.synthetic import generate_cohort, oracle_cindex, read_truth
from hnprog.io import write_image


def _seconds(func) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process only) of ``func()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kwargs = dict(n_patients=args.patients, seed=args.seed, image_scale=args.scale)
        serial = _seconds(lambda: generate_cohort(tmp / "serial", n_jobs=1, **kwargs))
        parallel, _ = _seconds(
            lambda: generate_cohort(tmp / "parallel", n_jobs=args.jobs, **kwargs)
        )
        root = tmp / "serial"
        images = sorted(root.glob("*.nii.gz"))
        loaded = [(sitk.ReadImage(str(p)), tmp / "rewrite" / p.name) for p in images]
        write_only = _seconds(lambda: [write_image(image, path) for image, path in loaded])
        megabytes = sum(p.stat().st_size for p in images) / 1e6

        truth = read_truth(root)
        contained, box_seconds = [], 0.0
        for pid in truth.index:
            pet = sitk.ReadImage(str(root / f"{pid}_pt.nii.gz"))
            mask = sitk.ReadImage(str(root / f"{pid}_gtvt.nii.gz"))
            start = time.perf_counter()
            box = auto_bbox(pet, patient_id=pid)
            box_seconds += time.perf_counter() - start
            points = voxel_centres(mask, np.nonzero(sitk.GetArrayViewFromImage(mask)))
            contained.append(bool(((points >= box.lower) & (points <= box.upper)).all()))
        ct = sitk.ReadImage(str(images[0]))

    n = args.patients
    print(f"synthetic cohort: {n} patients, seed {args.seed}, image_scale {args.scale} "
          f"(CT {ct.GetSize()}), {megabytes:.0f} MB written")
    print("| measure | wall | CPU | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| generate, 1 process | {serial[0]:.1f} s ({serial[0] / n:.2f} s/patient) | "
          f"{serial[1]:.1f} s | 1.00 |")
    print(f"| generate, {args.jobs} processes | {parallel:.1f} s | | "
          f"{serial[0] / parallel:.2f}x faster than 1 process (wall) |")
    print(f"| only write the same NIfTI files | {write_only[0]:.1f} s | {write_only[1]:.1f} s | "
          f"generation = {serial[1] / write_only[1]:.2f}x writing (CPU) |")
    print(f"| auto_bbox per patient | {1000 * box_seconds / n:.0f} ms | | |")
    print(f"| auto box contains the whole GTVt | {sum(contained)}/{n} "
          f"({100 * np.mean(contained):.0f}%) | | |")
    print(f"| censored share / mean follow-up | {1 - truth['event'].mean():.2f} / "
          f"{truth['time'].mean():.0f} days | | |")
    print(f"| oracle C-index | {oracle_cindex(truth):.3f} | | |")


if __name__ == "__main__":
    main()
