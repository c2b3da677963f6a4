"""Handcrafted radiomics features with PyRadiomics: one patient, or a whole cohort in parallel.

The feature set is the standard baseline of Andrearczyk et al. (PRIME/MICCAI 2021), shipped as
``hnprog/radiomics/params/andrearczyk2021.yaml``: 274 features = 2 modalities x (18
first-order + 2 discretisations x (24 GLCM + 16 GLRLM + 16 GLSZM)) + 14 shape, inside the GTVt.

Geometry is done here with SimpleITK, not by PyRadiomics:

1. the mask's bounding box (label ``label``) plus a margin defines a small grid at 2 mm;
2. CT, PET and mask are each cropped to that neighbourhood (never whole scans);
3. the crops are resampled onto the 2 mm grid (images linear, mask nearest neighbour);
4. PyRadiomics runs once per discretisation on the resampled crops, with its own resampling
   disabled.

Feature names read ``<modality>_<discretisation>_<class>_<feature>`` (``CT_bc64_glcm_Contrast``,
``PET_bw1_firstorder_Mean``) and ``shape_<feature>`` for the mask's shape (``shape_MeshVolume``).
"""

from __future__ import annotations

import concurrent.futures
import copy
import csv
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

from hnprog.errors import InputError, PatientError
from hnprog.io import atomic_write, read_image, write_json

__all__ = [
    "DEFAULT_PARAMS",
    "check_finite_features",
    "crop_and_resample",
    "extract_cohort_features",
    "extract_features",
    "feature_names",
    "load_params",
    "read_features",
]

DEFAULT_PARAMS = Path(__file__).parent / "params" / "andrearczyk2021.yaml"
"""The paper's 274-feature set (PyRadiomics settings and hnprog's resampling)."""

ID_COLUMN = "patient_id"
_MODALITIES = ("CT", "PET")
# Bump when the extraction code changes in a way that changes feature values (invalidates caches).
_CACHE_VERSION = 1


class PatientRecord(Protocol):
    """What :func:`extract_cohort_features` needs of a patient (``hnprog.data.cohort.Patient``)."""

    patient_id: str
    ct: Path
    pet: Path
    mask: Path | None


# ---------------------------------------------------------------------------------------------
# Parameters


