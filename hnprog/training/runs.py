"""Training runs on a cohort: datasets -> fit -> preset.

:func:`train_on_cohort` is the run that ``hnprog train`` and :func:`hnprog.training.finetune`
make; :func:`hnprog.training.cross_validate` makes one per task and fold from the same pieces:
:func:`check_training_set` (refuse a split before the first epoch), :func:`cohort_datasets`
(:class:`hnprog.data.dataset.CohortDataset` prepared with ``config.preprocessing``),
:func:`hnprog.training.fit.train_model`, then :func:`hnprog.training.fit.export_preset` with
:func:`dataset_metadata`. Each run folder ends with ``preset/``, the one saved-model format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from hnprog.errors import InputError
from hnprog.io import write_json
from hnprog.training.callbacks import collect_predictions, output_names
from hnprog.training.config import TrainingConfig
from hnprog.training.fit import (
    CACHE_DIR,
    TrainingResult,
    check_run_folder,
    export_preset,
    train_model,
)
from hnprog.training.precheck import precheck_cohort

__all__ = [
    "centre_labels",
    "check_training_set",
    "cohort_datasets",
    "patient_centres",
    "dataset_metadata",
    "predict_dataset",
    "read_cohort_with_endpoints",
    "baseline_of",
    "clinical_model_of",
    "train_on_cohort",
    "read_clinical_of",
    "training_baseline",
    "training_risks",
]


def check_training_set(
    n_train: int, n_events: int, batch_size: int, *, n_val: int | None = None, where: str = ""
) -> None:
    """Refuse, before training, a split the Cox loss, the batch size or validation cannot use.

    Args:
        n_train: int. Patients in the training set.
        n_events: int. Observed events among them.
        batch_size: int. Patients per batch.
        n_val: int, optional. Patients in the validation set; checked when given.
            Defaults to None.
        where: str. Named in the message (e.g. ``"fold 2"``). Defaults to ``""``.

    Raises:
        InputError: if the training set holds no event or fewer patients than
            ``batch_size``, or the validation set is empty.
    """
    prefix = f"{where}: " if where else ""
    if n_val == 0:
        raise InputError(
            f"{prefix}the validation set is empty ({n_train} training patients); the kept "
            "epoch is chosen on validation patients. Use more patients, fewer folds or a "
            "larger val_fraction"
        )
    if n_events == 0:
        raise InputError(
            f"{prefix}the training set ({n_train} patients) holds no event; the Cox loss needs "
            "events. Use fewer folds or check the endpoint file"
        )
    if batch_size > n_train:
        raise InputError(
            f"{prefix}batch_size is larger than the training set ({n_train} patients). "
            f"Received: batch_size={batch_size}"
        )


def read_cohort_with_endpoints(
    data: str | Path | Any,
    *,
    endpoints: str | Path | pd.DataFrame | None = None,
    bboxes: str | Path | Mapping[str, Any] | None = None,
) -> Any:
    """The cohort of ``data`` (a folder, a manifest or a read ``Cohort``), with endpoints.

    Args:
        data: str, Path or Cohort. Read with :func:`hnprog.data.cohort.read_cohort`.
        endpoints: path or DataFrame, optional. The endpoint CSV; defaults to the one
            ``read_cohort`` finds next to the data (``endpoints.csv``, else a single
            ``*endpoint*.csv``).
        bboxes: path or dict, optional. The HECKTOR box CSV; defaults to the one found next
            to the data (``bboxes.csv``, ``bbox.csv``, else a single ``*bbox*.csv``), else
            the automatic PET box.

    Raises:
        InputError: if the cohort has no endpoints, or ``endpoints``/``bboxes`` are given
            with an already-read ``Cohort``.
    """
    from hnprog.data.cohort import read_cohort

    if hasattr(data, "patients"):
        if endpoints is not None or bboxes is not None:
            raise InputError("endpoints= and bboxes= apply to a cohort folder or manifest; "
                             "give them to read_cohort for an already-read Cohort")
        cohort = data
    else:
        cohort = read_cohort(data, endpoints=endpoints,
                             bboxes=dict(bboxes) if isinstance(bboxes, Mapping) else bboxes)
    if cohort.endpoints is None:
        raise InputError(
            f"cohort {cohort.root} has no endpoints: no endpoints.csv (or single "
            "*endpoint*.csv) next to it; pass --endpoints FILE (endpoints=...)")
    return cohort


def patient_centres(
    cohort: Any, centres: Mapping[str, Any] | None = None
) -> dict[str, str | None]:
    """Each patient's centre: from ``centres`` when given, else the cohort's.

    The cohort's centres come from a manifest's ``centre`` column or the patient id
    (:func:`hnprog.data.cohort.centre_from_id`: ``CHGJ007`` -> ``CHGJ``).

    Args:
        cohort: Cohort.
        centres: dict, optional. Patient id -> centre (e.g. a clinical file's ``CenterID``);
            it must cover every patient. Defaults to None.

    Returns:
        dict. Patient id -> centre name (str), None where unknown.

    Raises:
        InputError: if ``centres`` lacks patients of the cohort.
    """
    if centres is None:
        return {p.patient_id: p.centre for p in cohort}
    given = {str(k): v for k, v in centres.items()}
    missing = [i for i in cohort.ids if i not in given]
    if missing:
        raise InputError(f"the centres given lack {len(missing)} patients of the cohort, "
                         f"e.g. {missing[:5]}")
    return {i: None if given[i] is None else str(given[i]) for i in cohort.ids}


def centre_labels(centres: Mapping[str, str | None], ids: Sequence[str]) -> dict[str, int]:
    """Integer classes 0..K-1 of the training patients' centres (sorted centre names).

    Args:
        centres: dict. Patient id -> centre (:func:`patient_centres`).
        ids: sequence of str. The training patients.

    Returns:
        dict. Patient id -> class index.

    Raises:
        InputError: if a patient's centre is unknown, or the patients come from one centre
            only (nothing to be invariant to).
    """
    unknown = [i for i in ids if centres.get(i) is None]
    if unknown:
        raise InputError(
            f"the adversarial centre branch (adversarial_centres > 0) needs every training "
            f"patient's centre; {len(unknown)} have none, e.g. {unknown[:5]}. Give a manifest "
            "with a centre column, HECKTOR-style ids (CHGJ007) or a patient -> centre mapping"
        )
    names = sorted({centres[i] for i in ids})
    if len(names) < 2:
        raise InputError(
            f"the adversarial centre branch needs training patients from at least 2 centres; "
            f"all {len(ids)} are from {names[0]!r}. Set adversarial_centres=0"
        )
    index = {name: k for k, name in enumerate(names)}
    return {i: index[centres[i]] for i in ids}


def cohort_datasets(
    cohort: Any,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: TrainingConfig,
    *,
    cache_dir: str | Path | None = None,
    train: bool = True,
    centres: Mapping[str, Any] | None = None,
) -> tuple[keras.utils.PyDataset | None, keras.utils.PyDataset]:
    """Training and validation datasets of a cohort (:class:`hnprog.data.dataset.CohortDataset`).

    Both are prepared with ``config.preprocessing``. The training set is augmented and
    censoring-balanced (half events per epoch) as configured, seeded by ``config.seed``; the
    validation set is neither. With ``config.adversarial_centres > 0`` the training set also
    yields each patient's centre class (:func:`centre_labels`); its ``centre_labels``
    attribute gives the number of centres to :func:`~hnprog.training.fit.train_model`.

    Args:
        cohort: Cohort. Patients with masks and endpoints.
        train_ids: sequence of str. Training patients.
        val_ids: sequence of str. Validation (or test) patients.
        config: TrainingConfig.
        cache_dir: str or Path, optional. Case cache folder. Defaults to None.
        train: bool. Build the training dataset too (False returns ``(None, val)``).
            Defaults to True.
        centres: dict, optional. Patient id -> centre, replacing the cohort's
            (:func:`patient_centres`). Defaults to None.

    Returns:
        tuple ``(train_dataset, val_dataset)``.

    Raises:
        InputError: with the adversarial branch, on training patients without a centre or
            from one centre only.
    """
    from hnprog.data.dataset import CohortDataset

    common = {"config": config.preprocessing, "batch_size": config.batch_size,
              "cache_dir": cache_dir, "seed": config.seed, "n_jobs": config.n_jobs}
    train_ds = None
    if train:
        labels = None
        if config.adversarial_centres > 0:
            labels = centre_labels(patient_centres(cohort, centres), list(train_ids))
        train_ds = CohortDataset(
            cohort, list(train_ids), augment=config.augment, shuffle=True,
            event_fraction=0.5 if config.balance_events else None, centre_labels=labels,
            **common,
        )
    val_ds = CohortDataset(cohort, list(val_ids), **common)
    return train_ds, val_ds


def predict_dataset(
    model: keras.Model, dataset: keras.utils.PyDataset
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Risks and per-patient Dice of a dataset's patients, in dataset order.

    Returns:
        tuple ``(risk, dice)``: float arrays of shape ``(N,)`` (log-hazard, higher is worse;
        Dice of the 0.5-thresholded probability), each None when the model lacks that output.
    """
    collected = collect_predictions(model, dataset)
    dice = None if collected["dice"] is None else np.asarray(collected["dice"], dtype=float)
    return collected["risk"], dice


def training_baseline(
    model: keras.Model,
    cohort: Any,
    train_ids: Sequence[str],
    config: TrainingConfig,
    *,
    cache_dir: str | Path | None = None,
    clinical: pd.DataFrame | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The Breslow baseline cumulative hazard of a model's training patients (and, with a
    clinical table, their deep + clinical Cox model).

    The kept model predicts the training patients' risks once, without augmentation, and
    :func:`hnprog.survival.breslow_baseline` estimates the baseline from them and the
    patients' endpoints (days). The preset records it (``outputs.risk.baseline``) so that
    ``hnprog predict`` turns a risk into survival probabilities. With ``clinical``, the same
    risks and the patients' covariates fit
    :func:`hnprog.radiomics.clinical.fit_deep_clinical_model` (``outputs.risk.clinical``).

    Args:
        model: keras.Model. The trained model.
        cohort: Cohort. With endpoints.
        train_ids: sequence of str. The training patients.
        config: TrainingConfig. For the preprocessing and batch size.
        cache_dir: str or Path, optional. Case cache folder. Defaults to None.
        clinical: DataFrame, optional. :func:`hnprog.data.read_clinical`'s table holding the
            training patients. Defaults to None.

    Returns:
        tuple ``(baseline, clinical_model)``: dicts, each None for a model without a risk
        output or when the training risks are not finite (``clinical_model`` also without
        ``clinical``).
    """
    risk = training_risks(model, cohort, train_ids, config, cache_dir=cache_dir)
    if risk is None:
        return None, None
    return (baseline_of(cohort, train_ids, risk),
            None if clinical is None else clinical_model_of(cohort, train_ids, risk, clinical))


def clinical_model_of(cohort: Any, train_ids: Sequence[str], risk: np.ndarray,
                      clinical: pd.DataFrame) -> dict[str, Any]:
    """The deep + clinical Cox model
    (:func:`hnprog.radiomics.clinical.fit_deep_clinical_model`) of training patients with
    these risks (in the order of ``train_ids``), their covariates and endpoints."""
    from hnprog.radiomics.clinical import fit_deep_clinical_model

    y = cohort.survival_y()
    ends = pd.DataFrame({"event": y["event"], "time": y["time"]}, index=list(cohort.ids))
    return fit_deep_clinical_model(pd.Series(risk, index=list(train_ids)), clinical, ends)


def read_clinical_of(cohort: Any, clinical: str | Path | pd.DataFrame | None
                     ) -> pd.DataFrame | None:
    """The clinical table of a cohort's patients (:func:`hnprog.data.read_clinical`), or
    None; a table is used as it is.

    Raises:
        InputError: if the file is invalid or lacks one of the cohort's patients.
    """
    if clinical is None or isinstance(clinical, pd.DataFrame):
        return clinical
    from hnprog.data.clinical import read_clinical

    return read_clinical(clinical, ids=list(cohort.ids))


def training_risks(
    model: keras.Model,
    cohort: Any,
    train_ids: Sequence[str],
    config: TrainingConfig,
    *,
    cache_dir: str | Path | None = None,
) -> np.ndarray | None:
    """The model's risks (log-hazard, higher is worse) on its own training patients.

    One pass without augmentation, in the order of ``train_ids``.

    Returns:
        numpy.ndarray ``(len(train_ids),)`` or None for a model without a risk output or
        with non-finite risks.
    """
    if "risk" not in output_names(model):
        return None
    _, dataset = cohort_datasets(cohort, train_ids, train_ids, config, cache_dir=cache_dir,
                                 train=False)
    risk, _ = predict_dataset(model, dataset)
    if risk is None or not np.isfinite(risk).all():
        return None
    return np.asarray(risk, dtype=float)


def baseline_of(cohort: Any, train_ids: Sequence[str], risk: np.ndarray) -> dict[str, Any]:
    """The Breslow baseline (:func:`hnprog.survival.breslow_baseline`) of training patients
    with these risks (in the order of ``train_ids``) and their endpoints."""
    from hnprog.survival import breslow_baseline

    y = cohort.survival_y()
    index = {patient_id: i for i, patient_id in enumerate(cohort.ids)}
    rows = [index[patient_id] for patient_id in train_ids]
    return breslow_baseline(event=y["event"][rows], time=y["time"][rows], risk=risk)


def dataset_metadata(cohort: Any) -> dict[str, Any]:
    """The preset's ``dataset`` entry for a training cohort.

    The cohort folder's name names the data set; a folder holding the generator's
    ``truth.csv`` is labelled synthetic, so the card says the weights are for trying the tool
    only.
    """
    root = Path(cohort.root)
    return {"name": root.name, "id": root.name, "n_patients": len(cohort),
            "synthetic": (root / "truth.csv").is_file()}


def train_on_cohort(
    data: str | Path | Any,
    out_dir: str | Path,
    *,
    config: TrainingConfig | None = None,
    model: keras.Model | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int | str = "auto",
    centres: Mapping[str, Any] | None = None,
    clinical: str | Path | pd.DataFrame | None = None,
    endpoints: str | Path | pd.DataFrame | None = None,
    bboxes: str | Path | Mapping[str, Any] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Train on a whole cohort: a seeded, event-stratified 80/20 training/validation split.

    The run folder (see :mod:`hnprog.training.fit`) also holds ``split.json`` (the patients
    of each part) and ends with ``preset/``, named ``<task>_<run folder name>``.

    Args:
        data: str, Path or Cohort. A cohort folder or manifest (read with
            :func:`hnprog.data.cohort.read_cohort`), or a read ``Cohort``, with GTVt masks
            and endpoints.
        out_dir: str or Path. The run folder.
        config: TrainingConfig, optional. Defaults to ``TrainingConfig()`` (the paper).
        model: keras.Model, optional. Start from this model (fine-tuning). Defaults to a new
            one.
        cache_dir: str or Path, optional. Cache of cropped cases. Defaults to
            ``out_dir/cache``.
        resume: bool. Continue a killed run in ``out_dir`` from its last epoch (same settings
            only). Defaults to False.
        overwrite: bool. Replace an earlier run in ``out_dir``. Defaults to False.
        verbose: int or str. Keras ``fit`` verbosity. Defaults to ``"auto"``.
        centres: dict, optional. Patient id -> centre (a clinical file's ``CenterID``) for the
            adversarial centre branch; defaults to the cohort's (manifest column or patient
            id, :func:`patient_centres`).
        clinical: path or DataFrame, optional. The HECKTOR 2021 clinical file of the cohort
            (or :func:`hnprog.data.read_clinical`'s table): the preset also records a Cox
            model on the trained model's risk and the clinical covariates, fitted on the
            training patients' own risks (``hnprog predict --clinical``). Defaults to None.
        endpoints: path or DataFrame, optional. The endpoint CSV of a cohort folder or
            manifest (:func:`read_cohort_with_endpoints`). Defaults to the one found next to
            the data.
        bboxes: path or dict, optional. The HECKTOR box CSV. Defaults to the one found next
            to the data, else the automatic PET box.
        skip_bad: bool. Train without the patients that fail the input check
            (:func:`hnprog.training.precheck.precheck_cohort`), listed in the run folder's
            ``failures.csv``, instead of refusing the cohort. Defaults to False.
        progress: bool. Show the input check's progress bar. Defaults to True.

    Returns:
        TrainingResult. ``result.preset`` is the preset folder.

    Raises:
        InputError: before training and before any file is written, if the cohort has no
            endpoints, a part of the split holds no event, the batch size is larger than the
            training set, or (without ``skip_bad``) any patient fails the input check, every
            failed patient named.
    """
    from hnprog.splits import holdout_split

    config = config or TrainingConfig()
    cohort = read_cohort_with_endpoints(data, endpoints=endpoints, bboxes=bboxes)
    clinical_table = read_clinical_of(cohort, clinical)

    def split(cohort: Any) -> tuple[np.ndarray, np.ndarray]:
        y = cohort.survival_y()
        train_idx, val_idx = holdout_split(y["event"], val_fraction=config.val_fraction,
                                           seed=config.seed)
        check_training_set(len(train_idx), int(y["event"][train_idx].sum()),
                           config.batch_size, n_val=len(val_idx))
        return train_idx, val_idx

    train_idx, val_idx = split(cohort)  # the settings' errors first, before reading images
    out_dir = Path(out_dir)
    check_run_folder(out_dir, config, resume=resume, overwrite=overwrite)  # and the folder's
    checked = precheck_cohort(cohort, skip_bad=skip_bad, n_jobs=config.n_jobs,
                              progress=progress)
    if checked.failures:
        cohort = checked.cohort
        train_idx, val_idx = split(cohort)
    ids = np.asarray(cohort.ids)
    train_ds, val_ds = cohort_datasets(
        cohort, ids[train_idx], ids[val_idx], config,
        cache_dir=cache_dir if cache_dir is not None else out_dir / CACHE_DIR, centres=centres,
    )
    result = train_model(
        train_ds, val_ds, out_dir, config=config, model=model, resume=resume,
        overwrite=overwrite, verbose=verbose, export=False,
        failures=checked.failures if skip_bad else None,
    )
    write_json({"train": ids[train_idx].tolist(), "val": ids[val_idx].tolist()},
               out_dir / "split.json")
    baseline, clinical_model = training_baseline(
        result.model, cohort, ids[train_idx], config,
        cache_dir=cache_dir if cache_dir is not None else out_dir / "cache",
        clinical=clinical_table)
    export_preset(result, config, name=f"{config.task}_{out_dir.name}",
                  dataset=dataset_metadata(cohort), baseline=baseline,
                  clinical_model=clinical_model)
    return result
