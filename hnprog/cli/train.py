"""Training commands: ``hnprog train``, ``hnprog cv`` and ``hnprog finetune``."""

from __future__ import annotations

import os
import re
from typing import Any

import click

from hnprog.cli.common import echo_done, quiet_keras_start
from hnprog.cli.options import LibraryDefault, clinical_option, split_option, training_options
from hnprog.models.task import Task
from hnprog.training.config import FINETUNE_DEFAULTS

__all__ = ["COMMANDS", "cv_command", "finetune_command", "train_command"]

# The TrainingConfig fields that the training options set.
_TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "w_rad", "w_seg", "filters", "seed",
                  "n_jobs", "mixed_precision", "distribute")
_TRAINING_KEYS += ("loss_weighting", "adversarial_centres")


def _training_config(options: dict[str, Any], **defaults: Any) -> Any:
    """The TrainingConfig of the given options; unset ones keep ``defaults``, then the library's."""
    from hnprog.training.config import TrainingConfig, with_grid
    from hnprog.transforms import PreprocessConfig

    values = {**defaults, **{k: options[k] for k in _TRAINING_KEYS if options.get(k) is not None}}
    if not values.get("distribute"):
        values.pop("distribute", None)
    grid = PreprocessConfig.cpu() if options.get("cpu_preset") else PreprocessConfig()
    values["preprocessing"] = with_grid(grid, spacing=options.get("spacing"),
                                        crop_size=options.get("crop_size"))
    return TrainingConfig(**values)


def _cohort_files(options: dict[str, Any]) -> dict[str, Any]:
    """The cohort options, as the library's keywords (``endpoints``, ``bboxes``, ``skip_bad``)."""
    return {k: options.get(k) for k in ("endpoints", "bboxes")} | {
        "skip_bad": bool(options.get("skip_bad"))}


def _checked_before_keras(out_dir: str, resume: bool, overwrite: bool, marker: str,
                          options: dict[str, Any], **defaults: Any) -> Any:
    """The run's TrainingConfig, its settings and output folder checked, then Keras started.

    Both checks are cheap and need no backend, so a wrong option or folder is one line at
    once, not after the seconds TensorFlow takes to start. The folder is checked as the
    library checks it except for the settings of a resumed run, which the library compares.
    """
    from hnprog.errors import InputError
    from hnprog.training.folders import prepare_run_folder

    if resume and overwrite:
        raise click.UsageError("give either --resume or --overwrite, not both")
    try:
        config = _training_config(options, **defaults)
    except InputError as exc:  # a setting's error, in the options' names
        message = str(exc)
        for key in (*_TRAINING_KEYS, "n_folds", "spacing", "crop_size"):
            option = {"n_folds": "--folds", "n_jobs": "--jobs"}.get(
                key, "--" + key.replace("_", "-"))
            message = re.sub(rf"\b{key}\b", option, message)
        raise click.UsageError(message) from None
    prepare_run_folder(out_dir, None, resume=resume, overwrite=overwrite, marker=marker,
                       check_only=True)
    quiet_keras_start()
    return config


_PRESET_CLINICAL = ("the preset also records a Cox model on the image risk and age, T and N "
                    "stage, HPV, fitted on the training patients (hnprog predict --clinical).")


@click.command("train")
@training_options()
@clinical_option(_PRESET_CLINICAL)
def train_command(data: str, out_dir: str, resume: bool, overwrite: bool, clinical: str | None,
                  **options: Any) -> None:
    """Train the multi-task model on a cohort (80% training, 20% validation).

    \b
    Example:
      hnprog train data/ --out runs/mt --cpu --epochs 10
      hnprog train data/ --out runs/mt --cpu --clinical data/clinical.csv
    """
    from hnprog.training.folders import CONFIG_FILE

    config = _checked_before_keras(out_dir, resume, overwrite, CONFIG_FILE, options)
    from hnprog.training import train_on_cohort

    result = train_on_cohort(data, out_dir, config=config, resume=resume,
                             overwrite=overwrite, clinical=clinical, **_cohort_files(options))
    echo_done(f"Kept epoch {result.best_epoch}; preset in {os.path.join(out_dir, 'preset')}")


