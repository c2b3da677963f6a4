"""Benchmark: preprocessing a realistic-size PET/CT case, and PyDataset throughput.

Machines are noisy, so each number is reported with a ratio against a peer measured in the
same run:

1. One case from NIfTI to the network grid (default 144^3 at 1 mm): ours (read, crop in
   index space, one resample per image onto the box grid) against the naive way (read,
   resample the whole CT and PET onto a 1 mm grid of the CT's field of view, then crop).
   Both are also timed from images already in memory, to separate reading from resampling.
2. ``CohortDataset`` samples/s with augmentation at the CPU setting (64^3 at 2 mm): re-reading
   the NIfTI files for every sample against the warm crop cache. When ``hnprog.models`` is
   available, one training step of the multi-task UNet on the same batch is timed too.

Usage:
    python benchmarks/bench_preprocess.py [--repeats 3] [--samples 8] [--crop-size 144]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.data.cohort import read_cohort
from hnprog.io import read_image, write_image
from hnprog.transforms import Case, NormaliseCT, NormalisePET, PreprocessConfig, preprocess_case


from _timing import best_of  # noqa: E402  (benchmarks/ is on sys.path when run)

def realistic_case(seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """CT 512x512x100 at 0.98x0.98x3 mm (int16 HU) and PET 128x128x90 at 4x4x3.27 mm (SUV)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:100, :512, :512]
    body = ((x - 256) / 180.0) ** 2 + ((y - 256) / 150.0) ** 2 < 1
    ct = np.where(body, 40, -1000) + rng.normal(0, 20, (100, 512, 512))
    ct_image = sitk.GetImageFromArray(ct.astype(np.int16))
    ct_image.SetSpacing((0.977, 0.977, 3.0))
    ct_image.SetOrigin((-250.0, -250.0, -150.0))
    pz, py, px = np.ogrid[:90, :128, :128]
    pet = 1.0 + 8.0 * np.exp(-(((px - 64) ** 2 + (py - 60) ** 2) / 20.0 + (pz - 45) ** 2 / 10.0))
    pet_image = sitk.GetImageFromArray(
        (pet + rng.gamma(2.0, 0.2, (90, 128, 128))).astype(np.float32)
    )
    pet_image.SetSpacing((4.0, 4.0, 3.27))
    pet_image.SetOrigin((-254.0, -250.0, -147.0))
    return ct_image, pet_image


