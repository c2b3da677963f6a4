"""Radiomics parameters: the pinned params file, its checks, the feature names and its hash.

The feature set is the standard baseline of Andrearczyk et al. (PRIME/MICCAI 2021), shipped as
``hnprog/radiomics/params/andrearczyk2021.yaml`` (:data:`DEFAULT_PARAMS`): 274 features = 2
modalities x (18 first-order + 2 discretisations x (24 GLCM + 16 GLRLM + 16 GLSZM)) + 14
shape, inside the GTVt.

Feature names read ``<modality>_<discretisation>_<class>_<feature>`` (``CT_bc64_glcm_Contrast``,
``PET_bw1_firstorder_Mean``) and ``shape_<feature>`` for the mask's shape (``shape_MeshVolume``).

After the PyRadiomics features come the six clinical PET measures of
:data:`NATIVE_PET_FEATURES` (SUVmax, SUVpeak, MTV and TLG on the PET's own grid, computed by
:func:`hnprog.radiomics.features.native_pet_features`); ``native_pet: false`` in a params file
leaves them out. ``PET_bw1_firstorder_Maximum`` is the maximum *after* resampling to the
radiomics grid, not the clinical SUVmax: that is ``PET_native_SUVmax``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hnprog.errors import InputError

__all__ = [
    "DEFAULT_PARAMS",
    "NATIVE_PET_FEATURES",
    "feature_column",     "feature_names",
    "load_params",
    "params_hash",
]

DEFAULT_PARAMS = Path(__file__).parent / "params" / "andrearczyk2021.yaml"
"""The paper's 274-feature set (PyRadiomics settings and hnprog's resampling)."""

NATIVE_PET_FEATURES = (
    "PET_native_SUVmax",
    "PET_native_SUVpeak_1mL",
    "PET_native_MTV_SUV2.5_mL",
    "PET_native_TLG_SUV2.5",
    "PET_native_MTV_41pct_mL",
    "PET_native_TLG_41pct",
)
"""The PET measures on the PET's native grid, appended after the PyRadiomics features (see
:func:`hnprog.radiomics.features.native_pet_features` for their definitions)."""

MODALITIES = ("CT", "PET")
"""The images a run may name, as ``runs[i].image``."""


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
    native_pet = loaded.get("native_pet", True)
    if not isinstance(native_pet, bool):
        raise InputError(
            f"{where}: native_pet must be true or false. Received: native_pet={native_pet!r}"
        )
    loaded["native_pet"] = native_pet
    loaded["setting"] = dict(loaded.get("setting") or {})
    runs = loaded["runs"]
    if not isinstance(runs, list) or not runs:
        raise InputError(f"{where}: runs must be a non-empty list")
    prefixes = set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or run.get("image") not in MODALITIES:
            raise InputError(
                f"{where}: runs[{i}].image must be one of {list(MODALITIES)}. Received: {run!r}"
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
        list of str: the PyRadiomics features, for example ``["shape_Elongation", ...,
        "PET_bc8_glszm_ZoneVariance"]``, then :data:`NATIVE_PET_FEATURES` unless the params
        say ``native_pet: false``.

    Raises:
        InputError: if the params are invalid or name an unknown PyRadiomics feature class.

    Example:
        >>> len(feature_names())  # 274 PyRadiomics + 6 native PET
        280
    """
    with warnings.catch_warnings():  # PyRadiomics loads its classes with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        from radiomics import getFeatureClasses

        classes = getFeatureClasses()
    names = []
    loaded = load_params(params)
    for run in loaded["runs"]:
        for class_name, enabled in run["featureClass"].items():
            if class_name not in classes:
                raise InputError(
                    f"unknown PyRadiomics feature class {class_name!r}; "
                    f"known: {sorted(classes)}"
                )
            if not enabled:
                all_features = classes[class_name].getFeatureNames()
                enabled = [name for name, deprecated in all_features.items() if not deprecated]
            names += [feature_column(run["prefix"], class_name, f) for f in sorted(enabled)]
    if loaded["native_pet"]:
        names += list(NATIVE_PET_FEATURES)
    return names


def feature_column(prefix: str, class_name: str, feature: str) -> str:
    """The column name of one PyRadiomics feature of a run: ``<prefix>_<class>_<feature>``.

    Args:
        prefix: str. The run's prefix (``"CT_bw50"``; empty for the shape run).
        class_name: str. The PyRadiomics feature class (``"glcm"``).
        feature: str. The PyRadiomics feature (``"Contrast"``).

    Returns:
        str, for example ``"CT_bw50_glcm_Contrast"`` or ``"shape_MeshVolume"``.
    """
    return "_".join(part for part in (prefix, class_name, feature) if part)


def params_hash(params: Mapping[str, Any]) -> str:
    """The SHA-256 (64 hex digits) of loaded params, independent of key order.

    Args:
        params: dict. Params as :func:`load_params` returns them (JSON-serialisable).

    Returns:
        str. Equal for equal params; used to cache the configured extractors.
    """
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
