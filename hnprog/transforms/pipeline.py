"""The one preprocessing pipeline, used at training and at prediction.

:func:`preprocess_case` is the composition of the dict transforms of
:mod:`hnprog.transforms.case`: (:class:`~hnprog.transforms.case.RandomAugment` when training)
then, for each image, :class:`~hnprog.transforms.case.ResampleToGrid`,
:class:`~hnprog.transforms.case.NormaliseCT` and :class:`~hnprog.transforms.case.NormalisePET`,
and the network arrays. There is no crop step: resampling reads only the voxels around the
(augmented) grid, so a crop would only copy them (the training disk cache crops, to store
less). From a 96^3 grid up the images go through the chain in parallel threads (SimpleITK and
NumPy release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hnprog.transforms.case import (
    CT,
    MASK,
    PET,
    Case,
    Compose,
    NormaliseCT,
    NormalisePET,
    PreprocessedCase,
    RandomAugment,
    ResampleToGrid,
    check_overlap,
)
from hnprog.transforms.config import PreprocessConfig

__all__ = ["PARALLEL_MIN_SIZE", "preprocess_case", "preprocessing_transforms"]

PARALLEL_MIN_SIZE = 96  # grid edge (voxels) from which preprocess_case resamples in threads


def preprocessing_transforms(config: PreprocessConfig) -> Compose:
    """The per-image chain of :func:`preprocess_case`: resample onto the grid, normalise.

    Args:
        config: PreprocessConfig. Grid, CT window and outside values.

    Returns:
        Compose of ResampleToGrid, NormaliseCT and NormalisePET.
    """
    return Compose([
        ResampleToGrid(config.spacing, config.crop_size, config.ct_outside, config.pet_outside),
        NormaliseCT(config.ct_clip),
        NormalisePET(),
    ])


def preprocess_case(
    case: Case,
    config: PreprocessConfig | None = None,
    *,
    rng: np.random.Generator | int | None = None,
) -> PreprocessedCase:
    """Preprocess one case for the network: (augment), resample once, normalise.

    The same function serves training (``rng`` given: random shift, flip and rotation) and
    prediction (``rng=None``: no augmentation).

    Args:
        case: Case. ``"ct"``, ``"pet"`` and optional ``"mask"`` images with the box.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()`` (1 mm, 144^3).
        rng: numpy Generator, int or None. Augmentation randomness; None disables
            augmentation. Defaults to None.

    Returns:
        PreprocessedCase with the image ``(D, H, W, 2)`` float32, mask ``(D, H, W)`` uint8 or
        None, and the grid.

    Raises:
        PatientError: if the PET and CT do not overlap or the box lies outside them.

    Example:
        >>> out = preprocess_case(case, PreprocessConfig.cpu())  # doctest: +SKIP
        >>> out.image.shape  # doctest: +SKIP
        (64, 64, 64, 2)
    """
    config = config or PreprocessConfig()
    if case.box is None:
        raise case.error("preprocess_case needs a bounding box in the case")
    check_overlap(case)
    if rng is not None:  # one draw for the whole case: CT, PET and mask move together
        case = RandomAugment(config.max_shift, config.mirror, config.max_rotation, seed=rng)(case)
    chain = preprocessing_transforms(config)
    keys = [key for key in (CT, PET, MASK) if key in case.images]

    def one_image(key: str) -> Case:
        return chain(case.replace(images={key: case.images[key]}))

    if config.crop_size >= PARALLEL_MIN_SIZE:
        with ThreadPoolExecutor(max_workers=len(keys)) as pool:
            singles = list(pool.map(one_image, keys))
    else:  # small grids: threads would cost more than they save
        singles = [one_image(key) for key in keys]
    done = singles[0].replace(images={k: c.images[k] for k, c in zip(keys, singles)})
    image, mask = done.arrays()
    return PreprocessedCase(image, mask, done.grid, case.augmentation)
