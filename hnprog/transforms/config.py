"""The preprocessing a model expects: one typed, validated record.

:class:`PreprocessConfig` is saved with every preset (``hnprog.json``'s ``preprocessing``) and
read back by prediction and fine-tuning (:meth:`PreprocessConfig.from_recorded`), so training
and prediction prepare the images the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hnprog.errors import InputError

__all__ = ["MAX_SHIFT_MM", "PreprocessConfig"]

MAX_SHIFT_MM = 30.0  # the paper's training shifts: up to 30 voxels at 1 mm


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of the preprocessing shared by training and prediction.

    Args:
        spacing: float. Isotropic voxel size of the network grid, mm. Defaults to 1.0.
        crop_size: int. Edge of the cubic network grid, voxels. Defaults to 144.
        ct_clip: tuple of two floats. CT window in HU, mapped to [-1, 1]. Defaults to
            ``(-1024.0, 1024.0)``.
        ct_outside: float. CT value (HU) of grid voxels outside the CT scan. Defaults to -1024.
        pet_outside: float. PET value (SUV) of grid voxels outside the PET scan. Defaults to 0.
        max_shift: int or None. Largest random shift per axis, voxels of the network grid
            (training only). Defaults to None: the paper's 30 mm (30 voxels at 1 mm) in voxels
            of ``spacing``, e.g. 15 at 2 mm.
        max_rotation: float. Largest random rotation angle, degrees (training only).
            Defaults to 5.0.
        mirror: bool. Whether training flips left-right (x axis) with probability 1/2.
            Defaults to True.

    Raises:
        InputError: on a non-positive spacing or crop size, an empty CT window, a negative
            shift, or a rotation outside [0, 90) degrees.

    Example:
        >>> PreprocessConfig.cpu().to_dict()["spacing"]
        2.0
    """

    spacing: float = 1.0
    crop_size: int = 144
    ct_clip: tuple[float, float] = (-1024.0, 1024.0)
    ct_outside: float = -1024.0
    pet_outside: float = 0.0
    max_shift: int | None = None
    max_rotation: float = 5.0
    mirror: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ct_clip", tuple(float(v) for v in self.ct_clip))
        if not (math.isfinite(self.spacing) and self.spacing > 0):
            raise InputError(
                f"spacing must be a positive number of mm. Received: spacing={self.spacing}"
            )
        if int(self.crop_size) != self.crop_size or self.crop_size < 1:
            raise InputError(
                f"crop_size must be a positive integer. Received: crop_size={self.crop_size}"
            )
        if len(self.ct_clip) != 2 or not self.ct_clip[0] < self.ct_clip[1]:
            raise InputError(
                f"ct_clip must be (low, high) with low < high. Received: ct_clip={self.ct_clip}"
            )
        if self.max_shift is None:
            object.__setattr__(self, "max_shift", round(MAX_SHIFT_MM / self.spacing))
        if int(self.max_shift) != self.max_shift or self.max_shift < 0:
            raise InputError(
                f"max_shift must be an integer >= 0. Received: max_shift={self.max_shift}"
            )
        if not 0 <= self.max_rotation < 90:
            raise InputError(
                "max_rotation must be in [0, 90) degrees. "
                f"Received: max_rotation={self.max_rotation}"
            )
        object.__setattr__(self, "crop_size", int(self.crop_size))
        object.__setattr__(self, "max_shift", int(self.max_shift))

    @property
    def field_of_view_mm(self) -> float:
        """The edge of the cube the network sees, mm (crop size x spacing)."""
        return self.crop_size * self.spacing

    @classmethod
    def cpu(cls, **overrides: Any) -> PreprocessConfig:
        """The fast CPU setting: 2 mm voxels, a 64^3 grid and shifts up to 15 voxels (30 mm)."""
        return cls(**{"spacing": 2.0, "crop_size": 64, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["ct_clip"] = list(self.ct_clip)
        return values

    @classmethod
    def from_recorded(cls, spec: Mapping[str, Any] | None) -> PreprocessConfig:
        """The config recorded with a model (a preset's ``hnprog.json`` ``preprocessing``).

        Keys that describe rather than parameterise the preprocessing (``channel_order``)
        are checked and dropped; unknown keys from newer versions are ignored.

        Raises:
            InputError: if nothing is recorded or the channel order is not ``[CT, PET]``.
        """
        if spec is None:
            raise InputError(
                "the model records no preprocessing (hnprog.json 'preprocessing'), so its input "
                "cannot be prepared; load it with hnprog.from_preset from a preset folder"
            )
        spec = dict(spec)
        channels = spec.pop("channel_order", ["CT", "PET"])
        if [str(c).upper() for c in channels] != ["CT", "PET"]:
            raise InputError(f"the model expects channels {channels}; hnprog prepares [CT, PET]")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in spec.items() if k in known})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            InputError: on an unknown key.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown preprocessing parameters {unknown}; known: {sorted(known)}")
        return cls(**dict(values))
