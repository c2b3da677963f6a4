"""Evaluation commands: ``hnprog evaluate`` and ``hnprog clinical cv``."""

from __future__ import annotations

from typing import Any

import click

from hnprog.cli.common import echo_done
from hnprog.cli.options import LibraryDefault, endpoints_option, out_option, parse_days

__all__ = ["COMMANDS", "clinical", "clinical_cv", "evaluate_command"]

_EVALUATE = "hnprog.evaluation:evaluate_survival"
_CLINICAL_CV = "hnprog.radiomics.clinical:run_clinical_cv"


@click.command("evaluate")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@endpoints_option(required=True, short=True)
@out_option("Output folder: metrics.json, metrics.md and the PNG plots.")
@click.option("--times", callback=parse_days, default=None,
              help="Days of the time-dependent AUC (and of the Brier score, from the "
                   "survival_<days>d columns), comma separated.  [default: the file's "
                   "survival_<days>d columns, else 365,730,1095,1825]")
@click.option("--cv-model", "model", default=None,
              help="The model to evaluate in a cross-validation's predictions.csv (its "
                   "'model' column, e.g. 'deep multi-task (1,1)').")
@click.option("--bootstrap", "n_bootstrap", default=LibraryDefault(_EVALUATE, "n_bootstrap"),
              show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples of the C-index's 95% interval (0: no interval).")
@click.option("--seed", default=LibraryDefault(_EVALUATE, "seed"), show_default=True,
              type=click.IntRange(min=0), help="Seed of the bootstrap.")
@click.option("--pooled-only", is_flag=True,
              help="No per-centre rows (by default the centre is the letters of HECKTOR ids, "
                   "e.g. CHGJ for CHGJ007).")
def evaluate_command(predictions: str, endpoints: str, out_dir: str, times: Any,
                     model: str | None, n_bootstrap: int, seed: int, pooled_only: bool) -> None:
    """Score predicted risks (and survival probabilities) against the endpoints.

    PREDICTIONS is hnprog predict's or cv's predictions.csv (patient_id, risk; higher is
    worse; with survival_<days>d columns when the presets record a baseline) or the HECKTOR
    challenge's PatientID,Prediction file. Writes to OUT: metrics.json and metrics.md with,
    pooled and per centre, Harrell's C with a bootstrap 95% CI, Uno's C, the time-dependent
    AUC, the integrated Brier score, the 2-year calibration by risk quintile and the log-rank
    p of the risk groups (scikit-survival's estimators); kaplan_meier.png, calibration.png
    and forest_c_index.png. For a HECKTOR file, metrics.json also holds the challenge's own
    C-index (patients missing from the file count as non-concordant).

    \b
    Examples:
      hnprog evaluate predictions/predictions.csv -e endpoints.csv -o evaluation/
      hnprog evaluate cv/predictions.csv -e endpoints.csv -o eval/ \\
          --cv-model "deep multi-task (1,1)"
      hnprog evaluate hecktor_submission.csv -e hecktor2021_endpoints.csv -o eval/
    """
    import numpy as np

    from hnprog.data.cohort import centre_from_id, read_endpoints
    from hnprog.evaluation import (hecktor_concordance, predictions_table_metrics,
                                   read_predictions, write_evaluation)
    from hnprog.io import write_json

    table = read_predictions(predictions, model=model)
    outcomes = read_endpoints(endpoints)
    centres = None if pooled_only else [centre_from_id(p) or "unknown" for p in table["patient_id"]]
    result, joined = predictions_table_metrics(table, outcomes, centres=centres, times=times,
                                               n_bootstrap=n_bootstrap, seed=seed)
    if table.attrs.get("format") == "hecktor":
        risk = table.set_index("patient_id")["risk"].reindex(outcomes.index)
        result["hecktor_c_index"] = hecktor_concordance(
            event=outcomes["event"].to_numpy(), time=outcomes["time"].to_numpy(),
            prediction=risk.to_numpy(float))
        result["hecktor_missing_patients"] = [str(p) for p in risk.index[np.isnan(risk)]]
    title = f"Evaluation of {model}" if model else "Evaluation"
    files = write_evaluation(result, out_dir, event=joined["event"], time=joined["time"],
                             risk=joined["risk"],
                             risk_group=joined["risk_group"] if "risk_group" in joined else None,
                             title=title)
    if "hecktor_c_index" in result:
        write_json(result, files["json"])
    pooled = result["pooled"]
    ci = pooled["harrell_c_ci95"]
    interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    c = "n/a" if pooled["harrell_c"] is None else f"{pooled['harrell_c']:.3f}"
    echo_done(f"{pooled['n']} patients, {pooled['n_events']} events: Harrell's C {c}{interval}; "
              f"report in {files['markdown']}")


@click.group()
def clinical() -> None:
    """Clinical covariates (the HECKTOR 2021 clinical file): a clinical-only Cox model."""


@clinical.command("cv")
@click.argument("clinical_file", metavar="CLINICAL", type=click.Path(exists=True, dir_okay=False))
@endpoints_option(required=True, short=True)
@out_option("Output folder for the report.")
@click.option("--covariates", default=None,
              help="Comma-separated covariates: columns of the typed clinical table (age, "
                   "t_stage, n_stage, m_stage, male, tobacco, alcohol, performance_status, "
                   "chemotherapy, weight_kg) or hpv_positive, hpv_unknown.  "
                   "[default: age,t_stage,n_stage,hpv_positive,hpv_unknown]")
@click.option("--folds", default=LibraryDefault(_CLINICAL_CV, "n_folds"), show_default=True,
              type=click.IntRange(min=2), help="Cross-validation folds.")
@click.option("--val-fraction", default=LibraryDefault(_CLINICAL_CV, "val_fraction"),
              show_default=True, type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Validation share of the non-test patients (chooses the ridge penalty).")
@click.option("--seed", default=LibraryDefault(_CLINICAL_CV, "seed"), show_default=True,
              type=int, help="Seed of the splits (the same seed gives radiomics cv's splits).")
@click.option("--by-centre", is_flag=True,
              help="Also stratify the splits by centre (the letters of HECKTOR ids).")
def clinical_cv(clinical_file: str, endpoints: str, out_dir: str, covariates: str | None,
                folds: int, val_fraction: float, seed: int, by_centre: bool) -> None:
    """Cross-validate a clinical-only Cox model under the radiomics baseline's fold protocol.

    CLINICAL is the HECKTOR 2021 clinical file (PatientID, CenterID, Gender, Age, ...,
    T-stage, N-stage, HPV status, ...; empty cells allowed, an unknown HPV status is its own
    level). Each fold fits the Cox model on its training patients, chooses the ridge penalty
    on its validation patients and scores the test patients. Writes results.{md,csv,json},
    results_per_fold.csv, predictions.csv and kaplan_meier.png to OUT.

    \b
    Example:
      hnprog clinical cv hecktor2021_patient_info_training.csv -e endpoints.csv -o cv_clinical/
    """
    from hnprog.data.clinical import DEFAULT_COVARIATES, read_clinical
    from hnprog.data.cohort import centre_from_id, read_endpoints
    from hnprog.radiomics.clinical import run_clinical_cv

    outcomes = read_endpoints(endpoints)
    table = read_clinical(clinical_file, ids=list(outcomes.index))
    chosen = (DEFAULT_COVARIATES if covariates is None
              else tuple(c.strip() for c in covariates.split(",") if c.strip()))
    groups = ({pid: centre_from_id(pid) or "unknown" for pid in outcomes.index}
              if by_centre else None)
    result = run_clinical_cv(table, outcomes, out_dir, covariates=chosen, n_folds=folds,
                             val_fraction=val_fraction, seed=seed, groups=groups)
    echo_done(f"clinical Cox ({', '.join(chosen)}): test C-index {result.c_index_mean:.3f} ± "
              f"{result.c_index_se:.3f} over {folds} folds -> {result.files['markdown']}")


COMMANDS = (evaluate_command, clinical)
