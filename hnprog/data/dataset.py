"""Feeding Keras: a disk cache of cropped cases, a censoring-balanced sampler and a PyDataset.

The cache (:class:`CaseCache`) stores, per patient, the CT, PET and mask **cropped in index
space** around the box with enough margin for every shift and rotation the configuration
allows, at their **original resolution and geometry** (no interpolation). Each training
sample is then made by the same :func:`hnprog.transforms.preprocess_case` used at prediction:
one ``sitk.Resample`` per image from the cached crop onto the (augmented) network grid. So
an epoch never re-reads or re-decompresses the NIfTI files, and no voxel is ever interpolated
twice, augmentation included.

On top of the disk cache, :class:`CohortDataset` keeps a bounded in-memory LRU
(:class:`MemoryCache`): the cropped cases of an augmented dataset, or the finished network
arrays of a deterministic one (validation, test), so that an epoch does not re-read them
from disk either.

:class:`CohortDataset` is a ``keras.utils.PyDataset`` that yields
``({"image": x}, {"segmentation": m, "risk": y})`` batches; it works with ``n_jobs`` workers on every
Keras backend. :func:`censoring_balanced_indices` builds each training epoch so that a chosen
share of the samples are events.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import SimpleITK as sitk

from hnprog.geometry import BoundingBox
from hnprog.data.cohort import Cohort, Patient
from hnprog.data.loading import load_case
from hnprog.data.runner import run_cohort
from hnprog.errors import InputError, warn_deprecated
from hnprog.io import atomic_write, input_fingerprint
from hnprog.transforms import (
    Case,
    CropToBox,
    PreprocessConfig,
    PreprocessedCase,
    crop_margin,
    preprocess_case,
)

__all__ = ["CaseCache", "CohortDataset", "MemoryCache", "censoring_balanced_indices"]

CACHE_VERSION = 1
OUTPUTS = ("segmentation", "risk")


def censoring_balanced_indices(
    event: Sequence[bool] | np.ndarray,
    event_fraction: float = 0.5,
    *,
    seed: int = 0,
    epoch: int = 0,
) -> np.ndarray:
    """One epoch of sample indices in which ``event_fraction`` of the samples are events.

    The larger group (usually the censored patients) appears exactly once. The smaller group
    is oversampled to reach the requested share: every member appears ``m // g`` times and a
    random ``m % g`` of them once more (``g`` its size, ``m`` the number of samples it
    needs), so repeats are as even as possible. The epoch is then shuffled. With 28 events
    and 125 censored patients and ``event_fraction=0.5``, an epoch has 250 samples and each
    event appears 4 or 5 times.

    Args:
        event: array-like of bool, shape ``(n_samples,)``. True for an observed event.
        event_fraction: float. Share of events in the epoch, in (0, 1). Defaults to 0.5.
        seed: int. Base seed. Defaults to 0.
        epoch: int. Epoch number; each epoch gets its own reproducible draw. Defaults to 0.

    Returns:
        numpy.ndarray of int, indices into ``event``.

    Raises:
        InputError: if ``event_fraction`` is not in (0, 1), or all samples are events or all
            are censored.

    Example:
        >>> idx = censoring_balanced_indices([True, False, False, False], seed=0)
        >>> len(idx), int(np.sum(np.asarray([True, False, False, False])[idx]))
        (6, 3)
    """
    event = np.asarray(event, dtype=bool)
    if not 0 < event_fraction < 1:
        raise InputError(
            f"event_fraction must be in (0, 1). Received: event_fraction={event_fraction}"
        )
    events, censored = np.flatnonzero(event), np.flatnonzero(~event)
    if events.size == 0 or censored.size == 0:
        raise InputError(
            "cannot balance censoring: the samples hold "
            f"{events.size} events and {censored.size} censored patients; both must be > 0"
        )
    rng = np.random.default_rng([seed, epoch])
    if events.size / event.size < event_fraction:
        minority, majority = events, censored
        needed = round(censored.size * event_fraction / (1 - event_fraction))
    else:
        minority, majority = censored, events
        needed = round(events.size * (1 - event_fraction) / event_fraction)
    needed = max(needed, minority.size)
    repeats = np.repeat(minority, needed // minority.size)
    extra = rng.choice(minority, size=needed % minority.size, replace=False)
    order = np.concatenate([majority, repeats, extra])
    rng.shuffle(order)
    return order


class CaseCache:
    """Disk cache of cropped (not resampled) cases, one ``.npz`` per patient.

    A cache file is named ``<ID>-<key>.npz``; the key hashes the CT, PET and mask paths with
    their sizes and modification times, the box (or "automatic"), the mask labels and the
    preprocessing parameters. Changing any of these makes a new key, and the patient's stale
    files are deleted when the new one is written. Files are written atomically.

    Args:
        directory: str or PathLike. The cache folder, created if needed.
        config: PreprocessConfig, optional. Sets the crop margin. Defaults to
            ``PreprocessConfig()``.

    Example:
        >>> cache = CaseCache("cache/", PreprocessConfig.cpu())  # doctest: +SKIP
        >>> case = cache.load(cohort["CHGJ007"], cohort.bboxes.get("CHGJ007"))  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike, config: PreprocessConfig | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = config or PreprocessConfig()

    def key(self, patient: Patient, box: BoundingBox | None) -> str:
        """The cache key (16 hex digits) of a patient's inputs and the parameters."""
        settings = {
            "version": CACHE_VERSION,
            "mask_labels": list(patient.mask_labels),
            "box": box.to_dict() if box is not None else "automatic",
            "config": self.config.to_dict(),
        }
        return input_fingerprint((patient.ct, patient.pet, patient.mask), settings)

    def path(self, patient: Patient, box: BoundingBox | None) -> Path:
        """Where the patient's cache file lives."""
        return self.directory / f"{patient.patient_id}-{self.key(patient, box)}.npz"

    def load(self, patient: Patient, box: BoundingBox | None = None) -> Case:
        """The patient's cropped case, from the cache or else from the NIfTI files (then cached).

        Args:
            patient: Patient. Its files.
            box: BoundingBox, optional. None uses the automatic PET box.

        Returns:
            Case with cropped ``"ct"``, ``"pet"`` (and ``"mask"``) images and the box.

        Raises:
            PatientError: on any problem with the patient's files or geometry.
        """
        path = self.path(patient, box)
        if path.is_file():
            try:
                return self._read(path, patient.patient_id)
            except (OSError, KeyError, ValueError):
                pass  # a damaged cache file is rebuilt below
        case = load_case(patient, box)
        coarsest = max(max(image.GetSpacing()) for image in case.images.values())
        case = CropToBox(crop_margin(case.box, self.config, coarsest))(case)
        self._write(case, path)
        for stale in self.directory.glob(f"{patient.patient_id}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
        return case

    def fill(
        self, cohort: Cohort, ids: Sequence[str] | None = None, *, progress: bool = False
    ) -> pd.DataFrame:
        """Cache every patient through the cohort runner; return the failures
        (``patient_id, error``) instead of raising.

        Args:
            cohort: Cohort. The patients and their boxes.
            ids: sequence of str, optional. The patients to cache. Defaults to all.
            progress: bool. Show a progress bar. Defaults to False.

        Returns:
            pandas.DataFrame with columns ``patient_id, error``; empty when all are cached.
        """
        patients = cohort.patients if ids is None else [cohort[i] for i in ids]
        run = run_cohort(patients, lambda p: self.load(p, cohort.bboxes.get(p.patient_id)),
                         progress=progress, desc="cache")
        return run.failure_table

    @staticmethod
    def _write(case: Case, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"box": np.asarray(list(case.box.to_dict().values()))}
        for key, image in case.images.items():
            arrays[f"{key}_array"] = sitk.GetArrayViewFromImage(image)
            arrays[f"{key}_origin"] = np.asarray(image.GetOrigin())
            arrays[f"{key}_spacing"] = np.asarray(image.GetSpacing())
            arrays[f"{key}_direction"] = np.asarray(image.GetDirection())
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)

    @staticmethod
    def _read(path: Path, patient_id: str) -> Case:
        images = {}
        with np.load(path) as data:
            for name in data.files:
                if not name.endswith("_array"):
                    continue
                key = name[: -len("_array")]
                image = sitk.GetImageFromArray(data[name])
                image.SetOrigin(data[f"{key}_origin"].tolist())
                image.SetSpacing(data[f"{key}_spacing"].tolist())
                image.SetDirection(data[f"{key}_direction"].tolist())
                images[key] = image
            box = BoundingBox(*data["box"].tolist())
        return Case(images, box=box, patient_id=patient_id)


