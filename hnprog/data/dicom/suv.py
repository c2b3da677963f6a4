"""PET to SUV (body weight) from the DICOM tags.

``SUV = activity concentration (Bq/mL) x body weight (g) / injected dose decayed to the
reference time (Bq)``, the body-weight SUV of the QIBA FDG-PET profile. By ``Units``
(0054,1001):

- ``BQML``: the reference time follows ``DecayCorrection`` (0054,1102): ``START`` decays
  the dose from ``RadiopharmaceuticalStartTime`` to the ``SeriesTime``; ``ADMIN`` means the
  images are already decay-corrected to the injection, so the dose is used as given. The
  injection day is that of ``RadiopharmaceuticalStartDateTime`` when present (else the
  series' day, or the day before when the time is later than the series').
- ``CNTS``: needs a vendor scale factor; Philips' ``SUV Scale Factor`` (7053,1000) gives SUV
  directly, else its ``Activity Concentration Scale Factor`` (7053,1009) gives Bq/mL, then as
  ``BQML``.
- ``GML``: already SUV (g/mL); the factor is 1.

A missing tag is one :class:`~hnprog.errors.InputError` naming the tag and the file; the
patient weight, the dose and the injection time can be given instead.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass

from hnprog.errors import InputError

__all__ = ["SUVFactor", "suv_factor"]


@dataclass(frozen=True)
class SUVFactor:
    """The factor from rescaled PET values to SUV, and what it was computed from.

    Args:
        factor: float. Multiply the rescaled voxel values by it to get SUV (g/mL).
        units: str. The series' Units (``BQML``, ``CNTS``, ``GML``).
        weight_kg: float or None. Patient weight used.
        dose_bq: float or None. Injected dose at injection time.
        decayed_dose_bq: float or None. The dose at the reference time.
        half_life_s: float or None. Radionuclide half-life.
        decay_s: float or None. Seconds from injection to the reference time.
        decay_correction: str. The DecayCorrection tag (``START``, ``ADMIN``) or ``""``.
        source: str. Where the factor came from (``"body weight"``, ``"Philips (7053,1000)"``,
            ``"GML"``).
    """

    factor: float
    units: str
    weight_kg: float | None = None
    dose_bq: float | None = None
    decayed_dose_bq: float | None = None
    half_life_s: float | None = None
    decay_s: float | None = None
    decay_correction: str = ""
    source: str = "body weight"

    def to_dict(self) -> dict:
        """The fields, prefixed ``suv_`` for a manifest row."""
        return {f"suv_{k}" if not k.startswith("suv") else k: v for k, v in asdict(self).items()}


def _seconds(text: str, what: str, where: str) -> float:
    """Seconds since midnight of a DICOM TM (``HHMMSS.FFFFFF``) or ``HH:MM[:SS]``."""
    clean = str(text).strip().replace(":", "")
    try:
        hours, minutes = int(clean[0:2]), int(clean[2:4] or 0)
        seconds = float(clean[4:] or 0)
    except ValueError:
        raise InputError(f"{where}: {what} {text!r} is not a time HHMMSS or HH:MM:SS") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        raise InputError(f"{where}: {what} {text!r} is not a time HHMMSS or HH:MM:SS")
    return hours * 3600 + minutes * 60 + seconds


def suv_factor(ds, *, path: str = "", weight_kg: float | None = None,
               dose_mbq: float | None = None, injection_time: str | None = None) -> SUVFactor:
    """The body-weight SUV factor of a PET series, from one of its slices.

    Args:
        ds: pydicom.Dataset. A slice of the PET series (its first, by position).
        path: str. The slice's file, named in errors.
        weight_kg: float, optional. Patient weight in kg, instead of PatientWeight (0010,1030).
        dose_mbq: float, optional. Injected dose in MBq, instead of RadionuclideTotalDose
            (0018,1074).
        injection_time: str, optional. ``HH:MM[:SS]``, instead of
            RadiopharmaceuticalStartTime (0018,1072).

    Returns:
        SUVFactor.

    Raises:
        InputError: naming the tag and the file, if a tag the Units need is missing, or the
            Units or DecayCorrection are not supported.
    """
    where = f"PET file {path}" if path else "PET series"
    units = str(ds.get("Units", "") or "").upper()
    if not units:
        raise InputError(f"{where}: no Units (0054,1001); cannot convert to SUV")
    if units == "GML":
        return SUVFactor(1.0, units, source="GML")
    scale = 1.0
    if units == "CNTS":
        for tag, name in ((0x70531000, "SUV"), (0x70531009, "activity")):
            element = ds.get(tag)
            if element is not None and element.value not in (None, ""):
                value = element.value
                value = float(value if not isinstance(value, bytes) else value.decode().strip())
                if name == "SUV":
                    return SUVFactor(value, units, source="Philips (7053,1000)")
                scale = value
                break
        else:
            raise InputError(f"{where}: Units CNTS without a vendor scale factor (Philips "
                             "(7053,1000) SUV Scale Factor or (7053,1009) Activity "
                             "Concentration Scale Factor); cannot convert to SUV")
    elif units != "BQML":
        raise InputError(f"{where}: Units {units!r} cannot be converted to SUV (supported: "
                         "BQML, CNTS with a Philips scale factor, GML)")

    def need(value, tag: str, option: str):
        if value in (None, ""):
            raise InputError(f"{where}: no {tag}; give {option}")
        return value

    weight = float(need(weight_kg if weight_kg is not None else ds.get("PatientWeight"),
                        "PatientWeight (0010,1030)", "--weight KG"))
    if weight <= 0:
        raise InputError(f"{where}: patient weight must be > 0 kg. Received: {weight}")
    info = ds.get("RadiopharmaceuticalInformationSequence")
    drug = info[0] if info else None
    tag_of = (lambda key: drug.get(key) if drug is not None else None)
    dose = (dose_mbq * 1e6 if dose_mbq is not None else
            float(need(tag_of("RadionuclideTotalDose"), "RadionuclideTotalDose (0018,1074)",
                       "--dose MBQ")))
    half_life = float(need(tag_of("RadionuclideHalfLife"), "RadionuclideHalfLife (0018,1075)",
                           "a PET with its radionuclide"))
    correction = str(ds.get("DecayCorrection", "") or "").upper()
    if correction == "ADMIN":
        decay = 0.0
    elif correction == "START":
        start = injection_time if injection_time is not None else tag_of(
            "RadiopharmaceuticalStartTime")
        start_s = _seconds(need(start, "RadiopharmaceuticalStartTime (0018,1072)",
                                "--injection-time HH:MM"), "injection time", where)
        series_s = _seconds(need(ds.get("SeriesTime"), "SeriesTime (0008,0031)",
                                 "a PET with its series time"), "SeriesTime", where)
        decay = series_s - start_s
        start_date = str(tag_of("RadiopharmaceuticalStartDateTime") or "")[:8]
        series_date = str(ds.get("SeriesDate", "") or "")
        if injection_time is None and len(start_date) == 8 and len(series_date) == 8:
            days = (datetime.date.fromisoformat(f"{series_date[:4]}-{series_date[4:6]}-"
                                                f"{series_date[6:]}")
                    - datetime.date.fromisoformat(f"{start_date[:4]}-{start_date[4:6]}-"
                                                  f"{start_date[6:]}")).days
            decay += 24 * 3600 * days
        elif decay < 0:
            decay += 24 * 3600  # injected before midnight, scanned after
        if decay < 0:
            raise InputError(f"{where}: the injection ({start}) is after the series start "
                             f"({ds.get('SeriesTime')}); check RadiopharmaceuticalStartTime or "
                             "give --injection-time HH:MM")
    else:
        raise InputError(f"{where}: DecayCorrection {correction or 'missing'!r} (0054,1102) is "
                         "not supported (START or ADMIN)")
    decayed = dose * math.pow(2.0, -decay / half_life)
    factor = scale * weight * 1000.0 / decayed
    return SUVFactor(factor, units, weight, dose, decayed, half_life, decay, correction,
                     "body weight" if units == "BQML" else "Philips (7053,1009) + body weight")
