"""Exceptions raised by hnprog.

Every error that a user can cause (a bad file, a bad CSV row, a bad option) is an
:class:`HnprogError`. Its message names the patient, file or row and what is wrong, so the
CLI can print it as one line without a traceback.
"""

from __future__ import annotations

import warnings

__all__ = ["DiskFullError", "HnprogError", "InputError", "PatientError", "counted", "warn_deprecated"]


class HnprogError(Exception):
    """Base class of the errors that hnprog raises on bad input or bad options."""


class InputError(HnprogError, ValueError):
    """An input file, table row or argument is invalid; the message names it and says what is
    wrong."""


class PatientError(InputError):
    """One patient's data cannot be used.

    Cohort runs catch this error per patient, record it in a failures file and go on.

    Args:
        patient_id: str. The patient's identifier.
        message: str. What is wrong, naming the file when there is one.
    """

    def __init__(self, patient_id: str, message: str):
        self.patient_id = patient_id
        self.reason = message
        super().__init__(f"patient {patient_id}: {message}")

    def __reduce__(self) -> tuple:
        # Rebuilt from its two arguments, so that the error crosses process boundaries
        # (a cohort run's worker processes) intact.
        return (type(self), (self.patient_id, self.reason))


class DiskFullError(HnprogError):
    """The disk (or quota) filled while hnprog wrote a file; nothing half-written was left.

    A cohort run stops at the first one (every later patient would fail the same way) and
    keeps the patients it finished.

    Args:
        message: str. One line naming the file, the space it needs and the space free.
        path: str. The file that could not be written.
        needed_bytes: int. A lower bound of the file's size: what had been written when the
            disk filled.
        free_bytes: int or None. Free space in the file's folder, None when unknown.
    """

    def __init__(self, message: str, path: str, needed_bytes: int, free_bytes: int | None):
        super().__init__(message)
        self.path, self.needed_bytes, self.free_bytes = path, needed_bytes, free_bytes

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple:
        return (type(self), (self.args[0], self.path, self.needed_bytes, self.free_bytes))


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number, for messages: ``"1 patient"``, ``"3 patients"``.

    Example:
        >>> counted(1, "patient"), counted(0, "entry", "entries")
        ('1 patient', '0 entries')
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` (a name, keyword or module) is deprecated in favour of ``new``.

    Deprecated names keep working for one release; the CLI shows these warnings as one line.

    Args:
        old: str. What the caller used, e.g. ``"TrainingConfig.cpu()"``.
        new: str. What to use instead.
        stacklevel: int. Passed to :func:`warnings.warn`; the default points at the caller of
            the function that calls this one. Defaults to 3.
    """
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}",
                  DeprecationWarning, stacklevel=stacklevel)
