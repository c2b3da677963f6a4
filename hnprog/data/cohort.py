"""Reading cohorts: HECKTOR 2020/2021/2022 folders or a CSV manifest, endpoints and boxes.

A :class:`Cohort` lists :class:`Patient` records (paths to the CT, the PET and the optional
GTVt mask) together with the survival endpoints and the bounding boxes found next to them.
Nothing is loaded here: images are read when a case is preprocessed
(:mod:`hnprog.data.preprocess`), so a cohort with a broken patient still opens, and the
cohort run reports every broken patient in its ``failures.csv``.

Supported layouts (``layout=``):

- ``"hecktor2020"``: ``<ID>/<ID>_ct.nii.gz``, ``<ID>/<ID>_pt.nii.gz``, ``<ID>/<ID>_ct_gtvt.nii.gz``
- ``"hecktor2021"``: flat ``<ID>_ct.nii.gz``, ``<ID>_pt.nii.gz``, ``<ID>_gtvt.nii.gz``
- ``"hecktor2022"``: ``imagesTr/<ID>__CT.nii.gz``, ``imagesTr/<ID>__PT.nii.gz``,
  ``labelsTr/<ID>.nii.gz`` (labels 1 = GTVp, 2 = GTVn; label 1 is used as the GTVt)
- ``"nnunet"``: nnU-Net channel files ``<ID>_0000.nii.gz`` (CT) and ``<ID>_0001.nii.gz``
  (PET), or the order a ``dataset.json`` names (``channel_names``; other channels are not
  used, and a folder with more than two channels needs that file), flat or in ``imagesTr/``
  (else ``imagesTs/``), masks ``labelsTr/<ID>.nii.gz`` (or
  ``labelsTs/``, or flat ``<ID>.nii.gz``; label 1 is the GTVt, 2 = GTVn is set to background)
- ``"manifest"``: a CSV with columns ``patient_id, ct, pet[, mask][, centre]``, paths relative
  to the CSV's folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hnprog.data.bbox import read_bboxes
from hnprog.geometry import BoundingBox
from hnprog.errors import InputError, counted
from hnprog.survival import make_survival_y

__all__ = [
    "Cohort",
    "LAYOUTS",
    "Patient",
    "centre_from_id",
    "check_patient_id",
    "patient_id_from_path",
    "read_cohort",
    "read_endpoints",
]

LAYOUTS = ("auto", "hecktor2020", "hecktor2021", "hecktor2022", "nnunet", "manifest", "dicom")

# nnU-Net channel suffixes: channel 0 is the CT, channel 1 the PET (HECKTOR 2022 nnU-Net order).
NNUNET_CHANNELS = ("_0000", "_0001")

# (id, event, time) column names of the endpoint CSVs that hnprog recognises, first = default.
ENDPOINT_COLUMNS = (
    ("PatientID", "Progression", "Progression free survival"),  # HECKTOR 2021 (days)
    ("PatientID", "Progression", "Progression free survival (days)"),  # hnprog < 0.2 wrote this
    ("PatientID", "Relapse", "RFS"),  # HECKTOR 2022
    ("patient_id", "event", "time"),  # hnprog's own
)

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_HECKTOR_ID = re.compile(r"^([A-Za-z]+)[-_]?\d+$")
# Characters a patient id may not hold: path separators, a drive colon, control characters.
_UNSAFE_ID_CHARACTERS = re.compile(r"[/\\:\x00-\x1f\x7f]")
_MAX_ID_LENGTH = 200  # file names are at most 255 bytes; outputs add suffixes such as _gtvt.nii.gz


def check_patient_id(patient_id: object, where: str = "patient id") -> str:
    """Check that a patient id is safe as a file name: it becomes output names such as
    ``out/<ID>/`` and ``<ID>.npz``, so it must never lead outside the output folder.

    Args:
        patient_id: str. The id, as read from a manifest row, a file or folder name or an
            option.
        where: str. Named in the error message (the file and line the id came from).
            Defaults to ``"patient id"``.

    Returns:
        str. ``patient_id`` unchanged.

    Raises:
        InputError: if the id is not a string, is empty, ``.`` or ``..``, longer than 200
            characters, starts or ends with a space, or holds ``/``, ``\\``, ``:`` or a
            control character (absolute paths and ``../x`` are therefore refused).

    Example:
        >>> check_patient_id("CHUM-001")
        'CHUM-001'
    """
    problem = None
    if not isinstance(patient_id, str) or not patient_id:
        problem = "it is empty"
    elif patient_id in (".", ".."):
        problem = "it names a folder, not a patient"
    elif _UNSAFE_ID_CHARACTERS.search(patient_id):
        problem = "it holds a path separator ('/', '\\'), ':' or a control character"
    elif patient_id != patient_id.strip():
        problem = "it starts or ends with a space"
    elif len(patient_id) > _MAX_ID_LENGTH:
        problem = f"it is longer than {_MAX_ID_LENGTH} characters"
    if problem:
        raise InputError(
            f"{where}: the patient id is not a safe file name ({problem}); patient ids name "
            f"the output files, so rename the patient. Received: patient_id={patient_id!r}"
        )
    return patient_id


def centre_from_id(patient_id: str) -> str | None:
    """The centre of a HECKTOR-style patient id: its leading letters.

    Args:
        patient_id: str. A patient id such as ``"CHGJ007"`` or ``"CHUM-001"``.

    Returns:
        str or None. The letters before the number, upper case (``"CHGJ"``), or None when the
        id does not look like ``LETTERS[-_]DIGITS``.

    Example:
        >>> centre_from_id("CHGJ007"), centre_from_id("MDA-012"), centre_from_id("p1x")
        ('CHGJ', 'MDA', None)
    """
    match = _HECKTOR_ID.match(patient_id.strip())
    return match.group(1).upper() if match else None


@dataclass(frozen=True)
class Patient:
    """One patient's image files.

    Args:
        patient_id: str. The patient's identifier.
        ct: pathlib.Path. CT image (HU). The file may be missing: preprocessing reports it.
        pet: pathlib.Path. PET image (SUV). The file may be missing: preprocessing reports it.
        mask: pathlib.Path or None. GTVt mask, or None when the cohort has no contours.
            Defaults to None.
        centre: str or None. Acquisition centre, used to stratify splits. Defaults to None.
        mask_labels: tuple of int. The label values the mask file may hold; label 1 is the
            GTVt, other labels (HECKTOR 2022's 2 = GTVn) are set to background. Defaults to
            ``(0, 1)``.
    """

    patient_id: str
    ct: Path
    pet: Path
    mask: Path | None = None
    centre: str | None = None
    mask_labels: tuple[int, ...] = (0, 1)

    def __post_init__(self) -> None:
        # Every reader checks ids where it reads them (naming the row); this catches the rest.
        check_patient_id(self.patient_id)


@dataclass
class Cohort:
    """Patients of one data set, with their endpoints and bounding boxes.

    Args:
        root: pathlib.Path. The folder (or manifest CSV) the cohort was read from.
        patients: list of Patient. In id order.
        endpoints: pandas.DataFrame or None. Indexed by patient id, columns ``event`` (bool)
            and ``time`` (float, days); None when no endpoint file was found.
        bboxes: dict mapping patient id to BoundingBox (mm). Patients without a box get the
            automatic PET box when preprocessed. Defaults to empty.
        layout: str. The layout that was read. Defaults to ``"manifest"``.

    Example:
        >>> cohort = read_cohort("data/")  # doctest: +SKIP
        >>> len(cohort), cohort.ids[:2]  # doctest: +SKIP
        (20, ['SYN000', 'SYN001'])
    """

    root: Path
    patients: list[Patient]
    endpoints: pd.DataFrame | None = None
    bboxes: dict[str, BoundingBox] = field(default_factory=dict)
    layout: str = "manifest"

    def __len__(self) -> int:
        return len(self.patients)

    def __iter__(self) -> Iterator[Patient]:
        return iter(self.patients)

    def __getitem__(self, patient_id: str) -> Patient:
        for patient in self.patients:
            if patient.patient_id == patient_id:
                return patient
        raise KeyError(f"no patient {patient_id!r} in cohort {self.root}")

    @property
    def ids(self) -> list[str]:
        """Patient ids, in cohort order."""
        return [p.patient_id for p in self.patients]

    @property
    def centres(self) -> list[str | None]:
        """Each patient's centre (None when unknown), in cohort order."""
        return [p.centre for p in self.patients]

    def subset(self, ids: Sequence[str]) -> Cohort:
        """A cohort holding only ``ids`` (in that order), sharing endpoints and boxes."""
        return Cohort(self.root, [self[i] for i in ids], self.endpoints, self.bboxes, self.layout)

    def survival_y(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """The survival outcomes as a structured array (fields ``event``, ``time`` in days).

        Args:
            ids: sequence of str, optional. Patients to return, in that order. Defaults to
                every patient of the cohort.

        Returns:
            numpy structured array of shape ``(len(ids),)``, as
            :func:`hnprog.make_survival_y` builds.

        Raises:
            InputError: if the cohort has no endpoints or a patient has no endpoint row.
        """
        ids = self.ids if ids is None else list(ids)
        if self.endpoints is None:
            raise InputError(
                f"cohort {self.root} has no endpoints: pass endpoints=... to read_cohort or put "
                "an endpoints.csv in the folder"
            )
        missing = [i for i in ids if i not in self.endpoints.index]
        if missing:
            raise InputError(
                f"cohort {self.root}: {len(missing)} patients have no endpoint row, e.g. "
                f"{missing[:5]}"
            )
        rows = self.endpoints.loc[ids]
        return make_survival_y(
            event=rows["event"].to_numpy(), time=rows["time"].to_numpy(), ids=ids
        )


def read_text_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV file as strings (empty cells as ``""``), its column names stripped.

    The first step of every table reader of this package (endpoints, clinical file).

    Raises:
        InputError: naming ``what`` and the file, when it is missing or not CSV.
    """
    if not path.is_file():
        raise InputError(f"{what} {path}: file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path}: cannot be read as CSV: {exc}") from None
    table.columns = [c.strip() for c in table.columns]
    return table


def read_endpoints(
    path: str | os.PathLike,
    *,
    id_column: str | None = None,
    event_column: str | None = None,
    time_column: str | None = None,
) -> pd.DataFrame:
    """Read survival endpoints from a CSV file.

    The columns are found automatically for HECKTOR 2021 (``PatientID, Progression,
    Progression free survival``, the time in days; also with the ``(days)`` suffix that
    earlier hnprog versions wrote), HECKTOR 2022 (``PatientID, Relapse, RFS``) and
    hnprog's own (``patient_id, event, time``) files; each can be named explicitly instead.

    Args:
        path: str or PathLike. The CSV file.
        id_column: str, optional. Column of patient ids. Defaults to auto-detection.
        event_column: str, optional. Column of events (1 = event, 0 = censored). Defaults to
            auto-detection.
        time_column: str, optional. Column of times in days. Defaults to auto-detection.

    Returns:
        pandas.DataFrame indexed by patient id (str) with columns ``event`` (bool) and
        ``time`` (float, days).

    Raises:
        InputError: naming the file, line and patient, on a missing column, a patient listed
            twice, a missing, non-numeric or negative time, or an event not in {0, 1}.

    Example:
        >>> endpoints = read_endpoints("endpoints.csv")  # doctest: +SKIP
        >>> endpoints.loc["CHGJ007"].to_dict()  # doctest: +SKIP
        {'event': False, 'time': 1450.0}
    """
    path = Path(path)
    table = read_text_table(path, "endpoint file")
    columns = _endpoint_columns(path, list(table.columns), id_column, event_column, time_column)
    id_col, event_col, time_col = columns

    ids, events, times = [], [], []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        values = dict(zip(table.columns, row))
        pid = values[id_col].strip()
        where = f"endpoint file {path}, line {row_number} (patient {pid or '?'})"
        if not pid:
            raise InputError(f"{where}: empty {id_col}")
        if pid in ids:
            raise InputError(f"{where}: patient listed twice")
        time_text, event_text = values[time_col].strip(), values[event_col].strip()
        try:
            time = float(time_text)
        except ValueError:
            time = float("nan")
        if not np.isfinite(time):
            raise InputError(f"{where}: time is missing or not a number. Received: {time_text!r}")
        if time < 0:
            raise InputError(f"{where}: time is negative. Received: {time_col}={time_text}")
        event = {"0": False, "1": True, "0.0": False, "1.0": True}.get(event_text.lower())
        if event is None:
            event = {"false": False, "true": True}.get(event_text.lower())
        if event is None:
            raise InputError(f"{where}: event must be 0 or 1. Received: {event_col}={event_text!r}")
        ids.append(pid)
        events.append(event)
        times.append(time)
    frame = pd.DataFrame(
        {"event": np.asarray(events, dtype=bool), "time": np.asarray(times, dtype=float)},
        index=pd.Index(ids, name="patient_id", dtype=object),
    )
    return frame


def _endpoint_columns(
    path: Path,
    columns: list[str],
    id_column: str | None,
    event_column: str | None,
    time_column: str | None,
) -> tuple[str, str, str]:
    """Resolve the (id, event, time) column names of an endpoint table."""
    chosen = [id_column, event_column, time_column]
    for known in ENDPOINT_COLUMNS:
        if all(c in columns for c, given in zip(known, chosen) if given is None):
            chosen = [given or c for c, given in zip(known, chosen)]
            break
    else:
        raise InputError(
            f"endpoint file {path}: cannot find the id, event and time columns; name them with "
            f"id_column=, event_column=, time_column= (on the command line: rename them). Known: "
            f"{[list(k) for k in ENDPOINT_COLUMNS]}. Received: columns={columns}"
        )
    missing = [c for c in chosen if c not in columns]
    if missing:
        raise InputError(
            f"endpoint file {path}: missing columns {missing}. Received: columns={columns}"
        )
    return chosen[0], chosen[1], chosen[2]


def _nifti_stem(name: str) -> str | None:
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _find(folder: Path, stem: str) -> Path:
    """``folder/stem.nii.gz`` or ``folder/stem.nii`` if that exists, else the ``.nii.gz`` path."""
    for suffix in _NIFTI_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{stem}{_NIFTI_SUFFIXES[0]}"


def _ids_with_suffixes(folder: Path, suffixes: Sequence[str]) -> list[str]:
    """Ids ``X`` of files ``X<suffix>.nii[.gz]`` in ``folder``, for any of ``suffixes``."""
    found = set()
    for entry in folder.iterdir():
        stem = _nifti_stem(entry.name)
        if stem is None:
            continue
        for suffix in suffixes:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                found.add(check_patient_id(stem[: -len(suffix)], f"cohort file {entry}"))
    return sorted(found)


def _detect_layout(root: Path) -> str:
    if root.is_file():
        return "manifest"
    found = []
    nnunet_images = _nnunet_images_folder(root)
    if nnunet_images is not None:
        ids = _ids_with_suffixes(nnunet_images, NNUNET_CHANNELS)
        where = "" if nnunet_images == root else f"{nnunet_images.name}/"
        found.append(f"nnunet ({counted(len(ids), 'patient')}, e.g. {where}{ids[0]}_0000.nii.gz)")
    elif (root / "imagesTr").is_dir():
        found.append("hecktor2022 (imagesTr/)")
    flat = _ids_with_suffixes(root, ("_ct", "_pt"))
    if flat:
        found.append(f"hecktor2021 ({counted(len(flat), 'patient')}, e.g. {flat[0]}_ct.nii.gz)")
    folders = sorted(sub.name for sub in root.iterdir() if sub.is_dir() and any(
        _find(sub, f"{sub.name}{m}").is_file() for m in ("_ct", "_pt")))
    if folders:
        found.append(f"hecktor2020 ({counted(len(folders), 'patient')}, e.g. {folders[0]}/)")
    if len(found) > 1:  # reading one layout would silently skip the other's patients
        raise InputError(
            f"cohort folder {root} mixes layouts: {' and '.join(found)}; put each layout in "
            "its own folder, or list every patient in a manifest CSV")
    if found:
        return found[0].split()[0]
    if (root / "manifest.csv").is_file():
        return "manifest"
    if _has_dicom_patients(root):
        return "dicom"
    raise InputError(
        f"cohort folder {root}: no known layout found. Expected HECKTOR 2020 "
        "(<ID>/<ID>_ct.nii.gz), "
        "2021 (<ID>_ct.nii.gz, <ID>_pt.nii.gz), 2022 (imagesTr/<ID>__CT.nii.gz), nnU-Net "
        "(<ID>_0000.nii.gz = CT, <ID>_0001.nii.gz = PET), a manifest CSV "
        "(patient_id,ct,pet[,mask][,centre]) or DICOM patient folders (<ID>/ with CT and PET "
        "series)"
    )


def _patients_hecktor2020(root: Path) -> list[Patient]:
    patients = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        pid = sub.name
        ct, pet = _find(sub, f"{pid}_ct"), _find(sub, f"{pid}_pt")
        if not (ct.is_file() or pet.is_file()):
            continue
        check_patient_id(pid, f"cohort folder {sub}")
        mask = _find(sub, f"{pid}_ct_gtvt")
        patients.append(
            Patient(pid, ct, pet, mask if mask.is_file() else None, centre_from_id(pid))
        )
    return patients


def _patients_hecktor2021(root: Path) -> list[Patient]:
    patients = []
    for pid in _ids_with_suffixes(root, ("_ct", "_pt")):
        mask = _find(root, f"{pid}_gtvt")
        patients.append(
            Patient(
                pid,
                _find(root, f"{pid}_ct"),
                _find(root, f"{pid}_pt"),
                mask if mask.is_file() else None,
                centre_from_id(pid),
            )
        )
    return patients


def _patients_hecktor2022(root: Path) -> list[Patient]:
    images, labels = root / "imagesTr", root / "labelsTr"
    patients = []
    for pid in _ids_with_suffixes(images, ("__CT", "__PT")):
        mask = _find(labels, pid) if labels.is_dir() else None
        patients.append(
            Patient(
                pid,
                _find(images, f"{pid}__CT"),
                _find(images, f"{pid}__PT"),
                mask if mask is not None and mask.is_file() else None,
                centre_from_id(pid),
                mask_labels=(0, 1, 2),
            )
        )
    return patients


def _nnunet_images_folder(root: Path) -> Path | None:
    """The folder of nnU-Net channel files: ``imagesTr/``, ``imagesTs/`` or ``root`` itself."""
    for folder in (root / "imagesTr", root / "imagesTs", root):
        if folder.is_dir() and _ids_with_suffixes(folder, NNUNET_CHANNELS):
            return folder
    return None


def _nnunet_channels(root: Path) -> tuple[str, str]:
    """The (CT, PET) file suffixes of an nnU-Net folder: from its ``dataset.json``
    (``channel_names``, or nnU-Net v1's ``modality``) when it has one, else ``_0000`` and
    ``_0001``."""
    path = root / "dataset.json"
    if not path.is_file():
        _refuse_unnamed_extra_channels(root, path)
        return NNUNET_CHANNELS
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"nnU-Net dataset file {path}: cannot be read as JSON: {exc}") from None
    names = (document.get("channel_names") or document.get("modality") or {}) if isinstance(
        document, dict) else {}
    if not names:
        _refuse_unnamed_extra_channels(root, path)
        return NNUNET_CHANNELS
    found: dict[str, int] = {}
    for index, name in names.items():
        label = str(name).strip().upper()
        kind = "PET" if label in ("PET", "PT") or "PET" in label else (
            "CT" if label == "CT" or label.startswith("CT") else None)
        if kind is not None and kind not in found and str(index).isdigit():
            found[kind] = int(index)
    if set(found) != {"CT", "PET"}:
        raise InputError(
            f"nnU-Net dataset file {path}: its channels {dict(names)} do not name a CT and a "
            "PET channel; hnprog needs both (names such as 'CT' and 'PET')")
    return f"_{found['CT']:04d}", f"_{found['PET']:04d}"


def _refuse_unnamed_extra_channels(root: Path, dataset_json: Path) -> None:
    """Refuse an nnU-Net folder with channels beyond ``_0001`` that no ``dataset.json``
    names: with three or more channels, ``_0000`` = CT and ``_0001`` = PET is a guess."""
    images = _nnunet_images_folder(root)
    extra = sorted({stem[-5:] for entry in images.iterdir()
                    if (stem := _nifti_stem(entry.name)) is not None
                    and re.fullmatch(r".+_\d{4}", stem) and stem[-5:] not in NNUNET_CHANNELS})
    if extra:
        example = next(entry.name for entry in sorted(images.iterdir())
                       if (_nifti_stem(entry.name) or "").endswith(extra[0]))
        unnamed = (f"{dataset_json} does not name them" if dataset_json.is_file()
                   else f"no {dataset_json} names them")
        raise InputError(
            f"nnU-Net folder {images} has channels {['_0000', '_0001', *extra]} (e.g. "
            f"{example}) and {unnamed}, so hnprog cannot tell which is the CT and which the "
            "PET; write a dataset.json with channel_names, for example "
            '{"channel_names": {"0": "CT", "1": "PET", "2": "MR"}}')


def _patients_nnunet(root: Path) -> list[Patient]:
    images = _nnunet_images_folder(root)
    if images is None:
        return []
    ct_suffix, pet_suffix = _nnunet_channels(root)
    label_folders = [root / "labelsTr", root / "labelsTs", images]
    if images.name == "imagesTs":
        label_folders = [root / "labelsTs", root / "labelsTr"]
    patients = []
    for pid in _ids_with_suffixes(images, NNUNET_CHANNELS):
        masks = [_find(folder, pid) for folder in label_folders if folder.is_dir()]
        mask = next((m for m in masks if m.is_file()), None)
        patients.append(
            Patient(
                pid,
                _find(images, f"{pid}{ct_suffix}"),
                _find(images, f"{pid}{pet_suffix}"),
                mask,
                centre_from_id(pid),
                mask_labels=(0, 1, 2),
            )
        )
    return patients


def _patients_manifest(manifest: Path) -> list[Patient]:
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest {manifest}: cannot be read as CSV: {exc}") from None
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in ("patient_id", "ct", "pet") if c not in table.columns]
    if missing:
        raise InputError(
            f"manifest {manifest}: missing columns {missing}; expected "
            f"patient_id,ct,pet[,mask][,centre]. Received: columns={list(table.columns)}"
        )
    base = manifest.parent
    patients, seen = [], set()
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        pid = row["patient_id"].strip()
        where = f"manifest {manifest}, line {row_number}"
        if not pid:
            raise InputError(f"{where}: empty patient_id")
        check_patient_id(pid, where)
        if pid in seen:
            raise InputError(f"{where}: patient {pid} listed twice")
        seen.add(pid)

        def resolve(column: str) -> Path | None:
            value = (row.get(column) or "").strip()
            return (base / value) if value else None

        ct, pet = resolve("ct"), resolve("pet")
        centre = (row.get("centre") or "").strip() or centre_from_id(pid)
        patients.append(
            Patient(
                pid,
                ct if ct is not None else base / f"{pid} (no CT listed in {manifest.name})",
                pet if pet is not None else base / f"{pid} (no PET listed in {manifest.name})",
                resolve("mask"),
                centre,
            )
        )
    return patients


def _has_dicom_patients(root: Path) -> bool:
    from hnprog.data.dicom.cache import has_dicom_patients

    return has_dicom_patients(root)


def _patients_dicom(root: Path) -> list[Patient]:
    """DICOM patient folders, converted once into the NIfTI cache (hnprog.data.dicom.cache)."""
    from hnprog.data.dicom.cache import cached_patients

    return [Patient(pid, ct, pet, mask, centre_from_id(pid))
            for pid, ct, pet, mask in cached_patients(root)]


_READERS = {
    "dicom": _patients_dicom,
    "hecktor2020": _patients_hecktor2020,
    "hecktor2021": _patients_hecktor2021,
    "hecktor2022": _patients_hecktor2022,
    "nnunet": _patients_nnunet,
    "manifest": _patients_manifest,
}


def _discover(folder: Path, names: Sequence[str], pattern: str) -> Path | None:
    """The first of ``names`` in ``folder``, else the single file matching ``pattern``."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    matches = sorted(folder.glob(pattern))
    return matches[0] if len(matches) == 1 else None


def read_cohort(
    path: str | os.PathLike,
    *,
    endpoints: str | os.PathLike | pd.DataFrame | None = None,
    bboxes: str | os.PathLike | dict[str, BoundingBox] | None = None,
    layout: str = "auto",
    id_column: str | None = None,
    event_column: str | None = None,
    time_column: str | None = None,
) -> Cohort:
    """Read a cohort folder (HECKTOR 2020, 2021, 2022, nnU-Net or DICOM layout) or a CSV manifest.

    Patients are found from their CT and PET file names; a patient with only one of the two
    is kept, and its missing file is reported when the case is preprocessed. The endpoint
    file (``endpoints.csv``, else a single ``*endpoint*.csv``) and the box file
    (``bboxes.csv``, ``bbox.csv``, else a single ``*bbox*.csv``) are found in the folder
    unless given.

    Args:
        path: str or PathLike. A cohort folder, or a manifest CSV with columns
            ``patient_id, ct, pet[, mask][, centre]`` (paths relative to the CSV).
        endpoints: path or DataFrame, optional. Endpoint CSV (see :func:`read_endpoints`) or
            an already-read table. Defaults to auto-discovery; None if nothing is found.
        bboxes: path or dict, optional. HECKTOR box CSV (``PatientID,x1,x2,y1,y2,z1,z2``, mm)
            or a dict of :class:`BoundingBox`. Defaults to auto-discovery; empty if none.
        layout: str. One of ``"auto"``, ``"hecktor2020"``, ``"hecktor2021"``,
            ``"hecktor2022"``, ``"nnunet"``, ``"manifest"``, ``"dicom"`` (DICOM patient folders, converted
            once into a NIfTI cache: :mod:`hnprog.data.dicom.cache`). Defaults to ``"auto"``.
        id_column: str, optional. Endpoint id column, passed to :func:`read_endpoints`.
        event_column: str, optional. Endpoint event column.
        time_column: str, optional. Endpoint time column (days).

    Returns:
        Cohort. Patients sorted by id (manifest: in file order).

    Raises:
        InputError: if the path does not exist, the layout is unknown or not recognised, no
            patient is found, or the endpoint or box file is invalid.

    Example:
        >>> cohort = read_cohort("hecktor2021/train")  # doctest: +SKIP
        >>> cohort.survival_y()[:2]  # doctest: +SKIP
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"cohort path {root}: not found")
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout. Expected one of {LAYOUTS}. Received: layout={layout!r}")
    if layout == "auto":
        layout = _detect_layout(root)
    if layout == "manifest" and root.is_dir():
        root = root / "manifest.csv"
    if (layout == "manifest") != root.is_file():
        raise InputError(
            f"layout {layout!r} needs a {'CSV file' if layout == 'manifest' else 'folder'}. "
            f"Received: path={root}"
        )
    patients = _READERS[layout](root)
    if not patients:
        raise InputError(f"cohort {root}: no patients found in layout {layout!r}")
    folder = root.parent if root.is_file() else root

    if endpoints is None:
        endpoints = _discover(folder, ("endpoints.csv",), "*endpoint*.csv")
    if endpoints is not None and not isinstance(endpoints, pd.DataFrame):
        endpoints = read_endpoints(
            endpoints, id_column=id_column, event_column=event_column, time_column=time_column
        )
    if bboxes is None:
        bboxes = _discover(folder, ("bboxes.csv", "bbox.csv"), "*bbox*.csv")
    if bboxes is None:
        bboxes = {}
    elif not isinstance(bboxes, dict):
        bboxes = read_bboxes(bboxes)
    return Cohort(root, patients, endpoints, dict(bboxes), layout)


# File stems that name the modality, not the patient: a folder-per-patient layout
# (``P1/CT.nii.gz``) is named after the folder.
_GENERIC_CT_STEMS = frozenset({"ct", "ct_image", "ctimage", "image", "img"})
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip")


def patient_id_from_path(path: str | os.PathLike) -> str:
    """The patient id a CT file's path implies (``hnprog predict --ct`` without ``--patient-id``).

    The file name loses its extension (``.nii.gz`` counts as one) and a trailing ``_ct``,
    ``_CT`` or ``__CT`` (HECKTOR 2021 and 2022 names) or nnU-Net's CT channel ``_0000``:
    ``CHGJ007_ct.nii.gz`` -> ``CHGJ007``, ``CHUM-001__CT.nii.gz`` -> ``CHUM-001``,
    ``CHUM-001_0000.nii.gz`` -> ``CHUM-001``. A name that says only what the image is (``CT``,
    ``ct_image``, ``image``) or nothing at all is replaced by the name of its folder
    (``P1/CT.nii.gz`` -> ``P1``). With no name left, the id is ``patient``.

    Args:
        path: str or PathLike. The CT file; it is not opened.

    Returns:
        str. The patient id.

    Example:
        >>> patient_id_from_path("hecktor2021/CHGJ007_ct.nii.gz")
        'CHGJ007'
        >>> patient_id_from_path("cohort/P1/CT.nii.gz")
        'P1'
    """
    path = Path(path)
    name = path.name
    if name.lower().endswith(_COMPRESSION_SUFFIXES):
        name = os.path.splitext(name)[0]
    name = re.sub(r"(__?ct|_0000)$", "", os.path.splitext(name)[0], flags=re.IGNORECASE)
    if not name or name.lower() in _GENERIC_CT_STEMS:
        name = path.parent.name or name
    return name or "patient"