def whole_scan_then_crop(
    ct: sitk.Image, pet: sitk.Image, box: BoundingBox, config: PreprocessConfig
) -> np.ndarray:
    """The naive peer: resample the whole scans to ``spacing`` mm over the CT's FOV, then crop."""
    spacing = (config.spacing,) * 3
    size = [int(round(n * s / config.spacing)) for n, s in zip(ct.GetSize(), ct.GetSpacing())]
    channels = []
    for image, outside in ((ct, config.ct_outside), (pet, config.pet_outside)):
        whole = sitk.Resample(
            image,
            size,
            sitk.Transform(),
            sitk.sitkLinear,
            ct.GetOrigin(),
            spacing,
            ct.GetDirection(),
            outside,
            sitk.sitkFloat32,
        )
        start = whole.TransformPhysicalPointToIndex(
            [c - config.crop_size * config.spacing / 2 for c in box.center]
        )
        stop = [s + config.crop_size for s in start]
        channels.append(whole[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]])
    case = Case({"ct": channels[0], "pet": channels[1]})
    case = NormalisePET()(NormaliseCT(config.ct_clip)(case))
    return np.stack([sitk.GetArrayFromImage(case.images[k]) for k in ("ct", "pet")], axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    parser.add_argument("--samples", type=int, default=8, help="PyDataset samples per measure")
    parser.add_argument("--crop-size", type=int, default=144)
    parser.add_argument("--spacing", type=float, default=1.0)
    args = parser.parse_args()

    config = PreprocessConfig(spacing=args.spacing, crop_size=args.crop_size)
    box = BoundingBox.from_center((0.0, -10.0, 0.0), 144.0)
    ct, pet = realistic_case()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_image(ct, root / "CHGJ000_ct.nii.gz")
        write_image(pet, root / "CHGJ000_pt.nii.gz")

        def read_pair():
            return read_image(root / "CHGJ000_ct.nii.gz"), read_image(root / "CHGJ000_pt.nii.gz")

        ct32, pet32 = read_pair()
        ours_mem = best_of(
            args.repeats, lambda: preprocess_case(Case({"ct": ct32, "pet": pet32}, box=box), config)
        )
        whole_mem = best_of(args.repeats, lambda: whole_scan_then_crop(ct32, pet32, box, config))
        read = best_of(args.repeats, read_pair)
        ours = read + ours_mem
        whole = read + whole_mem
        grid = f"{config.crop_size}^3 at {config.spacing:g} mm"
        print(f"\n## one case: CT 512x512x100, PET 128x128x90 -> {grid} (best of {args.repeats})\n")
        print("| step | ours: crop, then resample (s) | whole scan, then crop (s) | ratio |")
        print("| --- | --- | --- | --- |")
        print(
            f"| resample + normalise (in memory) | {ours_mem:.3f} | {whole_mem:.3f} "
            f"| {whole_mem / ours_mem:.1f}x |"
        )
        print(
            f"| from NIfTI (read {read:.3f} s + above) | {ours:.3f} | {whole:.3f} "
            f"| {whole / ours:.1f}x |"
        )

        # ---- PyDataset throughput at the CPU setting -------------------------------------
        from hnprog.data.dataset import CohortDataset

        n = 4
        mask = sitk.Image(ct32.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(ct32)
        write_image(mask, root / "CHGJ000_gtvt.nii.gz")
        for i in range(1, n):
            for suffix in ("ct", "pt", "gtvt"):
                (root / f"CHGJ{i:03d}_{suffix}.nii.gz").hardlink_to(
                    root / f"CHGJ000_{suffix}.nii.gz"
                )
        write_bboxes({f"CHGJ{i:03d}": box for i in range(n)}, root / "bboxes.csv")
        cohort = read_cohort(root)
        cpu = PreprocessConfig.cpu()
        kwargs = dict(
            config=cpu, batch_size=2, augment=True, outputs=("segmentation",), shuffle=True
        )

        def throughput(dataset) -> float:
            batches = max(1, args.samples // 2)
            start = time.perf_counter()
            for b in range(batches):
                dataset[b % len(dataset)]
            return batches * 2 / (time.perf_counter() - start)

        uncached = CohortDataset(cohort, **kwargs)
        cached = CohortDataset(cohort, **kwargs, cache_dir=root / "cache")
        for b in range(len(cached)):  # warm the cache
            cached[b]
        per_s_nifti = throughput(uncached)
        per_s_cache = throughput(cached)
        print(
            f"\n## CohortDataset, augmented, {cpu.crop_size}^3 at {cpu.spacing:g} mm, "
            "batch 2, 1 worker\n"
        )
        print("| source | samples/s | ratio |")
        print("| --- | --- | --- |")
        print(f"| NIfTI for every sample | {per_s_nifti:.2f} | 1.0x |")
        print(f"| warm crop cache | {per_s_cache:.2f} | {per_s_cache / per_s_nifti:.1f}x |")

        try:
            from hnprog.models import build_multitask_unet
        except ImportError:
            print("\n(hnprog.models not available: train step not measured)")
            return
        import keras

        from hnprog.losses import CoxLoss, DiceLoss

        model = build_multitask_unet(input_shape=(cpu.crop_size,) * 3 + (2,))
        model.compile(optimizer="adam", loss={"segmentation": DiceLoss(), "risk": CoxLoss()})
        x, y = cached[0]
        y = {**y, "risk": np.array([[100.0, 1.0], [200.0, 0.0]], dtype=np.float32)}
        model.train_on_batch(x, y)  # compile
        step = best_of(args.repeats, lambda: model.train_on_batch(x, y))
        print(
            f"\nmulti-task UNet train step ({keras.backend.backend()}), batch 2: {step:.2f} s "
            f"= {2 / step:.2f} samples/s; cached pipeline / train step = "
            f"{per_s_cache / (2 / step):.1f}x"
        )


if __name__ == "__main__":
    main()
