"""Run folders: what may receive a training or cross-validation run, checked without Keras.

A run folder is new or empty, or holds an earlier run (its marker file, ``config.json`` for
a training and ``cv.json`` for a cross-validation) that ``resume`` continues or ``overwrite``
replaces; a folder holding anything else is refused. This module imports neither Keras nor
TensorFlow, so the command line refuses a wrong folder before the backend starts.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hnprog.errors import InputError, counted
from hnprog.io import (RUN_MANIFEST, remove_stale_temp_files, remove_written_files,
                       start_run_manifest, written_files)
from hnprog.training.config import TrainingConfig

__all__ = ["CACHE_DIR", "CONFIG_FILE", "CV_FILE", "check_run_folder", "prepare_run_folder"]

CONFIG_FILE = "config.json"  # a training run's marker: its fingerprint and settings
CV_FILE = "cv.json"  # a cross-validation's marker
CACHE_DIR = "cache"  # the preprocessed-case cache that runs keep in their folder by default


def prepare_run_folder(
    out_dir: str | Path,
    fingerprint: dict[str, Any] | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    marker: str = CONFIG_FILE,
    stored_fingerprint: Callable[[dict[str, Any]], Any] | None = None,
    check_only: bool = False,
) -> bool:
    """Check that ``out_dir`` may receive this run; clear it on ``overwrite``.

    Args:
        out_dir: str or Path. The run folder.
        fingerprint: dict. The settings of this run, compared with the fingerprint stored in
            ``marker``.
        resume: bool. Continue a run with the same settings. Defaults to False.
        overwrite: bool. Delete the files an earlier run wrote, as its ``.hnprog-files``
            lists them (:func:`hnprog.io.remove_written_files`; the ``cache/`` folder stays,
            it is keyed by content), and the folders that leaves empty; a user's file is
            kept, with a warning. A run without that list (an earlier hnprog version) is
            refused rather than guessed at. Defaults to False.
        marker: str. File that marks a run folder. Defaults to ``"config.json"``.
        stored_fingerprint: callable, optional. Reads the fingerprint from the marker's JSON
            in the current vocabulary, so that runs written by older versions resume.
            Defaults to the marker's ``"fingerprint"`` entry.
        check_only: bool. Only check, changing nothing (``overwrite`` deletes nothing), so a
            run can refuse its folder before its slow checks (the input check of
            :mod:`hnprog.training.precheck`) and prepare it after them. A ``fingerprint`` of
            None is then not compared. Defaults to False.

    Returns:
        bool. True when an earlier run with the same settings is to be continued.

    Raises:
        InputError: if the folder is not empty but holds no run (whatever the flags: hnprog
            never writes into or deletes from a folder of other files), if it holds a run
            and neither flag is given, if ``resume`` is given for a run with different
            settings, or if both flags are given.
    """
    if resume and overwrite:
        raise InputError("give either resume or overwrite, not both")
    out_dir = Path(out_dir)
    marker_path = out_dir / marker
    if not marker_path.is_file():
        others = sorted(p.name for p in out_dir.iterdir()
                        if p.name not in (CACHE_DIR, RUN_MANIFEST)) if out_dir.is_dir() else []
        if others:
            raise InputError(
                f"output folder {out_dir} is not empty "
                f"({counted(len(others), 'entry', 'entries')}, e.g. "
                f"{others[:3]}) and holds no hnprog run ({marker}); hnprog does not write "
                "into or delete from such a folder. Choose a new or empty folder")
        if not check_only:
            start_run_manifest(out_dir)
        return False
    if overwrite:
        if check_only:
            written_files(out_dir)  # refuses a run that does not list its files
            return False
        kept = remove_written_files(out_dir, keep=(CACHE_DIR,))
        if kept:
            warnings.warn(f"--overwrite kept {len(kept)} files that the run did not write in "
                          f"{out_dir} (yours, or another command's outputs such as "
                          f"predictions), e.g. {kept[:3]}", UserWarning, stacklevel=2)
        return False
    if not resume:
        raise InputError(
            f"output folder {out_dir} already holds a run ({marker}); pass --resume to continue "
            "it or --overwrite to replace it, or choose another folder"
        )
    if check_only and fingerprint is None:
        return True
    try:
        document = json.loads(marker_path.read_text())
        stored = (stored_fingerprint or (lambda doc: doc.get("fingerprint")))(document)
    except (json.JSONDecodeError, InputError, AttributeError, KeyError, TypeError):
        stored = None
    stored = json.loads(json.dumps(stored or {}))
    expected = json.loads(json.dumps(fingerprint))
    if stored != expected:
        changed = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise InputError(
            f"output folder {out_dir} holds a different run (settings differ: {changed}); "
            "--resume continues only the same run. Use --overwrite or another folder"
        )
    if not check_only:
        remove_stale_temp_files(out_dir)  # temp files of a killed run
        start_run_manifest(out_dir)  # a run of an earlier version lists its new files
    return True


def _training_fingerprint(document: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of a run folder's ``config.json``, also one of an older version."""
    return TrainingConfig.from_dict(document["training"]).run_fingerprint()


def check_run_folder(out_dir: str | Path, config: TrainingConfig, *, resume: bool = False,
                     overwrite: bool = False) -> None:
    """Refuse ``out_dir`` for :func:`train_model` with this config now, changing nothing.

    The checks of :func:`prepare_run_folder` (``check_only``), so that a cohort run refuses
    its folder before its slow input check rather than after.

    Raises:
        InputError: as :func:`train_model` would.
    """
    prepare_run_folder(out_dir, config.run_fingerprint(), resume=resume, overwrite=overwrite,
                       stored_fingerprint=_training_fingerprint, check_only=True)
