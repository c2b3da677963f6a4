"""Presets: save a trained model with everything needed to use it, and load it back safely.

A preset is a folder, the same on disk, inside the package and on the Hugging Face Hub
(the file table is in :mod:`hnprog.presets.format`):

| file | content |
| --- | --- |
| `config.json` | the Keras 3 architecture |
| `model.weights.h5` | the weights |
| `README.md` | the model card |
| `hnprog.json` | what the weights expect and return, how they were trained, and the sha256 of every other file |

The package is layered like keras-hub's ``preset_utils``: every file name and check sits in
one module at the bottom, which everything else imports.

| module | holds | imports from the package |
| --- | --- | --- |
| `format` | file names, ``FORMAT_VERSION``, ``sha256_file``, ``hnprog.json`` parsing, ``verify_preset``, the class allow-list, the stay-inside-the-folder checks, ``write_metadata`` | nothing |
| `preset` | ``Preset`` and the ``Predictor`` protocol | nothing |
| `ensemble` | ``FoldEnsemble`` | preset |
| `hub` | ``hf://`` URIs, downloads into the Hugging Face cache, ``upload_preset`` | format |
| `registry` | ``registry.json``: ``load_registry``, ``list_presets``, families | format, hub |
| `cards` | model cards (``README.md``) | format |
| `save` | ``save_to_preset`` and the typed preprocessing record | format, preset, cards |
| `exported` | ``ExportedPreset`` (OpenVINO or ONNX Runtime), ``load_exported``, ``choose_runtime`` | format, preset |
| `loading` | ``resolve``, ``from_preset``, ``download_preset``, ``load_preset_folder`` | all but save, cards and export |
| `export` | ``export_runtime``: OpenVINO and ONNX exports in a preset folder | format, preset, exported, loading |

:func:`from_preset` accepts a registered name (:func:`list_presets`), an
``hf://org/repo[@revision]`` URI, a local folder, a family name whose members are
``<family>_fold<k>``, or a list of any of these (the last two give a :class:`FoldEnsemble`).
It checks every file's sha256 (each file once) before building anything, rejects a
``config.json`` that names classes outside Keras and hnprog, and builds the model with Keras'
safe mode. Nothing is unpickled.

Registered presets live in ``hnprog/presets/registry.json``; each pins a full 40-hex Hub
commit (or a folder shipped inside the package) and the sha256 of every file. The registry
lists only weights that exist.

Example:
    >>> import hnprog
    >>> preset = hnprog.from_preset("unet3d_multitask_synthetic_petct_fold1")  # doctest: +SKIP
    >>> config = hnprog.PreprocessConfig.from_recorded(preset.preprocessing)  # doctest: +SKIP
"""

import warnings
from typing import Any

from hnprog.presets.cards import card_run, make_model_card, render_card, write_card
from hnprog.presets.ensemble import FoldEnsemble
from hnprog.presets.export import export_runtime
from hnprog.presets.exported import ExportedPreset
from hnprog.presets.format import (
    CARD_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    METADATA_FILE,
    WEIGHTS_FILE,
    check_config_classes,
    read_metadata,
    read_preset,
    sha256_file,
    verify_preset,
    write_metadata,
)
from hnprog.presets.hub import (
    HF_SCHEME,
    HubReference,
    download_preset_files,
    parse_hf_uri,
    upload_preset,
    validate_repo_id,
    validate_revision,
)
from hnprog.presets.loading import (
    download_preset,
    from_preset,
    load_preset_folder,
    resolve,
)
from hnprog.presets.preset import Predictor, Preset
from hnprog.presets.registry import (
    REGISTRY_PATH,
    family_members,
    list_families,
    list_presets,
    load_registry,
)
from hnprog.presets.save import (
    INTENDED_USE,
    RISK_MEANING,
    SEGMENTATION_MEANING,
    preprocessing_record,
    save_to_preset,
)

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "HF_SCHEME",
    "INTENDED_USE",
    "METADATA_FILE",
    "REGISTRY_PATH",
    "RISK_MEANING",
    "SEGMENTATION_MEANING",
    "WEIGHTS_FILE",
    "ExportedPreset",
    "FoldEnsemble",
    "HubReference",
    "Predictor",
    "Preset",
    "card_run",
    "check_config_classes",
    "download_preset",
    "download_preset_files",
    "export_runtime",
    "family_members",
    "from_preset",
    "list_families",
    "list_presets",
    "load_preset_folder",
    "load_registry",
    "make_model_card",
    "parse_hf_uri",
    "preprocessing_record",
    "read_metadata",
    "read_preset",
    "render_card",
    "resolve",
    "save_to_preset",
    "sha256_file",
    "upload_preset",
    "validate_repo_id",
    "validate_revision",
    "verify_preset",
    "write_card",
    "write_metadata",
]


def __getattr__(name: str) -> Any:
    if name == "TASKS":  # deprecated alias, kept for one release
        from hnprog.models.task import Task

        warnings.warn("hnprog.presets.TASKS is deprecated; use hnprog.models.task.Task "
                      "(a str enum: [t.value for t in Task]).", DeprecationWarning, stacklevel=2)
        return tuple(task.value for task in Task)
    raise AttributeError(f"module 'hnprog.presets' has no attribute {name!r}")
