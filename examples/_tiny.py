"""Shared by the examples' ``--tiny`` mode (what CI runs): a small synthetic cohort and an
untrained tiny preset, so each example finishes in seconds and never rots."""

from __future__ import annotations

from pathlib import Path


def tiny_cohort(folder: Path, n_patients: int = 6, seed: int = 0) -> Path:
    """A synthetic HECKTOR-2021 cohort with small scans (half the voxels per axis)."""
    from hnprog import generate_cohort

    if not (folder / "truth.csv").is_file():
        generate_cohort(folder, n_patients=n_patients, seed=seed, image_scale=0.5,
                        censoring=0.5)
    return folder


def tiny_preset(folder: Path) -> Path:
    """An untrained multi-task UNet on a 16^3 grid at 9 mm, saved as a preset."""
    from hnprog import build_multitask_unet, save_to_preset
    from hnprog.transforms import PreprocessConfig

    if not (folder / "hnprog.json").is_file():
        model = build_multitask_unet(input_shape=(16, 16, 16, 2), filters=(2, 2, 4, 4, 8),
                                     dense_units=4)
        save_to_preset(model, folder, preprocessing=PreprocessConfig(spacing=9.0, crop_size=16),
                       dataset={"name": "untrained (example)", "synthetic": True})
    return folder
