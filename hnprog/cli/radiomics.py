"""Radiomics commands: ``hnprog radiomics extract`` and ``hnprog radiomics cv``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hnprog.cli.common import echo_done
from hnprog.cli.options import (
    LibraryDefault,
    data_argument,
    endpoints_option,
    jobs_option,
    out_option,
    quiet_option,
    scheduler_option,
    split_option,
)

__all__ = ["COMMANDS", "radiomics", "radiomics_cv", "radiomics_extract"]

_EXTRACT = "hnprog.radiomics.cohort:extract_cohort_features"
_CV = "hnprog.radiomics.cv:run_radiomics_cv"


@click.group()
def radiomics() -> None:
    """Handcrafted radiomics baseline: the paper's 274 PyRadiomics features (plus 6 native-grid
    PET measures: SUVmax, SUVpeak, MTV, TLG) and a Cox model."""


@radiomics.command("extract")
@data_argument()
@out_option("Features CSV to write (one row per patient).", file=True)
@jobs_option("Patients extracted in parallel (worker processes).",
             default=LibraryDefault(_EXTRACT, "n_jobs"))
@click.option("--params", type=click.Path(exists=True, dir_okay=False), default=None,
              help="hnprog radiomics params YAML. [default: 274 + 6 native PET]")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Per-patient cache folder. [default: .radiomics_cache next to --out]")
@click.option("--failures", type=click.Path(dir_okay=False), default=None,
              help="CSV of failed patients and reasons. [default: <--out stem>_failures.csv "
                   "next to --out, e.g. features_failures.csv]")
@quiet_option()
@scheduler_option()
def radiomics_extract(data: str, out: str, n_jobs: int, params: str | None, cache_dir: str | None,
                      failures: str | None, quiet: bool, executor: Any) -> None:
    """Extract radiomics features inside the GTVt of every patient of DATA.

    DATA is a cohort folder (HECKTOR 2020/2021/2022, nnU-Net or DICOM) or a CSV manifest.
    CT and PET are cropped around the mask and resampled to 2 mm; patients that fail are listed with
    their reason in the failures CSV and the others complete. An interrupted run resumes from
    the per-patient cache.

    \b
    Example:
      hnprog radiomics extract hecktor2021/train --out features.csv --jobs 4
    """
    from hnprog.data.cohort import read_cohort
    from hnprog.radiomics.cohort import default_failures_path, extract_cohort_features

    cohort = read_cohort(data)
    failures_path = Path(failures) if failures else default_failures_path(out)
    table = extract_cohort_features(cohort, out, params=params, n_jobs=n_jobs, cache_dir=cache_dir,
                                    failures=failures_path, progress=not quiet,
                                    executor=executor)
    n_failed = len(cohort) - len(table)
    note = f"; {n_failed} failed, reasons in {failures_path}" if n_failed else ""
    patients = f"{len(table)} patient" + ("" if len(table) == 1 else "s")
    echo_done(f"{patients} x {table.shape[1]} features -> {out}{note}")


@radiomics.command("cv")
@click.argument("features", type=click.Path(exists=True, dir_okay=False))
@endpoints_option(required=True, short=True)
@out_option("Output folder for the report.")
@click.option("--folds", default=LibraryDefault(_CV, "n_folds"), show_default=True,
              type=click.IntRange(min=2),
              help="Cross-validation folds; each tests on 1/FOLDS of the patients.")
@click.option("--val-fraction", default=LibraryDefault(_CV, "val_fraction"), show_default=True,
              type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Validation share of the non-test patients.")
@click.option("--seed", default=LibraryDefault(_CV, "seed"), show_default=True, type=int,
              help="Seed of the splits.")
@click.option("--by-centre", is_flag=True,
              help="Also stratify the splits by centre (the letters of HECKTOR ids, e.g. CHGJ).")
@click.option("--drop-constant", is_flag=True, help="Ignore constant features instead of failing.")
@split_option()
def radiomics_cv(features: str, endpoints: str, out_dir: str, folds: int, val_fraction: float,
                 seed: int, by_centre: bool, drop_constant: bool, split: str) -> None:
    """Cross-validate the radiomics baseline on a features CSV.

    Each fold holds out 1/FOLDS of the patients for testing and splits the rest into training
    and validation (--val-fraction), stratified by event. Features are ranked by univariate
    C-index and filtered by correlation on the validation data; a Cox model is fitted on the
    training data. Writes results.{md,csv,json} (mean ± standard error, as the paper's
    Table 1), results_per_fold.csv, predictions.csv and kaplan_meier.png to OUT.

    \b
    Example:
      hnprog radiomics cv features.csv --endpoints endpoints.csv --out cv_radiomics/
      hnprog radiomics cv features.csv -e endpoints.csv --out loco/ --split centre
    """
    from hnprog.data.cohort import centre_from_id, read_endpoints
    from hnprog.radiomics.cv import run_radiomics_cv
    from hnprog.radiomics.cohort import read_features

    table = read_features(features)
    outcomes = read_endpoints(endpoints)
    unmatched = [pid for pid in table.index if pid not in outcomes.index]
    if unmatched:
        click.echo(f"Note: {len(unmatched)} patients of {features} have no endpoint and are left "
                   f"out (e.g. {unmatched[:3]})", err=True)
    groups = ({pid: centre_from_id(pid) for pid in table.index} if split == "centre"
              else {pid: centre_from_id(pid) or "unknown" for pid in table.index} if by_centre
              else None)
    result = run_radiomics_cv(table, outcomes, out_dir=out_dir, n_folds=folds,
                              val_fraction=val_fraction, seed=seed, groups=groups,
                              drop_constant=drop_constant, split=split)
    echo_done(
        f"test C-index {result.c_index_mean:.3f} ± {result.c_index_se:.3f} over "
        f"{len(result.per_fold)} folds "
        f"({len(result.predictions)} patients) -> {result.files['markdown']}"
    )


COMMANDS = (radiomics,)
