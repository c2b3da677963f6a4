"""``hnprog demo``: the whole method on the embedded synthetic cohort, in minutes on a CPU.

1. Generate a synthetic PET/CT cohort of held-out patients (known true risk).
2. Take the multi-task model: the shipped synthetic-data fold presets (an ensemble), or, with
   ``train=True``, a fast model trained here on a separate synthetic cohort.
3. Predict the held-out patients from their CT and PET alone (no contour).
4. Score the risks (C-index) and contours (Dice) next to the generator's oracle C-index.
5. Write the Kaplan-Meier plot and the overlays, and say where everything is.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hnprog.errors import InputError, warn_deprecated
from hnprog.io import atomic_write, write_json

__all__ = ["DEFAULT_DEMO_MODEL", "run_demo"]

DEFAULT_DEMO_MODEL = "unet3d_multitask_synthetic_petct"


def run_demo(
    out_dir: str | os.PathLike = "hnprog-demo",
    *,
    n_patients: int = 24,
    seed: int = 7,
    model: str | None = None,
    train: bool = False,
    train_patients: int = 40,
    epochs: int = 8,
    n_jobs: int = 2,
    image_scale: float = 1.0,
    echo: Callable[[str], Any] = print,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Run the demo end to end and return its summary.

    Args:
        out_dir: str or PathLike. Output folder. Defaults to ``"hnprog-demo"``.
        n_patients: int. Held-out synthetic patients to predict. Defaults to 24.
        seed: int. Seed of the held-out cohort (the shipped presets were trained on seed
            2026). Defaults to 7.
        model: str, optional. A preset name, folder or ``hf://`` URI to use instead of the
            shipped synthetic presets. Defaults to None.
        train: bool. Train a fast multi-task model here instead of using a preset.
            Defaults to False.
        train_patients: int. Training cohort size with ``train``. Defaults to 40.
        epochs: int. Training epochs with ``train``. Defaults to 8.
        n_jobs: int. Processes generating the cohorts. Defaults to 2.
        image_scale: float. Voxels per axis of the generated scans, relative to full size
            (see :func:`hnprog.data.synthetic.generate_cohort`). Defaults to 1.0.
        echo: callable. Where progress lines go. Defaults to :func:`print`.
        jobs: int, optional. Deprecated alias of ``n_jobs``.

    Returns:
        dict. ``c_index``, ``dice``, ``oracle_c_index``, ``log_rank_p``, counts, model and
        the output files (also written to ``summary.json``).

    Raises:
        InputError: on a cohort too small to score, or an unknown model.
    """
    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort, oracle_cindex, read_truth
    from hnprog.predict import load_predictor, predict_cohort
    from hnprog.reporting import plot_kaplan_meier

    if jobs is not None:
        warn_deprecated("run_demo(jobs=...)", "n_jobs=...")
        n_jobs = jobs
    if n_patients < 4:
        raise InputError(f"the demo needs at least 4 patients. Received: n_patients={n_patients}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    echo(f"[1/4] Generating {n_patients} synthetic PET/CT patients (seed {seed}) ...")
    data_dir = generate_cohort(out_dir / "data", n_patients=n_patients, seed=seed,
                               n_jobs=n_jobs, image_scale=image_scale, progress=True)

    if train:
        model_source = _train_fast_model(out_dir, train_patients, epochs, n_jobs, echo)
    else:
        model_source = model or DEFAULT_DEMO_MODEL
        echo(f"[2/4] Loading the multi-task model {model_source} "
             "(synthetic-data weights, for trying the tool, never for patients) ...")
    predictor = load_predictor(model_source)

    echo("[3/4] Predicting risk and tumour contour from CT and PET alone ...")
    cohort = read_cohort(data_dir, bboxes={})  # no given boxes: the automatic PET box
    predictions, failures, metrics = predict_cohort(cohort, predictor, out_dir / "predictions",
                                                    resume=False)
    if len(failures):
        echo(f"      {len(failures)} patients failed; see {out_dir / 'predictions' / 'failures.csv'}")

    echo("[4/4] Scoring ...")
    truth = read_truth(data_dir).loc[predictions["patient_id"]]
    km_path = out_dir / "kaplan_meier.png"
    log_rank_p = plot_kaplan_meier(
        event=truth["event"].to_numpy().astype(bool), time=truth["time"].to_numpy(),
        risk=predictions["risk"].to_numpy(), path=km_path,
        title="Held-out synthetic patients, split at the median predicted risk",
    )
    summary = {
        "patients": int(len(predictions)),
        "events": int(truth["event"].sum()),
        "c_index": metrics.get("c_index"),
        "oracle_c_index": float(oracle_cindex(truth)),
        "dice": metrics.get("dice_mean"),
        "log_rank_p": float(log_rank_p),
        "model": str(model_source),
        "seconds": round(time.perf_counter() - start, 1),
        "files": {
            "predictions": str(out_dir / "predictions" / "predictions.csv"),
            "kaplan_meier": str(km_path),
            "overlays": str(out_dir / "predictions" / "<ID>" / "overlay.png"),
            "data": str(data_dir),
        },
    }
    evaluation = out_dir / "predictions" / "evaluation" / "metrics.json"
    if evaluation.is_file():  # predict evaluated the cohort: its groups are the models' own
        pooled = json.loads(evaluation.read_text())["pooled"]
        summary["threshold_log_rank_p"] = pooled.get("log_rank_p")
        summary["threshold_split"] = pooled.get("risk_groups")
        summary["files"]["evaluation"] = str(evaluation.with_name("metrics.md"))
    write_json(summary, out_dir / "summary.json")
    table = _summary_table(summary)
    with atomic_write(out_dir / "summary.md") as f:
        f.write(table)
    echo("")
    echo(table)
    return summary


def _train_fast_model(out_dir: Path, n_patients: int, epochs: int, n_jobs: int,
                      echo: Callable[[str], Any]) -> Path:
    from hnprog.data.synthetic import generate_cohort
    from hnprog.training import TrainingConfig, train_on_cohort
    from hnprog.transforms import PreprocessConfig

    echo(f"[2/4] Training a fast multi-task model on {n_patients} other synthetic patients "
         f"({epochs} epochs, 3 mm voxels, 48^3 input) ...")
    train_dir = generate_cohort(out_dir / "train-data", n_patients=n_patients, seed=2026,
                                censoring=0.7, n_jobs=n_jobs, progress=True)
    config = TrainingConfig(epochs=epochs, batch_size=8, filters=(4, 8, 16, 32, 64),
                            preprocessing=PreprocessConfig(spacing=3.0, crop_size=48))
    result = train_on_cohort(train_dir, out_dir / "model", config=config, overwrite=True,
                             verbose=1)
    return result.preset


def _summary_table(summary: dict[str, Any]) -> str:
    def number(value: Any) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"

    lines = [
        f"hnprog demo: {summary['patients']} held-out synthetic patients, "
        f"{summary['events']} events",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| C-index of the predicted risk | {number(summary['c_index'])} |",
        f"| C-index of the true risk (oracle, the best possible here) | "
        f"{number(summary['oracle_c_index'])} |",
        f"| mean Dice of the predicted GTVt | {number(summary['dice'])} |",
        f"| log-rank p, halves at the median predicted risk | {number(summary['log_rank_p'])} |",
        *([f"| log-rank p, groups at {summary['threshold_split']} (as for a new patient) | "
           f"{number(summary['threshold_log_rank_p'])} |"]
          if summary.get("threshold_split") else []),
        "",
        f"Model: {summary['model']}",
        *(["(small CPU models trained on synthetic data, far from the paper's recipe: see "
           "docs/results.md for the numbers to expect and how to do better)"]
          if str(summary["model"]) == DEFAULT_DEMO_MODEL else []),
        f"Kaplan-Meier plot: {summary['files']['kaplan_meier']}",
        f"Per-patient risk, contours and overlays: {summary['files']['overlays']}",
        f"All predictions: {summary['files']['predictions']}",
        *([f"Full evaluation (Uno's C, AUC, Brier score, calibration, per centre): "
           f"{summary['files']['evaluation']}"] if "evaluation" in summary["files"] else []),
        f"Done in {summary['seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)