@click.command("cv")
@training_options()
@click.option("--tasks", "--settings", "tasks", default=",".join(t.value for t in Task),
              show_default=True,
              help="Comma-separated tasks (the paper's settings) and their loss weights (Cox, "
                   "Dice): " + ", ".join(f"{t.value} ({t.loss_weights[0]:g},"
                                         f"{t.loss_weights[1]:g})" for t in Task) + ".")
@click.option("--folds", type=int, default=LibraryDefault("hnprog.training.config:TrainingConfig",
                                                          "n_folds"),
              show_default=True, help="Cross-validation folds.")
@click.option("--radiomics-features", type=click.Path(exists=True, dir_okay=False),
              help="Handcrafted features CSV of the same cohort: adds the radiomics baseline row.")
@clinical_option("adds the rows 'clinical' (Cox on age, T and N stage, HPV) and 'deep "
                 "multi-task + clinical'; " + _PRESET_CLINICAL)
@split_option()
def cv_command(data: str, out_dir: str, resume: bool, overwrite: bool, tasks: str, folds: int,
               radiomics_features: str | None, clinical: str | None, split: str,
               **options: Any) -> None:
    """Cross-validate the paper's deep settings (Tables 1-2 format, KM plots, predictions).

    \b
    Example:
      hnprog cv data/ --out cv/ --cpu --epochs 10 --tasks multitask,radiomics
      hnprog cv data/ --out cv/ --cpu --tasks multitask --clinical data/clinical.csv
      hnprog cv data/ --out cv-loco/ --cpu --split centre --adversarial-centres 0.1
    """
    from hnprog.training.folders import CV_FILE

    config = _checked_before_keras(out_dir, resume, overwrite, CV_FILE, options, n_folds=folds)
    from hnprog.training import cross_validate

    result = cross_validate(
        data, out_dir, config=config,
        tasks=[t.strip() for t in tasks.split(",")],
        radiomics_features=radiomics_features, clinical=clinical, resume=resume,
        overwrite=overwrite, split=split, **_cohort_files(options),
    )
    with open(result.files["markdown"], encoding="utf-8") as f:
        click.echo(f.read())
    echo_done(f"Results in {out_dir}")


@click.command("finetune")
@training_options(finetune=True)
@click.option("--from", "source", required=True,
              help="A preset name, hf://org/repo, a preset folder or a run folder holding "
                   "preset/.")
@click.option("--freeze-encoder", is_flag=True, help="Train only the decoder and risk head.")
@clinical_option(_PRESET_CLINICAL)
def finetune_command(data: str, out_dir: str, resume: bool, overwrite: bool, source: str,
                     freeze_encoder: bool, clinical: str | None, **options: Any) -> None:
    """Fine-tune a saved model or preset on a cohort, keeping its preprocessing.

    Spacing and crop size come from the model's recorded preprocessing (--spacing, --crop-size
    and --cpu apply only to a .keras file saved without a preprocessing.json); the filters and
    precision are the model's own. The epochs and learning rate have fine-tuning's own defaults,
    smaller than training's (see the options).

    \b
    Example:
      hnprog finetune data/ --from runs/mt --out runs/ft --freeze-encoder
    """
    from hnprog.training.folders import CONFIG_FILE

    config = _checked_before_keras(out_dir, resume, overwrite, CONFIG_FILE, options,
                                   **FINETUNE_DEFAULTS)
    from hnprog.training import finetune

    result = finetune(data, out_dir, source=source, config=config, freeze=freeze_encoder,
                      resume=resume, overwrite=overwrite, clinical=clinical,
                      **_cohort_files(options))
    echo_done(f"Kept epoch {result.best_epoch}; preset in {os.path.join(out_dir, 'preset')}")


COMMANDS = (train_command, cv_command, finetune_command)