def load_params(params: str | os.PathLike | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load and check an hnprog radiomics params file.

    The file holds ``resampling`` (``spacing`` in mm, ``margin`` in voxels), ``label``, a
    shared PyRadiomics ``setting`` block and a list of ``runs``; each run names an ``image``
    (``CT`` or ``PET``), a name ``prefix`` and PyRadiomics ``setting``/``featureClass`` blocks.
    See ``hnprog/radiomics/params/andrearczyk2021.yaml``.

    Args:
        params: str, PathLike, dict or None. A YAML file, an already loaded dict, or None for
            :data:`DEFAULT_PARAMS`. Defaults to None.

    Returns:
        dict. The checked parameters (a copy).

    Raises:
        InputError: naming the file, when it is missing, not YAML, or misses a key.
    """
    if params is None:
        params = DEFAULT_PARAMS
    if isinstance(params, Mapping):
        where, loaded = "radiomics params", copy.deepcopy(dict(params))
    else:
        path = Path(params)
        where = f"radiomics params file {path}"
        if not path.is_file():
            raise InputError(f"{where}: file not found")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{where}: expected a mapping at the top level. Received: {loaded!r}")
    missing = [key for key in ("resampling", "runs") if key not in loaded]
    if missing:
        raise InputError(f"{where}: missing keys {missing}")
    resampling = loaded["resampling"] or {}
    spacing = resampling.get("spacing")
    if (
        not isinstance(spacing, (list, tuple))
        or len(spacing) != 3
        or not all(isinstance(s, (int, float)) and s > 0 for s in spacing)
    ):
        raise InputError(
            f"{where}: resampling.spacing must be three positive numbers (mm). "
            f"Received: spacing={spacing!r}"
        )
    margin = resampling.get("margin", 3)
    if not isinstance(margin, int) or margin < 0:
        raise InputError(
            f"{where}: resampling.margin must be a non-negative integer. "
            f"Received: margin={margin!r}"
        )
    loaded["resampling"] = {"spacing": [float(s) for s in spacing], "margin": margin}
    loaded["label"] = int(loaded.get("label", 1))
    loaded["setting"] = dict(loaded.get("setting") or {})
    runs = loaded["runs"]
    if not isinstance(runs, list) or not runs:
        raise InputError(f"{where}: runs must be a non-empty list")
    prefixes = set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or run.get("image") not in _MODALITIES:
            raise InputError(
                f"{where}: runs[{i}].image must be one of {list(_MODALITIES)}. Received: {run!r}"
            )
        if not isinstance(run.get("featureClass"), dict) or not run["featureClass"]:
            raise InputError(f"{where}: runs[{i}] needs a non-empty featureClass mapping")
        prefix = str(run.get("prefix") or "")
        if prefix in prefixes:
            raise InputError(f"{where}: runs[{i}].prefix {prefix!r} is used twice")
        prefixes.add(prefix)
        run["prefix"] = prefix
        run["setting"] = dict(run.get("setting") or {})
    return loaded


def feature_names(params: str | os.PathLike | Mapping[str, Any] | None = None) -> list[str]:
    """The names of the features that ``params`` produces, in output column order.

    Args:
        params: str, PathLike, dict or None. As in :func:`load_params`. Defaults to None
            (the paper's 274 features).

    Returns:
        list of str, for example ``["shape_Elongation", ..., "PET_bc8_glszm_ZoneVariance"]``.

    Example:
        >>> len(feature_names())
        274
    """
    with warnings.catch_warnings():  # PyRadiomics loads its classes with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        from radiomics import getFeatureClasses

        classes = getFeatureClasses()
    names = []
    for run in load_params(params)["runs"]:
        for class_name, enabled in run["featureClass"].items():
            if class_name not in classes:
                raise InputError(
                    f"unknown PyRadiomics feature class {class_name!r}; "
                    f"known: {sorted(classes)}"
                )
            if not enabled:
                all_features = classes[class_name].getFeatureNames()
                enabled = [name for name, deprecated in all_features.items() if not deprecated]
            names += [_feature_name(run["prefix"], class_name, f) for f in sorted(enabled)]
    return names


def _feature_name(prefix: str, class_name: str, feature: str) -> str:
    return "_".join(part for part in (prefix, class_name, feature) if part)


# ---------------------------------------------------------------------------------------------
# One patient


def crop_and_resample(
    ct: sitk.Image,
    pet: sitk.Image,
    mask: sitk.Image,
    *,
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    margin: int = 3,
    label: int = 1,
    patient_id: str = "?",
) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Put CT, PET and the GTVt mask on one small grid around the mask.

    The grid has the mask's direction, the given spacing, and covers the bounding box of the
    voxels equal to ``label`` plus ``margin`` voxels on each side. Each image is first cropped
    to that neighbourhood (plus one voxel for interpolation), then resampled onto the grid:
    CT and PET with linear interpolation, the mask with nearest neighbour.

    Args:
        ct: SimpleITK.Image. CT in HU, any grid.
        pet: SimpleITK.Image. PET in SUV, any grid.
        mask: SimpleITK.Image. Integer label map (the GTVt is ``label``).
        spacing: tuple of 3 floats. Output spacing in mm, ``(x, y, z)``. Defaults to 2 mm.
        margin: int. Voxels of the output grid kept around the mask. Defaults to 3.
        label: int. The mask value of the region. Defaults to 1.
        patient_id: str. Named in error messages. Defaults to ``"?"``.

    Returns:
        tuple ``(ct, pet, mask)`` of SimpleITK images on the same grid: float32 CT (HU), float32
        PET (SUV), uint8 mask with values {0, 1}.

    Raises:
        PatientError: if the mask is empty or holds a single voxel (before or after
            resampling), or if it is not covered by the CT or PET field of view.
    """
    mask_values = sitk.GetArrayViewFromImage(mask)
    inside = mask_values == label
    n_voxels = int(inside.sum())
    if n_voxels == 0:
        present = np.unique(mask_values)[:10].tolist()
        raise PatientError(
            patient_id, f"mask is empty: no voxel has label {label} (values present: {present})"
        )
    if n_voxels == 1:
        raise PatientError(patient_id, "mask holds a single voxel; texture and shape need more")
    zyx = np.nonzero(inside)
    lower_index = np.array([zyx[2].min(), zyx[1].min(), zyx[0].min()], dtype=float)
    upper_index = np.array([zyx[2].max(), zyx[1].max(), zyx[0].max()], dtype=float)
    new_spacing = np.asarray(spacing, dtype=float)
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    extent = (upper_index - lower_index + 1) * np.array(mask.GetSpacing())  # mm, mask axes
    size = np.ceil(extent / new_spacing - 1e-6).astype(int) + 2 * margin
    excess = size * new_spacing - extent
    lower_edge = np.array(mask.TransformContinuousIndexToPhysicalPoint(tuple(lower_index - 0.5)))
    reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    reference.SetSpacing(tuple(new_spacing))
    reference.SetDirection(tuple(direction.ravel()))
    reference.SetOrigin(tuple(lower_edge + direction @ (new_spacing / 2 - excess / 2)))

    roi = sitk.Cast(mask == label, sitk.sitkUInt8)
    roi = sitk.Resample(
        _crop_to_grid(roi, reference, "mask", patient_id),
        reference,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )
    roi_values = sitk.GetArrayViewFromImage(roi).astype(bool)
    n_resampled = int(roi_values.sum())
    if n_resampled < 2:
        raise PatientError(
            patient_id,
            f"mask holds {n_resampled} voxel(s) after resampling to {tuple(new_spacing)} mm "
            f"({n_voxels} before); too small for radiomics",
        )
    resampled = []
    for image, role in ((ct, "CT"), (pet, "PET")):
        out = sitk.Resample(
            _crop_to_grid(image, reference, role, patient_id),
            reference,
            sitk.Transform(),
            sitk.sitkLinear,
            math.nan,
            sitk.sitkFloat32,
        )
        values = sitk.GetArrayFromImage(out)
        missing = np.isnan(values)
        n_outside = int((missing & roi_values).sum())
        if n_outside:
            raise PatientError(
                patient_id,
                f"{n_outside} of {n_resampled} mask voxels lie outside the {role} field of view",
            )
        if missing.any():  # margin voxels beyond the scan: never read inside the mask
            values[missing] = values[roi_values].min()
            fixed = sitk.GetImageFromArray(values)
            fixed.CopyInformation(out)
            out = fixed
        resampled.append(out)
    return resampled[0], resampled[1], roi


def _crop_to_grid(
    image: sitk.Image, reference: sitk.Image, role: str, patient_id: str
) -> sitk.Image:
    """Crop ``image`` to the voxels needed to interpolate it on ``reference`` (plus one)."""
    size = np.array(reference.GetSize())
    corners = [
        reference.TransformContinuousIndexToPhysicalPoint(
            tuple(np.where(bits, size - 0.5, -0.5).astype(float))
        )
        for bits in np.ndindex(2, 2, 2)
    ]
    indices = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    image_size = np.array(image.GetSize())
    lower = np.maximum(np.floor(indices.min(axis=0)).astype(int) - 1, 0)
    upper = np.minimum(np.ceil(indices.max(axis=0)).astype(int) + 1, image_size - 1)
    if np.any(lower > upper):
        raise PatientError(
            patient_id,
            f"the mask does not overlap the {role} image (the {role} field of view does not "
            "contain the tumour; are CT, PET and mask from the same study?)",
        )
    return image[lower[0] : upper[0] + 1, lower[1] : upper[1] + 1, lower[2] : upper[2] + 1]


_EXTRACTORS: dict[str, list[tuple[dict[str, Any], Any]]] = {}


def _extractors(params: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """One configured PyRadiomics extractor per run, cached per process."""
    key = _params_hash(params)
    if key not in _EXTRACTORS:
        # PyRadiomics and its schema validator (pykwalify) import modules with a deprecated API
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _EXTRACTORS[key] = _build_extractors(params)
    return _EXTRACTORS[key]


def _build_extractors(params: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractors = []
    for run in params["runs"]:
        settings = {**params["setting"], **run["setting"]}
        settings.pop("resampledPixelSpacing", None)  # hnprog resamples; never PyRadiomics
        try:
            extractor = RadiomicsFeatureExtractor(
                {
                    "imageType": {"Original": {}},
                    "setting": settings,
                    "featureClass": run["featureClass"],
                }
            )
        except Exception as exc:  # PyRadiomics validates with its own exceptions
            raise InputError(f"radiomics params, run {run['prefix']!r}: {exc}") from None
        extractors.append((run, extractor))
    return extractors


def _params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def extract_features(
    ct: str | os.PathLike | sitk.Image,
    pet: str | os.PathLike | sitk.Image,
    mask: str | os.PathLike | sitk.Image,
    *,
    params: str | os.PathLike | Mapping[str, Any] | None = None,
    patient_id: str = "?",
) -> dict[str, float]:
    """Extract the radiomics features of one patient inside the GTVt.

    Args:
        ct: str, PathLike or SimpleITK.Image. CT in HU.
        pet: str, PathLike or SimpleITK.Image. PET in SUV.
        mask: str, PathLike or SimpleITK.Image. GTVt label map (any grid; usually the CT's).
        params: str, PathLike, dict or None. Params file; None for the paper's 274 features.
            Defaults to None.
        patient_id: str. Named in error messages. Defaults to ``"?"``.

    Returns:
        dict mapping feature name to value, in the order of :func:`feature_names`.

    Raises:
        PatientError: if a file is missing or unreadable, the mask is empty, a single voxel,
            or outside the CT or PET field of view, or PyRadiomics fails on the region.

    Example:
        >>> features = extract_features(  # doctest: +SKIP
        ...     "P1_ct.nii.gz", "P1_pt.nii.gz", "P1_gtvt.nii.gz", patient_id="P1"
        ... )
        >>> features["PET_bw1_firstorder_Maximum"]  # SUVmax  # doctest: +SKIP
        12.3
    """
    loaded = load_params(params)

    def as_image(image: Any, role: str, pixel_type: int) -> sitk.Image:
        if isinstance(image, sitk.Image):
            return image
        return read_image(image, patient_id=patient_id, role=role, pixel_type=pixel_type)

    images = {
        "CT": as_image(ct, "CT", sitk.sitkFloat32),
        "PET": as_image(pet, "PET", sitk.sitkFloat32),
    }
    mask_image = as_image(mask, "mask", sitk.sitkUInt8)
    images["CT"], images["PET"], roi = crop_and_resample(
        images["CT"],
        images["PET"],
        mask_image,
        spacing=tuple(loaded["resampling"]["spacing"]),
        margin=loaded["resampling"]["margin"],
        label=loaded["label"],
        patient_id=patient_id,
    )
    features: dict[str, float] = {}
    for run, extractor in _extractors(loaded):
        try:
            result = extractor.execute(images[run["image"]], roi, label=1)
        except Exception as exc:  # PyRadiomics raises ValueError/AssertionError on bad regions
            raise PatientError(
                patient_id,
                f"PyRadiomics failed on {run['image']} ({run['prefix'] or 'shape'}): {exc}",
            ) from None
        for key, value in result.items():
            image_type, _, name = key.partition("_")
            if image_type != "original":
                continue
            class_name, _, feature = name.partition("_")
            features[_feature_name(run["prefix"], class_name, feature)] = float(value)
    names = feature_names(loaded)
    missing = [name for name in names if name not in features]
    if missing:
        raise PatientError(
            patient_id, f"PyRadiomics did not return {len(missing)} features: {missing[:5]}"
        )
    return {name: features[name] for name in names}


# ---------------------------------------------------------------------------------------------
# A cohort


def _cache_key(patient: PatientRecord, params: dict[str, Any]) -> str:
    import radiomics

    files = []
    for path in (patient.ct, patient.pet, patient.mask):
        stat = Path(path).stat()
        files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    content = {
        "version": _CACHE_VERSION,
        "pyradiomics": radiomics.__version__,
        "params": params,
        "files": files,
    }
    return _params_hash(content)[:16]


def _extract_one(
    patient_id: str, ct: str, pet: str, mask: str, params: dict[str, Any], cache_file: str | None
) -> tuple[str, dict[str, float] | None, str | None]:
    """Worker: features (and cache them) or the reason of the failure. Never raises."""
    try:
        features = extract_features(ct, pet, mask, params=params, patient_id=patient_id)
    except PatientError as exc:
        return patient_id, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - one patient's crash must not stop the cohort
        return patient_id, None, f"{type(exc).__name__}: {exc}"
    if cache_file is not None:
        write_json({"patient_id": patient_id, "features": features}, cache_file)
    return patient_id, features, None


def extract_cohort_features(
    patients: Iterable[PatientRecord],
    out: str | os.PathLike,
    *,
    params: str | os.PathLike | Mapping[str, Any] | None = None,
    jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    failures: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Extract features for every patient, in parallel, with a per-patient cache.

    Each patient's features are cached as one small JSON file named after the patient and a
    hash of its input files (path, size, modification time), the params and the PyRadiomics
    version, so an interrupted run resumes where it stopped and a changed input is recomputed.
    A patient that fails (no mask, empty or single-voxel mask, mask outside the scan, unreadable
    file) is written to the failures CSV with its reason; the others complete.

    Args:
        patients: iterable of patient records with ``patient_id``, ``ct``, ``pet`` and
            ``mask`` (such as ``hnprog.data.cohort.Patient``; ``mask`` may be None, which
            counts as a failure).
        out: str or PathLike. The features CSV: one row per patient, column ``patient_id`` then
            the features in :func:`feature_names` order. Written atomically.
        params: str, PathLike, dict or None. Params file; None for the paper's 274 features.
            Defaults to None.
        jobs: int. Worker processes. Defaults to 1 (no subprocess).
        cache_dir: str, PathLike or None. Folder of per-patient cache files. Defaults to None,
            meaning ``<out folder>/.radiomics_cache``.
        failures: str, PathLike or None. The failures CSV (columns ``patient_id, error``),
            always written (header only when nothing failed). Defaults to None, meaning
            ``failures.csv`` next to ``out``.
        progress: bool. Show a tqdm progress bar on stderr. Defaults to True.

    Returns:
        pandas.DataFrame indexed by ``patient_id``, one float column per feature, holding the
        patients that succeeded (in input order).

    Raises:
        InputError: if ``jobs`` < 1, there are no patients, a patient id repeats, the params
            are invalid, or every patient failed.
    """
    from tqdm.auto import tqdm

    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs must be a positive integer. Received: jobs={jobs!r}")
    loaded = load_params(params)
    columns = feature_names(loaded)
    _extractors(loaded)  # fail early on invalid PyRadiomics settings
    patients = list(patients)
    if not patients:
        raise InputError("no patients to extract features from")
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out.parent / ".radiomics_cache"
    failures_path = Path(failures) if failures is not None else out.parent / "failures.csv"

    order = [p.patient_id for p in patients]
    if len(set(order)) != len(order):
        repeated = sorted({pid for pid in order if order.count(pid) > 1})
        raise InputError(f"patient ids must be unique. Received repeated ids: {repeated}")
    results: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    todo = []
    for patient in patients:
        pid = patient.patient_id
        if patient.mask is None:
            failed[pid] = "no GTVt mask"
            continue
        missing = [
            role
            for role, path in (("CT", patient.ct), ("PET", patient.pet), ("mask", patient.mask))
            if path is None or not Path(path).is_file()
        ]
        if missing:
            failed[pid] = f"file not found: {', '.join(missing)}"
            continue
        cache_file = cache / f"{_safe_name(pid)}-{_cache_key(patient, loaded)}.json"
        if cache_file.is_file():
            try:
                cached = json.loads(cache_file.read_text())["features"]
                if list(cached) == columns:
                    results[pid] = cached
                    continue
            except (ValueError, KeyError, TypeError):
                pass  # unreadable cache file: recompute
        todo.append((pid, str(patient.ct), str(patient.pet), str(patient.mask), str(cache_file)))

    with tqdm(
        total=len(patients),
        initial=len(results) + len(failed),
        desc="radiomics",
        unit="patient",
        disable=not progress,
    ) as bar:

        def collect(outcome: tuple[str, dict[str, float] | None, str | None]) -> None:
            pid, features, reason = outcome
            if features is None:
                failed[pid] = reason or "unknown error"
            elif list(features) != columns:
                failed[pid] = "PyRadiomics returned unexpected features (check the params file)"
            else:
                results[pid] = features
            bar.update(1)

        if jobs == 1 or len(todo) <= 1:
            for task in todo:
                collect(_extract_one(*task[:4], loaded, task[4]))
        else:
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=jobs, mp_context=_process_context()
            ) as pool:
                futures = [pool.submit(_extract_one, *task[:4], loaded, task[4]) for task in todo]
                for future in concurrent.futures.as_completed(futures):
                    collect(future.result())

    with atomic_write(failures_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow([ID_COLUMN, "error"])
        for pid in order:
            if pid in failed:
                writer.writerow([pid, failed[pid]])
    if not results:
        raise InputError(
            f"feature extraction failed for all {len(patients)} patients; reasons in "
            f"{failures_path}"
        )
    table = pd.DataFrame.from_dict(
        {pid: results[pid] for pid in order if pid in results}, orient="index", columns=columns
    )
    table.index.name = ID_COLUMN
    with atomic_write(out, newline="") as f:
        table.to_csv(f, float_format="%.10g")
    return table


def _process_context() -> multiprocessing.context.BaseContext:
    """Start workers without fork: the parent may hold threads (TensorFlow, tqdm)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Import the heavy modules once in the fork server; each worker then starts ready.
    context.set_forkserver_preload([__name__, "radiomics.featureextractor"])
    return context


def _safe_name(patient_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", patient_id) or "_"


# ---------------------------------------------------------------------------------------------
# Reading a features table


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """Read a features CSV written by :func:`extract_cohort_features` (or by hand).

    Args:
        path: str or PathLike. CSV whose column ``patient_id`` (else ``PatientID``, else the
            first column) holds patient ids and whose other columns are numeric features.

    Returns:
        pandas.DataFrame indexed by patient id (str), float columns.

    Raises:
        InputError: naming the file, if it is missing, empty, has repeated patient ids,
            non-numeric values, or missing values (naming the features and patients).
    """
    path = Path(path)
    where = f"features file {path}"
    if not path.is_file():
        raise InputError(f"{where}: file not found")
    try:
        table = pd.read_csv(path, dtype={ID_COLUMN: str, "PatientID": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not a readable CSV: {exc}") from None
    id_column = next((c for c in (ID_COLUMN, "PatientID") if c in table.columns), table.columns[0])
    table[id_column] = table[id_column].astype(str)
    table = table.set_index(id_column)
    table.index.name = ID_COLUMN
    if table.empty or table.shape[1] == 0:
        raise InputError(f"{where}: no patients or no feature columns")
    repeated = table.index[table.index.duplicated()].unique().tolist()
    if repeated:
        raise InputError(f"{where}: patient ids repeated: {repeated[:5]}")
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        column = non_numeric[0]
        bad = pd.to_numeric(table[column], errors="coerce").isna() & table[column].notna()
        raise InputError(
            f"{where}: feature columns must be numbers; {len(non_numeric)} are not, e.g. "
            f"{column!r} for patient {bad.idxmax() if bad.any() else '?'}: "
            f"{table[column][bad].iloc[0] if bad.any() else '?'!r}"
        )
    table = table.astype(float)
    check_finite_features(table, where=where)
    return table


def check_finite_features(table: pd.DataFrame, *, where: str = "features") -> None:
    """Raise a clear :class:`InputError` when a feature table holds NaN or infinite values.

    Args:
        table: pandas.DataFrame. Patients as rows (index = patient id), features as columns.
        where: str. What the table is, for the message. Defaults to ``"features"``.

    Raises:
        InputError: naming up to five features and patients with missing values.
    """
    values = table.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        columns = table.columns[bad.any(axis=0)].tolist()
        rows = table.index[bad.any(axis=1)].tolist()
        raise InputError(
            f"{where}: {int(bad.sum())} missing or infinite values in {len(columns)} features "
            f"(e.g. {columns[:5]}) for {len(rows)} patients (e.g. {rows[:5]}); drop or impute "
            "them first"
        )
