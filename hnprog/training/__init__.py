"""Training, fine-tuning and cross-validation of the deep models (Andrearczyk et al., 2021).

- :mod:`hnprog.training.config`: :class:`TrainingConfig` (holding a
  :class:`~hnprog.transforms.PreprocessConfig`) and the task vocabulary
  :class:`~hnprog.models.task.Task`;
- :mod:`hnprog.training.fit`: build, compile, precision, distribution, :func:`train_model`
  and the run folder;
- :mod:`hnprog.training.callbacks`: whole-set validation metrics, epoch keeping, resuming;
- :mod:`hnprog.training.runs`: cohort datasets -> fit -> preset (:func:`train_on_cohort`);
- :mod:`hnprog.training.cv`: :func:`cross_validate`, the paper's protocol;
- :mod:`hnprog.training.finetuning`: :func:`finetune` a preset on a new cohort.

The names are imported lazily: ``hnprog.training.config`` (the settings and their defaults,
which the CLI's ``--help`` shows) loads without Keras.
"""

from __future__ import annotations

from hnprog._lazy import lazy_attributes

# public name -> module that defines it
_PUBLIC_API: dict[str, str] = {
    "CVResult": "hnprog.reporting",
    "FINETUNE_DEFAULTS": "hnprog.training.config",
    "ModelCache": "hnprog.training.fit",
    "Task": "hnprog.models.task",
    "TrainingConfig": "hnprog.training.config",
    "TrainingResult": "hnprog.training.fit",
    "build_model": "hnprog.training.fit",
    "compile_model": "hnprog.training.fit",
    "cross_validate": "hnprog.training.cv",
    "export_preset": "hnprog.training.fit",
    "finetune": "hnprog.training.finetuning",
    "freeze_encoder": "hnprog.training.finetuning",
    "load_start_model": "hnprog.training.finetuning",
    "train_model": "hnprog.training.fit",
    "train_on_cohort": "hnprog.training.runs",
}
# deprecated aliases, resolved (with a warning) for one release
_DEPRECATED: dict[str, str] = {"SETTINGS": "hnprog.training.config"}

__all__ = sorted(_PUBLIC_API)

__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC_API, hidden=_DEPRECATED)
