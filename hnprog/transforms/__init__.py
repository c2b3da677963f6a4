"""PET/CT preprocessing that keeps each image's geometry.

- :mod:`hnprog.transforms.config`: :class:`PreprocessConfig`, the typed record of the
  preprocessing a model expects.
- :mod:`hnprog.transforms.array`: pure functions on images and arrays (resample onto a grid,
  CT window, PET z-score, back onto the patient's grid).
- :mod:`hnprog.transforms.case`: :class:`Case` (one patient's images and box) and the dict
  transforms ``Case -> Case`` that wrap those functions, chained with :class:`Compose`.
- :mod:`hnprog.transforms.pipeline`: :func:`preprocess_case`, the one pipeline of training and
  prediction, the composition of those transforms.

Conventions: spacing, origin and sizes of SimpleITK objects are in ``(x, y, z)`` order;
NumPy arrays are ``(z, y, x)`` (``D, H, W``); the network input is ``(D, H, W, 2)`` with
channels ``[CT, PET]``.
"""

from hnprog.geometry import Grid
from hnprog.transforms.array import (
    Augmentation,
    crop_margin,
    invert_to_reference,
    is_label_map,
    normalise_ct_array,
    normalise_pet_array,
    resample_to_grid,
)
from hnprog.transforms.case import (
    CT,
    MASK,
    PET,
    Case,
    Compose,
    CropToBox,
    InvertToReference,
    NormaliseCT,
    NormalisePET,
    PreprocessedCase,
    RandomAugment,
    ResampleToGrid,
    check_overlap,
)
from hnprog.transforms.config import MAX_SHIFT_MM, PreprocessConfig
from hnprog.transforms.pipeline import PARALLEL_MIN_SIZE, preprocess_case, preprocessing_transforms

__all__ = [
    "Augmentation",
    "Case",
    "Compose",
    "CropToBox",
    "Grid",
    "InvertToReference",
    "NormaliseCT",
    "NormalisePET",
    "PreprocessConfig",
    "PreprocessedCase",
    "RandomAugment",
    "ResampleToGrid",
    "check_overlap",
    "crop_margin",
    "invert_to_reference",
    "is_label_map",
    "normalise_ct_array",
    "normalise_pet_array",
    "preprocess_case",
    "preprocessing_transforms",
    "resample_to_grid",
]
