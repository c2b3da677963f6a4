"""The input check of a training cohort, before any training and any file of the run folder.

A bad file (a 0-byte CT, a truncated PET, a mask with stray labels) used to stop a run late,
when the data loader first reached that patient, naming only it. :func:`precheck_cohort`
reads every patient once with the one loader (:func:`hnprog.data.loading.load_case`, so the
same checks in the same order as training), through the one cohort runner
(:func:`hnprog.data.runner.run_cohort`: progress bar, ``n_jobs``), and collects every
failure. Then either

- it refuses the cohort with one :class:`~hnprog.errors.InputError` naming every failed
  patient and its reason (nothing is written), or
- with ``skip_bad=True`` (``--skip-bad``) it drops them and returns the failures, which the
  run writes to its ``failures.csv`` (:data:`hnprog.data.runner.FAILURES_FILE`) once the run
  folder is prepared. A cohort left with too few patients for the split is refused by
  :func:`hnprog.training.runs.check_training_set` as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hnprog.errors import InputError

__all__ = ["PrecheckResult", "check_patient", "precheck_cohort"]


@dataclass
class PrecheckResult:
    """What :func:`precheck_cohort` found.

    Args:
        cohort: Cohort. The patients that passed (all of them unless ``skip_bad``).
        failures: dict of patient id to the reason it failed, in cohort order.
        seconds: float. Wall time of the check.
    """

    cohort: Any
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def check_patient(patient: Any, bboxes: Mapping[str, Any], with_mask: bool = True) -> bool:
    """Read and check one patient as training will (:func:`hnprog.data.loading.load_case`).

    Returns:
        bool. True; a failure raises the loader's PatientError.
    """
    from hnprog.data.loading import load_case

    load_case(patient, bboxes.get(patient.patient_id), with_mask=with_mask)
    return True


def _listing(failures: Mapping[str, str]) -> str:
    return "; ".join(f"{pid}: {reason}" for pid, reason in failures.items())


def precheck_cohort(
    cohort: Any,
    *,
    skip_bad: bool = False,
    with_mask: bool = True,
    n_jobs: int = 1,
    progress: bool = True,
) -> PrecheckResult:
    """Check every patient of a training cohort before training; refuse or drop the bad ones.

    Args:
        cohort: Cohort. The training cohort (its boxes are used as training uses them).
        skip_bad: bool. Drop the patients that fail instead of refusing the cohort.
            Defaults to False.
        with_mask: bool. Also read and check the GTVt masks. Defaults to True.
        n_jobs: int. Worker processes of :func:`~hnprog.data.runner.run_cohort`.
            Defaults to 1.
        progress: bool. Show a progress bar. Defaults to True.

    Returns:
        PrecheckResult. The cohort of the patients that passed and the failures.

    Raises:
        InputError: without ``skip_bad``, if any patient fails, listing every failed patient
            and its reason; with it, if no patient passes.
    """
    from hnprog.data.runner import run_cohort

    run = run_cohort(
        cohort.patients,
        functools.partial(check_patient, bboxes=dict(cohort.bboxes), with_mask=with_mask),
        n_jobs=n_jobs, progress=progress, desc="checking patients",
    )
    failures = dict(run.failures)
    if failures and not skip_bad:
        raise InputError(
            f"{len(failures)} of {len(cohort)} patients fail the input checks, so nothing was "
            f"trained or written: {_listing(failures)}. Fix or remove these files, or pass "
            "--skip-bad (skip_bad=True) to train without these patients (listed in the run "
            "folder's failures.csv)"
        )
    if len(failures) == len(cohort):
        raise InputError(f"all {len(cohort)} patients fail the input checks: "
                         f"{_listing(failures)}")
    kept = cohort if not failures else cohort.subset(
        [pid for pid in cohort.ids if pid not in failures])
    return PrecheckResult(kept, failures, run.seconds)