def _nbytes(value: Any) -> int:
    """Bytes held by a cached Case or PreprocessedCase (its voxel arrays)."""
    if isinstance(value, Case):
        return sum(
            image.GetNumberOfPixels() * image.GetSizeOfPixelComponent()
            * image.GetNumberOfComponentsPerPixel()
            for image in value.images.values()
        )
    return int(value.image.nbytes) + (0 if value.mask is None else int(value.mask.nbytes))


class MemoryCache:
    """A thread-safe least-recently-used cache of cases, bounded in bytes.

    Args:
        max_bytes: int. Budget; the least recently used entries are dropped beyond it, and an
            entry larger than the whole budget is not kept. 0 disables the cache.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``make()`` (then cached if it fits)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = make()
        size = _nbytes(value)
        if size > self.max_bytes:
            return value
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (value, size)
                self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped
        return value


class CohortDataset(keras.utils.PyDataset):
    """Batches of preprocessed (and, for training, augmented) cases for ``model.fit``.

    Yields ``({"image": x}, targets)`` where ``x`` is ``(N, D, H, W, 2)`` float32 (CT, PET)
    and ``targets`` holds ``"segmentation"``: ``(N, D, H, W, 1)`` float32 GTVt masks and/or
    ``"risk"``: ``(N, 2)`` float32 ``(time in days, event)``, as :class:`hnprog.CoxLoss`
    expects. Each sample is made by :func:`hnprog.transforms.preprocess_case`; with
    ``augment=True`` sample ``j`` of epoch ``e`` uses the generator seeded ``[seed, e, j]``,
    so epochs are reproducible whatever the number of workers.

    Args:
        cohort: Cohort. Patients, boxes (missing boxes use the automatic PET box) and
            endpoints.
        ids: sequence of str, optional. Patients of this split. Defaults to all.
        config: PreprocessConfig, optional. Defaults to ``PreprocessConfig()``.
        batch_size: int. Samples per batch (the last batch may be smaller). Defaults to 2.
        augment: bool. Random shift, flip and rotation (training). Defaults to False.
        event_fraction: float or None. Share of events per epoch with the censoring-balanced
            sampler (:func:`censoring_balanced_indices`); None keeps each patient once per
            epoch. Defaults to None.
        shuffle: bool. Shuffle the order each epoch (always True with ``event_fraction``).
            Defaults to False.
        cache_dir: str, PathLike or None. Folder of the :class:`CaseCache`; None re-reads the
            NIfTI files for every sample. Defaults to None.
        outputs: tuple of str. Targets to yield, among ``"segmentation"`` and ``"risk"``.
            Defaults to both.
        seed: int. Base seed of the sampler and augmentation. Defaults to 0.
        centre_labels: dict, optional. Integer class of each patient's centre (patient id ->
            0..K-1); when given, the targets also hold ``"centre"``: ``(N,)`` int32, for the
            adversarial centre branch. Defaults to None.
        memory_cache_mb: float. In-memory LRU budget, MiB (:class:`MemoryCache`): cropped
            cases when augmenting, else the finished arrays (then each epoch after the first
            costs no preprocessing at all). 0 disables it. Defaults to 4096.
        n_jobs: int. Worker threads or processes (``keras.utils.PyDataset``'s ``workers``).
            Defaults to 1.
        workers: int, optional. Deprecated alias of ``n_jobs``.
        use_multiprocessing: bool. Processes instead of threads. Defaults to False.
        max_queue_size: int. Batches prepared ahead. Defaults to 10.

    Raises:
        InputError: on unknown outputs, missing endpoints for ``"risk"`` or the sampler, or
            missing masks for ``"segmentation"``.

    Example:
        >>> config = PreprocessConfig.cpu()  # doctest: +SKIP
        >>> train = CohortDataset(cohort, train_ids, config=config,  # doctest: +SKIP
        ...                       augment=True, event_fraction=0.5, cache_dir="cache/")
        >>> model.fit(train, epochs=60)  # doctest: +SKIP
    """

    def __init__(
        self,
        cohort: Cohort,
        ids: Sequence[str] | None = None,
        *,
        config: PreprocessConfig | None = None,
        batch_size: int = 2,
        augment: bool = False,
        event_fraction: float | None = None,
        shuffle: bool = False,
        cache_dir: str | os.PathLike | None = None,
        outputs: Sequence[str] = OUTPUTS,
        seed: int = 0,
        memory_cache_mb: float = 4096,
        n_jobs: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        workers: int | None = None,
        centre_labels: Mapping[str, int] | None = None,
    ):
        if workers is not None:
            warn_deprecated("CohortDataset(workers=...)", "n_jobs=...")
            n_jobs = workers
        super().__init__(
            workers=n_jobs, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.cohort = cohort
        self.ids = list(cohort.ids if ids is None else ids)
        self.config = config or PreprocessConfig()
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.event_fraction = event_fraction
        self.shuffle = bool(shuffle)
        self.outputs = tuple(outputs)
        self.seed = int(seed)
        self.cache = CaseCache(cache_dir, self.config) if cache_dir is not None else None
        if memory_cache_mb < 0:
            raise InputError(f"memory_cache_mb must be >= 0. Received: {memory_cache_mb}")
        self.memory = MemoryCache(int(memory_cache_mb * 2**20))
        if not self.ids:
            raise InputError("CohortDataset needs at least one patient. Received: ids=[]")
        unknown = [o for o in self.outputs if o not in OUTPUTS]
        if unknown or not self.outputs:
            raise InputError(f"outputs must be among {OUTPUTS}. Received: outputs={self.outputs}")
        self.patients = [cohort[i] for i in self.ids]
        self.targets = None
        if "risk" in self.outputs or event_fraction is not None:
            y = cohort.survival_y(self.ids)
            self.targets = np.stack([y["time"], y["event"]], axis=1).astype(np.float32)
        if "segmentation" in self.outputs:
            no_mask = [p.patient_id for p in self.patients if p.mask is None]
            if no_mask:
                raise InputError(
                    f"{len(no_mask)} patients have no GTVt mask but outputs include "
                    f"'segmentation', e.g. {no_mask[:5]}"
                )
        self.centre_labels = None if centre_labels is None else dict(centre_labels)
        self.centre_targets = None
        if self.centre_labels is not None:
            unlabelled = [i for i in self.ids if i not in self.centre_labels]
            if unlabelled:
                raise InputError(f"{len(unlabelled)} patients have no centre label, "
                                 f"e.g. {unlabelled[:5]}")
            self.centre_targets = np.array([self.centre_labels[i] for i in self.ids], np.int32)
        self.epoch = 0
        self.order = self._epoch_order(0)
        self._epoch_is_set = False

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self.event_fraction is not None:
            return censoring_balanced_indices(
                self.targets[:, 1].astype(bool), self.event_fraction, seed=self.seed, epoch=epoch
            )
        order = np.arange(len(self.ids))
        if self.shuffle:
            np.random.default_rng([self.seed, epoch]).shuffle(order)
        return order

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def load_case(self, position: int) -> Case:
        """The (cropped, when cached) case of patient ``self.ids[position]``."""
        patient = self.patients[position]
        box = self.cohort.bboxes.get(patient.patient_id)
        if self.cache is not None:
            return self.cache.load(patient, box)
        return load_case(patient, box, with_mask="segmentation" in self.outputs)

    def _sample(self, position: int, rng: np.random.Generator | None) -> PreprocessedCase:
        if rng is None:  # deterministic: keep the finished arrays
            return self.memory.get(
                ("arrays", position),
                lambda: preprocess_case(self.load_case(position), self.config),
            )
        case = self.memory.get(("case", position), lambda: self.load_case(position))
        return preprocess_case(case, self.config, rng=rng)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        epoch, order = self.epoch, self.order
        start = index * self.batch_size
        images, masks = [], []
        positions = order[start : start + self.batch_size]
        for offset, position in enumerate(positions):
            rng = (
                np.random.default_rng([self.seed, epoch, start + offset]) if self.augment else None
            )
            result = self._sample(int(position), rng)
            images.append(result.image)
            masks.append(result.mask)
        targets: dict[str, np.ndarray] = {}
        if "segmentation" in self.outputs:
            targets["segmentation"] = np.stack(masks)[..., None].astype(np.float32)
        if "risk" in self.outputs:
            targets["risk"] = self.targets[positions]
        if self.centre_targets is not None:
            targets["centre"] = self.centre_targets[positions]
        return {"image": np.stack(images)}, targets

    def set_epoch(self, epoch: int) -> None:
        """Make the next batches those of epoch ``epoch`` (its draw, order and augmentation).

        An epoch depends only on ``(seed, epoch)``, so a resumed training run that sets its
        epochs sees the same batches as an uninterrupted one. Once this has been called,
        :meth:`on_epoch_end` no longer advances the epoch: the caller sets every epoch. (Keras
        starts reading the next epoch's batches before it calls ``on_epoch_end``, so an epoch
        change there can race with those reads; :class:`hnprog.training.callbacks.DatasetEpoch`
        sets the next epoch right after the last batch of the previous one instead.)

        Args:
            epoch: int. The epoch index, 0-based (Keras' ``epoch`` in callbacks).

        Raises:
            InputError: if ``epoch`` is not a non-negative integer.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise InputError(f"epoch must be an integer >= 0. Received: epoch={epoch!r}")
        self._epoch_is_set = True
        if int(epoch) != self.epoch:
            self.order = self._epoch_order(int(epoch))
            self.epoch = int(epoch)

    def on_epoch_end(self) -> None:
        """Move to the next epoch (a new balanced draw, shuffle and augmentation seeds), unless
        the epochs are set with :meth:`set_epoch`."""
        if self._epoch_is_set:
            return
        self.epoch += 1
        self.order = self._epoch_order(self.epoch)
