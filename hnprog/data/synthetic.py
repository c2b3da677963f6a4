"""A synthetic head-and-neck FDG-PET/CT cohort with a known Cox model.

HECKTOR data cannot be shipped, so hnprog generates cohorts that look like them where the
pipeline cares: the same file layout (HECKTOR 2021, flat), CT on a fine grid (about
1x1x3 mm, int16 HU) and PET on a coarse one (about 4x4x3 mm, float32 SUV) with different
origins, fields of view and sometimes flipped direction cosines, a head-and-neck anatomy
(air, fat, soft tissue, mandible, vertebrae, skull, a brain with high FDG uptake at the top of
the scan), an irregular primary tumour in the oropharynx with its GTVt mask, hot lymph nodes
and tonsils as distractors, and several centres that differ in noise and PET resolution.

Survival follows a known Cox model whose log-hazard is a linear combination of standardised
tumour properties that a network can see in the images (log volume, peak SUV, SUV
heterogeneity) plus noise. Event times are Weibull; censoring is administrative plus random
drop-out. The true log-hazard is written to ``truth.csv``, so the best C-index any model can
reach on a cohort (the oracle C-index, :func:`oracle_cindex`) is known.

Every random draw of patient ``i`` comes from its own stream derived from ``seed``, so a
patient does not change when the cohort grows, and the same seed writes identical files.

Coordinates are physical LPS in mm: ``x`` towards the patient's left, ``y`` towards the back
(posterior), ``z`` towards the head (superior). NumPy volumes are ``(z, y, x)``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox, Grid, physical_extent
from hnprog.errors import InputError
from hnprog.io import atomic_write, write_image

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLINICAL_EFFECTS",
    "CLINICAL_FILE",
    "ENDPOINT_COLUMNS",
    "TRUTH_COLUMNS",
    "draw_clinical",
    "generate_cohort",
    "oracle_cindex",
    "read_truth",
    "write_clinical_file",
]

ENDPOINT_COLUMNS = ("PatientID", "Progression", "Progression free survival")  # HECKTOR 2021
"""Columns of the written ``endpoints.csv`` (HECKTOR 2021 names)."""

TRUTH_COLUMNS = (
    "PatientID",
    "centre",
    "log_hazard",
    "event",
    "time",
    "event_time",
    "censoring_time",
    "tumour_volume_ml",
    "suv_peak",
    "suv_max",
    "heterogeneity",
    "necrosis",
    "n_nodes",
    "tumour_x",
    "tumour_y",
    "tumour_z",
)
"""Columns of ``truth.csv``; see :func:`generate_cohort` for their meaning."""

# Cox model: log_hazard = sum(coef * standardised property) + N(0, noise_sd).
_LOG_VOLUME_RANGE = (math.log(1.5), math.log(45.0))  # tumour volume, log-uniform in mL
_SUV_PEAK_RANGE = (6.0, 25.0)  # tumour peak SUV, uniform
_HETEROGENEITY_RANGE = (0.1, 0.6)  # relative SUV drop across the tumour, uniform
_COEF_LOG_VOLUME = 0.9
_COEF_SUV_PEAK = 0.5
_COEF_HETEROGENEITY = 0.4
_LOG_HAZARD_NOISE_SD = 0.5
_WEIBULL_SHAPE = 1.3
_ADMIN_CENSORING_DAYS = (600.0, 2400.0)  # end of study for each patient, uniform
_DROPOUT_MEAN_DAYS = 8000.0  # random loss to follow-up, exponential

_CENTRE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class _CentreProfile:
    """Scanner settings of one synthetic centre (sizes at ``image_scale=1``)."""

    ct_spacing: tuple[float, float, float]  # mm (x, y, z)
    ct_noise_hu: float  # sd of Gaussian CT noise, HU
    ct_flip_xy: bool  # CT stored with direction diag(-1, -1, 1)
    pet_spacing: tuple[float, float, float]  # mm (x, y, z)
    pet_fwhm_mm: float  # PET resolution (Gaussian FWHM)
    pet_noise: float  # relative PET noise: sd = pet_noise * sqrt(SUV)
    pet_flip_xy: bool  # PET stored with direction diag(-1, -1, 1)


_CENTRE_PROFILES = (
    _CentreProfile((0.977, 0.977, 3.0), 12.0, False, (4.0, 4.0, 3.0), 6.0, 0.10, False),
    _CentreProfile((1.17, 1.17, 3.0), 20.0, True, (5.47, 5.47, 3.27), 8.0, 0.15, False),
    _CentreProfile((0.977, 0.977, 2.5), 8.0, False, (3.65, 3.65, 3.27), 5.0, 0.20, True),
    _CentreProfile((0.98, 0.98, 3.0), 25.0, False, (4.07, 4.07, 2.8), 10.0, 0.08, False),
)


@dataclass(frozen=True)
class _CentreEffect:
    """The optional centre effect of one centre (``generate_cohort(centre_effect=...)``)."""

    case_mix: float  # in [-strength, strength]: > 0 draws larger tumours (worse outcomes)
    ct_shift_hu: float  # added to the whole CT (calibration), HU
    pet_scale: float  # multiplies the PET (SUV calibration)
    extra_fwhm_mm: float  # added to the PET resolution (FWHM), mm

    @classmethod
    def of(cls, centre_index: int, n_centres: int, strength: float) -> _CentreEffect | None:
        if strength <= 0:
            return None
        mix = strength * (np.linspace(-1.0, 1.0, n_centres)[centre_index] if n_centres > 1
                          else 0.0)
        return cls(float(mix), 40.0 * mix, 1.0 + 0.3 * mix, 3.0 * (mix + strength))

    def log_volume(self, value: float) -> float:
        """Shift a drawn log volume towards the top of its range for ``case_mix > 0``."""
        low, high = _LOG_VOLUME_RANGE
        share = (value - low) / (high - low)
        return low + (high - low) * share ** math.exp(-1.5 * self.case_mix)


_CT_MATRIX = 256  # CT in-plane voxels at image_scale=1
_PET_MATRIX = 128  # PET in-plane voxels at image_scale=1

# Tissue labels painted on each grid, with CT (HU) and PET (SUV) values.
_AIR, _FAT, _SOFT, _MARROW, _CORTEX, _BRAIN, _CSF, _TONSIL, _GLAND, _NODE = range(10)
_N_LABELS = 10


@dataclass(frozen=True)
class _Tumour:
    """The primary tumour on a 1 mm local grid centred on ``centre``."""

    centre: np.ndarray  # mm (x, y, z)
    half_width: int  # mm; the local grid spans centre +- half_width
    inside: np.ndarray  # float32 (z, y, x), 1 inside the GTVt
    suv: np.ndarray  # float32 (z, y, x), tumour activity (SUV) inside, 0 outside
    hu: np.ndarray  # float32 (z, y, x), tumour density (HU) inside, 0 outside

    def sample(
        self, grid: Grid, field: np.ndarray
    ) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
        """Trilinearly sample a local field at the voxel centres of ``grid`` near the tumour."""
        found = grid.window(self.centre - self.half_width, self.centre + self.half_width)
        if found is None:
            return None
        slices, (x, y, z) = found
        corner = self.centre - self.half_width
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        indices = [np.broadcast_to(c - lo, shape) for c, lo in zip((z, y, x), corner[::-1])]
        values = ndimage.map_coordinates(field, indices, order=1, mode="constant", cval=0.0)
        return slices, values.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian random field with unit standard deviation (correlation length ``sigma`` voxels)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _make_tumour(
    rng: np.random.Generator,
    centre: np.ndarray,
    volume_ml: float,
    suv_peak: float,
    heterogeneity: float,
    necrosis: bool,
) -> _Tumour:
    """An irregular tumour: a randomly oriented ellipsoid perturbed by smooth noise."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # mm
    elongation = np.exp(rng.normal(0.0, 0.18, 3))
    elongation /= np.prod(elongation) ** (1.0 / 3.0)
    half_width = int(math.ceil(1.5 * radius * elongation.max())) + 4
    steps = np.arange(-half_width, half_width + 1, dtype=np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    z, y, x = np.meshgrid(steps, steps, steps, indexing="ij")
    offsets = np.stack([x, y, z], axis=-1) @ rotation.astype(np.float32)
    distance = np.sqrt((((offsets / (radius * elongation)).astype(np.float32)) ** 2).sum(-1))
    shape = distance.shape
    field = 1.0 - distance + 0.22 * _smooth_noise(rng, shape, sigma=0.45 * radius)

    # Threshold the field where it encloses the target volume (1 mm^3 voxels), keep one piece.
    n_voxels = int(round(volume_ml * 1000.0))
    flat = field.ravel()
    level = np.partition(flat, flat.size - n_voxels)[flat.size - n_voxels]
    components, _ = ndimage.label(field >= level)
    largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
    inside = components == largest

    texture = _smooth_noise(rng, shape, sigma=max(2.0, 0.3 * radius))[inside]
    texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-6)
    suv = np.zeros(shape, np.float32)
    suv[inside] = suv_peak * (1.0 - heterogeneity * texture)
    hu = np.zeros(shape, np.float32)
    hu[inside] = rng.uniform(40.0, 60.0)
    if necrosis:
        core = inside & (field >= np.quantile(field[inside], 1.0 - rng.uniform(0.12, 0.3)))
        suv[core] = rng.uniform(0.8, 2.0)
        hu[core] = rng.uniform(10.0, 25.0)
    return _Tumour(centre, half_width, inside.astype(np.float32), suv, hu)


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient anatomy: sizes scaled by ``scale`` around the brain centre (mm)."""

    scale: float
    brain_centre: np.ndarray  # mm (x, y, z)
    head_top: float  # mm, highest z of the head
    hu: np.ndarray  # HU per label
    suv: np.ndarray  # SUV per label
    nodes: tuple[tuple[np.ndarray, float], ...]  # (centre mm, radius mm) per hot node


def _make_anatomy(rng: np.random.Generator) -> _Anatomy:
    scale = rng.uniform(0.92, 1.08)
    brain_centre = np.array([rng.uniform(-5, 5), rng.uniform(-5, 5), 215.0 + rng.uniform(-10, 10)])
    hu = np.zeros(_N_LABELS)
    hu[[_AIR, _FAT, _SOFT, _BRAIN, _CSF, _TONSIL, _GLAND, _NODE]] = (
        -1000.0,
        rng.uniform(-110, -80),
        rng.uniform(35, 50),
        rng.uniform(30, 40),
        10.0,
        rng.uniform(45, 60),
        rng.uniform(15, 30),
        rng.uniform(35, 50),
    )
    hu[_MARROW] = rng.uniform(700, 850)
    hu[_CORTEX] = rng.uniform(1000, 1200)
    suv = np.zeros(_N_LABELS)
    suv[[_FAT, _SOFT, _MARROW, _CORTEX, _BRAIN, _CSF, _TONSIL, _GLAND, _NODE]] = (
        0.35,
        rng.uniform(0.8, 1.2),
        rng.uniform(1.2, 1.8),
        0.4,
        rng.uniform(8.0, 12.0),
        0.3,
        rng.uniform(2.0, 4.0),
        rng.uniform(1.5, 2.2),
        rng.uniform(2.5, 10.0),
    )
    nodes = []
    for _ in range(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15])):
        side = rng.choice([-1.0, 1.0])
        centre = brain_centre + scale * np.array(
            [side * rng.uniform(30, 42), rng.uniform(-5, 20), -rng.uniform(105, 165)]
        )
        nodes.append((centre, rng.uniform(4.0, 10.0)))
    head_top = brain_centre[2] + 70.0 * scale
    return _Anatomy(scale, brain_centre, head_top, hu, suv, tuple(nodes))


def _paint_labels(grid: Grid, anatomy: _Anatomy) -> np.ndarray:
    """Tissue labels (uint8, ``(z, y, x)``) of the anatomy on ``grid``, painted back to front."""
    labels = np.zeros(grid.size[::-1], np.uint8)
    s = anatomy.scale
    bx, by, bz = anatomy.brain_centre
    bottom = -1e4  # structures that run down through the bottom of every scan

    def paint(lower, upper, inside: Callable, value: int) -> None:
        found = grid.window(np.asarray(lower, float), np.asarray(upper, float))
        if found is not None:
            slices, (x, y, z) = found
            region = labels[slices]
            region[np.broadcast_to(inside(x, y, z), region.shape)] = value

    def ellipsoid(centre, semi, value, margin=0.0):
        c, r = np.asarray(centre), np.asarray(semi) - margin
        paint(
            c - r,
            c + r,
            lambda x, y, z: ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2
            + ((z - c[2]) / r[2]) ** 2
            <= 1.0,
            value,
        )

    def cylinder(centre_xy, semi_xy, z_range, value, margin=0.0):
        (cx, cy), (rx, ry) = centre_xy, (semi_xy[0] - margin, semi_xy[1] - margin)
        paint(
            (cx - rx, cy - ry, z_range[0]),
            (cx + rx, cy + ry, z_range[1]),
            lambda x, y, z: ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0,
            value,
        )

    # Body outline: shoulders, neck, lower face and head, each with a 6 mm fat layer.
    neck_top = bz - 85 * s
    shoulders_top = bz - 185 * s
    body_parts = [
        (cylinder, ((bx, by + 15 * s), (170 * s, 90 * s), (bottom, shoulders_top))),
        (cylinder, ((bx, by + 8 * s), (58 * s, 54 * s), (bottom, neck_top))),
        (ellipsoid, ((bx, by - 30 * s, bz - 85 * s), (50 * s, 52 * s, 40 * s))),
        (ellipsoid, ((bx, by - 4 * s, bz - 10 * s), (76 * s, 96 * s, 80 * s))),
    ]
    for shape, args in body_parts:
        shape(*args, _FAT)
    for shape, args in body_parts:
        shape(*args, _SOFT, margin=6.0)

    # Salivary glands and tonsils (physiological uptake next to the oropharynx).
    for side in (-1, 1):
        ellipsoid((bx + side * 45 * s, by + 15 * s, bz - 75 * s), (12 * s, 15 * s, 20 * s), _GLAND)
        ellipsoid((bx + side * 14 * s, by + 2 * s, bz - 95 * s), (7 * s, 8 * s, 12 * s), _TONSIL)

    # Airway (pharynx and trachea) in front of the spine.
    cylinder((bx, by + 12 * s), (10 * s, 7 * s), (bottom, bz - 70 * s), _AIR)

    # Cervical spine: vertebral bodies (cortex and marrow) separated by discs, spinal canal
    # inside a bony arch.
    spine_top = bz - 95 * s
    vertebra_y, canal_y = by + 35 * s, by + 52 * s
    cylinder((bx, canal_y), (13 * s, 13 * s), (bottom, spine_top), _CORTEX)
    cylinder((bx, canal_y), (7 * s, 7 * s), (bottom, spine_top + 60 * s), _CSF)
    grid_bottom = float(grid.coordinates(2)[[0, -1]].min())
    level = spine_top
    while level > grid_bottom:
        cylinder((bx, vertebra_y), (13 * s, 11 * s), (level - 15 * s, level), _CORTEX)
        cylinder((bx, vertebra_y), (10 * s, 8 * s), (level - 13 * s, level - 2 * s), _MARROW)
        level -= 19 * s

    # Mandible: a U-shaped bony arch in front of the oropharynx.
    jaw_cx, jaw_cy, jaw_rx, jaw_ry = bx, by - 12 * s, 44 * s, 46 * s
    jaw_z = (bz - 112 * s, bz - 88 * s)

    def mandible(x, y, z):
        radial = np.sqrt(((x - jaw_cx) / jaw_rx) ** 2 + ((y - jaw_cy) / jaw_ry) ** 2)
        return (np.abs(radial - 1.0) * 45 * s <= 5.0) & (y <= jaw_cy + 8 * s)

    paint(
        (jaw_cx - jaw_rx - 6, jaw_cy - jaw_ry - 6, jaw_z[0]),
        (jaw_cx + jaw_rx + 6, jaw_cy + 10 * s, jaw_z[1]),
        mandible,
        _CORTEX,
    )

    # Skull and brain.
    brain_semi = np.array([64.0, 80.0, 52.0]) * s
    ellipsoid(anatomy.brain_centre, brain_semi + 7.0, _CORTEX)
    ellipsoid(anatomy.brain_centre, brain_semi + 2.5, _MARROW)
    ellipsoid(anatomy.brain_centre, brain_semi, _BRAIN)

    for centre, radius in anatomy.nodes:
        ellipsoid(centre, (radius, radius, radius * 1.3), _NODE)
    return labels


# == survival model ==


def _standardised(value: np.ndarray | float, bounds: tuple[float, float]) -> np.ndarray:
    """Standardise a uniformly distributed property with its design mean and sd."""
    lo, hi = bounds
    return (np.asarray(value, float) - (lo + hi) / 2) / ((hi - lo) / math.sqrt(12.0))


def _log_hazard(
    log_volume: np.ndarray, suv_peak: np.ndarray, heterogeneity: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """The true Cox log-hazard from the tumour's properties (higher means worse)."""
    return (
        _COEF_LOG_VOLUME * _standardised(log_volume, _LOG_VOLUME_RANGE)
        + _COEF_SUV_PEAK * _standardised(suv_peak, _SUV_PEAK_RANGE)
        + _COEF_HETEROGENEITY * _standardised(heterogeneity, _HETEROGENEITY_RANGE)
        + _LOG_HAZARD_NOISE_SD * np.asarray(noise, float)
    )


@dataclass(frozen=True)
class _SurvivalDraws:
    """The uniform and normal draws behind one patient's outcome."""

    noise: np.ndarray  # standard normal, log-hazard noise
    event_uniform: np.ndarray  # U(0, 1) for the Weibull event time
    admin_uniform: np.ndarray  # U(0, 1) for the end of study
    dropout_uniform: np.ndarray  # U(0, 1) for random loss to follow-up

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int | None = None) -> _SurvivalDraws:
        return cls(
            rng.standard_normal(n), rng.uniform(size=n), rng.uniform(size=n), rng.uniform(size=n)
        )

    def outcome(self, log_hazard: np.ndarray, baseline_rate: float) -> tuple[np.ndarray, ...]:
        """Event times (Weibull), censoring times (administrative or drop-out), in days."""
        rate = baseline_rate * np.exp(log_hazard)
        event_time = (-np.log1p(-self.event_uniform) / rate) ** (1.0 / _WEIBULL_SHAPE)
        lo, hi = _ADMIN_CENSORING_DAYS
        admin = lo + (hi - lo) * self.admin_uniform
        dropout = -_DROPOUT_MEAN_DAYS * np.log1p(-self.dropout_uniform)
        return event_time, np.minimum(admin, dropout)


def _baseline_rate(censoring: float, clinical: bool = False) -> float:
    """The Weibull baseline rate (1/day^shape) that gives the wanted censored share.

    Solved once by bisection on a fixed Monte Carlo sample of the design distribution, so it
    does not depend on the seed or on the cohort size. With ``clinical``, the sample's
    log-hazard includes the clinical part (:func:`draw_clinical`).
    """
    rng = np.random.default_rng(20210927)
    n = 40_000
    log_hazard = _log_hazard(
        rng.uniform(*_LOG_VOLUME_RANGE, n),
        rng.uniform(*_SUV_PEAK_RANGE, n),
        rng.uniform(*_HETEROGENEITY_RANGE, n),
        np.zeros(n),
    )
    draws = _SurvivalDraws.draw(rng, n)
    log_hazard = log_hazard + _LOG_HAZARD_NOISE_SD * draws.noise
    if clinical:
        log_hazard = log_hazard + _clinical_log_hazard(_clinical_draws(
            np.random.default_rng(20211206), n))
    lo, hi = -40.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        event_time, censoring_time = draws.outcome(log_hazard, math.exp(mid))
        if np.mean(event_time > censoring_time) > censoring:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


# == clinical variables (HECKTOR 2021 clinical file) ==

CLINICAL_FILE = "clinical.csv"
"""The synthetic cohort's clinical file (HECKTOR 2021 columns), with ``clinical=True``."""

#: The clinical part of the true log-hazard: coefficients per unit (years, stage, indicator).
CLINICAL_EFFECTS = {"age_per_year": 0.04, "t_stage": 0.5, "n_stage": 0.5, "hpv_positive": -1.0}
_CLINICAL_CENTRE = {"age": 60.0, "t_stage": 2.5, "n_stage": 1.5, "hpv_positive": 0.45}


def _clinical_draws(rng: np.random.Generator, n: int | None) -> dict[str, np.ndarray]:
    """One patient's (``n=None``) or ``n`` patients' clinical variables and missing cells."""
    u = rng.uniform(size=(12,) if n is None else (12, n))
    age = np.clip(np.round(60 + 9 * np.sqrt(-2 * np.log(u[0])) * np.cos(2 * np.pi * u[1])),
                  30, 90)
    t_stage = 1 + np.searchsorted([0.15, 0.5, 0.8], u[2])  # T1 15%, T2 35%, T3 30%, T4 20%
    n_stage = np.searchsorted([0.2, 0.4, 0.9], u[3])  # N0 20%, N1 20%, N2 50%, N3 10%
    hpv_true = u[4] < 0.55
    return {
        "age": age, "t_stage": t_stage, "n_stage": n_stage, "hpv_true": hpv_true,
        "hpv_known": u[5] >= 0.3,  # 30% of HPV statuses unknown (its effect is still there)
        "age_known": u[6] >= 0.03,
        "male": u[7] < 0.8, "tobacco": u[8] < 0.6, "tobacco_known": u[9] >= 0.5,
        "chemotherapy": u[10] < 0.7, "weight": np.round(55 + 40 * u[11], 1),
    }


def _clinical_log_hazard(draws: dict[str, np.ndarray]) -> np.ndarray:
    """The clinical part of the true log-hazard, centred on the design's mean patient."""
    e, c = CLINICAL_EFFECTS, _CLINICAL_CENTRE
    return (e["age_per_year"] * (draws["age"] - c["age"])
            + e["t_stage"] * (draws["t_stage"] - c["t_stage"])
            + e["n_stage"] * (draws["n_stage"] - c["n_stage"])
            + e["hpv_positive"] * (draws["hpv_true"] - c["hpv_positive"]))


def draw_clinical(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw clinical variables of ``n`` patients and their part of the true log-hazard.

    The design, close to HECKTOR 2021: age about N(60, 9) years (3% missing), T stage
    T1-T4 (15/35/30/20%), N stage N0-N3 (20/20/50/10%), HPV positive 55% of patients with
    the status missing for 30% (whose effect still acts: the latent status), 80% male,
    tobacco (half missing), chemotherapy, weight. The log-hazard adds
    ``0.04 / year of age + 0.5 / T stage + 0.5 / N stage - 1.0 if HPV positive``
    (:data:`CLINICAL_EFFECTS`), centred on the design's mean; gender, tobacco,
    chemotherapy and weight have no effect.

    Args:
        n: int. Patients.
        seed: int. Random seed. Defaults to 0.

    Returns:
        tuple of a DataFrame (columns ``age``, ``t_stage``, ``n_stage``, ``hpv_true``,
        ``hpv_known``, ...) and the log-hazard parts ``(n,)``.
    """
    import pandas as pd

    draws = _clinical_draws(np.random.default_rng(seed), n)
    return pd.DataFrame(draws), _clinical_log_hazard(draws)


def write_clinical_file(patients: list[tuple[str, int, dict]], path: str | os.PathLike) -> Path:
    """Write clinical draws as the HECKTOR 2021 clinical file (atomically).

    Args:
        patients: list of ``(patient_id, centre_id, draws)``, ``draws`` one patient's
            values from the clinical draw.
        path: str or PathLike. The CSV file.

    Returns:
        pathlib.Path. ``path``.
    """
    from hnprog.data.clinical import HECKTOR2021_CLINICAL_HEADER

    def flag(value: object, known: object = True) -> str:
        return str(int(bool(value))) if bool(known) else ""

    path = Path(path)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HECKTOR2021_CLINICAL_HEADER)
        for patient_id, centre_id, d in patients:
            writer.writerow([
                patient_id, centre_id, flag(d["male"]),
                f"{float(d['age']):g}" if bool(d["age_known"]) else "",
                flag(d["tobacco"], d["tobacco_known"]), "", "", 7,
                f"T{int(d['t_stage'])}", f"N{int(d['n_stage'])}", "M0", "",
                flag(d["hpv_true"], d["hpv_known"]), flag(d["chemotherapy"]),
                f"{float(d['weight']):g}",
            ])
    return path


# == one patient ==


def _tumour_extent(grid: Grid, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Physical bounds (mm, x-y-z) of the voxel centres of a ``(z, y, x)`` mask."""
    z, y, x = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    points = [grid.coordinates(axis)[idx[[0, -1]]] for axis, idx in enumerate((x, y, z))]
    return np.array([p.min() for p in points]), np.array([p.max() for p in points])


def _scan_grid(
    rng: np.random.Generator,
    centre_xy: np.ndarray,
    top: float,
    height: float,
    matrix: int,
    spacing: tuple[float, float, float],
    flip_xy: bool,
) -> Grid:
    n_z = int(round(height / spacing[2]))
    size = (matrix, matrix, n_z)
    lower = (
        centre_xy[0] + rng.uniform(-8, 8) - matrix * spacing[0] / 2,
        centre_xy[1] + rng.uniform(-8, 8) - matrix * spacing[1] / 2,
        top - n_z * spacing[2],
    )
    signs = (-1, -1, 1) if flip_xy else (1, 1, 1)
    return Grid.covering(lower, size, spacing, signs)


def _generate_patient(
    out_dir: Path,
    patient_id: str,
    centre_index: int,
    seed_sequence: np.random.SeedSequence,
    image_scale: float,
    baseline_rate: float,
    clinical_log_hazard: float = 0.0,
    effect: _CentreEffect | None = None,
) -> dict:
    """Generate, write and describe one patient; returns its ``truth.csv`` row and box.

    ``clinical_log_hazard`` (from :func:`draw_clinical`) is added to the image-driven
    log-hazard before the outcome is drawn; the patient's own random draws do not change.
    """
    rng = np.random.default_rng(seed_sequence)
    profile = _CENTRE_PROFILES[centre_index % len(_CENTRE_PROFILES)]
    if effect is not None:
        profile = replace(profile,
                          pet_fwhm_mm=profile.pet_fwhm_mm + effect.extra_fwhm_mm)
    draws = _SurvivalDraws.draw(rng)
    anatomy = _make_anatomy(rng)
    s = anatomy.scale
    bx, by, bz = anatomy.brain_centre

    # Tumour properties and the outcome they drive.
    log_volume = rng.uniform(*_LOG_VOLUME_RANGE)
    if effect is not None:
        log_volume = effect.log_volume(log_volume)
    suv_peak = rng.uniform(*_SUV_PEAK_RANGE)
    heterogeneity = rng.uniform(*_HETEROGENEITY_RANGE)
    volume_share = (log_volume - _LOG_VOLUME_RANGE[0]) / np.ptp(_LOG_VOLUME_RANGE)
    necrosis = bool(rng.uniform() < 0.1 + 0.5 * volume_share)
    log_hazard = float(_log_hazard(log_volume, suv_peak, heterogeneity, draws.noise))
    log_hazard += float(clinical_log_hazard)
    event_time, censoring_time = draws.outcome(np.array(log_hazard), baseline_rate)
    side = rng.choice([-1.0, 1.0])
    tumour_centre = np.array(
        [
            bx + side * rng.uniform(4, 16) * s,
            by + rng.uniform(-12, 8) * s,
            bz + rng.uniform(-113, -87) * s,
        ]
    )
    tumour = _make_tumour(
        rng, tumour_centre, math.exp(log_volume), suv_peak, heterogeneity, necrosis
    )

    # Scanner grids: different spacing, origin, field of view and (sometimes) direction.
    ct_spacing = tuple(v / image_scale for v in profile.ct_spacing)
    pet_spacing = tuple(v / image_scale for v in profile.pet_spacing)
    ct_grid = _scan_grid(
        rng,
        np.array([bx, by]),
        anatomy.head_top + rng.uniform(-3, 12),
        rng.uniform(255, 285),
        max(16, int(round(_CT_MATRIX * image_scale))),
        ct_spacing,
        profile.ct_flip_xy,
    )
    pet_grid = _scan_grid(
        rng,
        np.array([bx, by]) + rng.uniform(-10, 10, 2),
        anatomy.head_top + rng.uniform(2, 15),
        rng.uniform(270, 300),
        max(8, int(round(_PET_MATRIX * image_scale))),
        pet_spacing,
        profile.pet_flip_xy,
    )

    # CT in HU and the GTVt mask on the CT grid.
    ct = anatomy.hu.astype(np.float32)[_paint_labels(ct_grid, anatomy)]
    mask = np.zeros(ct.shape, np.uint8)
    inside = tumour.sample(ct_grid, tumour.inside)
    if inside is not None:
        slices, fraction = inside
        _, tumour_hu = tumour.sample(ct_grid, tumour.hu)
        in_tumour = fraction > 0.5
        if not in_tumour.any():  # a tiny tumour between the voxel centres of a coarse grid
            in_tumour = fraction == fraction.max()
        ct[slices][in_tumour] = tumour_hu[in_tumour] / np.maximum(fraction[in_tumour], 0.5)
        mask[slices] = in_tumour
    ct += profile.ct_noise_hu * rng.standard_normal(ct.shape, dtype=np.float32)
    if effect is not None:
        ct += effect.ct_shift_hu
    ct = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)

    # PET in SUV: tissue uptake with the tumour mixed in, blurred, with count-like noise.
    pet = anatomy.suv.astype(np.float32)[_paint_labels(pet_grid, anatomy)]
    slices, fraction = tumour.sample(pet_grid, tumour.inside)  # the PET covers the neck
    _, activity = tumour.sample(pet_grid, tumour.suv)
    pet[slices] = pet[slices] * (1.0 - fraction) + activity
    sigma_voxels = [profile.pet_fwhm_mm / 2.3548 / sp for sp in pet_spacing[::-1]]
    pet = ndimage.gaussian_filter(pet, sigma_voxels)
    if effect is not None:
        pet *= effect.pet_scale
    noise = _smooth_noise(rng, pet.shape, sigma=0.7)
    pet = np.clip(pet + profile.pet_noise * np.sqrt(np.maximum(pet, 0.01)) * noise, 0.0, None)
    pet = pet.astype(np.float32)
    # SUVmax as measured: over the PET voxels that lie (mostly) in the tumour.
    suv_max = float(pet[slices][fraction >= min(0.3, fraction.max())].max())
    ct_image, pet_image = ct_grid.image(ct), pet_grid.image(pet)

    # The challenge's box: a 144 mm cube around the tumour, jittered, inside both scans.
    lower, upper = _tumour_extent(ct_grid, mask)
    slack = np.clip((144.0 - (upper - lower)) / 2 - 8.0, 0.0, 20.0)
    box_centre = (lower + upper) / 2 + rng.uniform(-1, 1, 3) * slack
    ct_extent, pet_extent = physical_extent(ct_image), physical_extent(pet_image)
    common_lower = np.maximum(ct_extent.lower, pet_extent.lower)
    common_upper = np.minimum(ct_extent.upper, pet_extent.upper)
    common = BoundingBox(*np.stack([common_lower, common_upper], axis=1).ravel())
    box = BoundingBox.from_center(box_centre, 144.0).shifted_inside(common)

    write_image(ct_image, out_dir / f"{patient_id}_ct.nii.gz")
    write_image(pet_image, out_dir / f"{patient_id}_pt.nii.gz")
    write_image(ct_grid.image(mask), out_dir / f"{patient_id}_gtvt.nii.gz")

    event = bool(event_time <= censoring_time)
    time = max(1, int(round(float(min(event_time, censoring_time)))))
    row = {
        "PatientID": patient_id,
        "centre": f"SYN{_CENTRE_LETTERS[centre_index]}",
        "log_hazard": round(log_hazard, 6),
        "event": int(event),
        "time": time,
        "event_time": round(float(event_time), 1),
        "censoring_time": round(float(censoring_time), 1),
        "tumour_volume_ml": round(float(mask.sum()) * float(np.prod(ct_spacing)) / 1000.0, 3),
        "suv_peak": round(suv_peak, 3),
        "suv_max": round(suv_max, 3),
        "heterogeneity": round(heterogeneity, 4),
        "necrosis": int(necrosis),
        "n_nodes": len(anatomy.nodes),
        "tumour_x": round(float(tumour_centre[0]), 2),
        "tumour_y": round(float(tumour_centre[1]), 2),
        "tumour_z": round(float(tumour_centre[2]), 2),
    }
    return {"row": row, "box": box}


# == cohort ==


def generate_cohort(
    out_dir: str | os.PathLike,
    n_patients: int = 20,
    seed: int = 0,
    *,
    n_centres: int = 4,
    censoring: float = 0.8,
    image_scale: float = 1.0,
    n_jobs: int = 1,
    progress: bool = False,
    clinical: bool = False,
    centre_effect: float = 0.0,
) -> Path:
    """Write a synthetic HECKTOR 2021-layout PET/CT cohort with a known survival model.

    The folder receives, for each patient ``<ID>`` (centre code and number, e.g. ``SYNA001``):
    ``<ID>_ct.nii.gz`` (int16, HU, about 0.98x0.98x3 mm, 256x256x~90),
    ``<ID>_pt.nii.gz`` (float32, SUV, about 4x4x3 mm, 128x128x~95) and
    ``<ID>_gtvt.nii.gz`` (uint8 0/1 primary-tumour mask on the CT grid); and, for the cohort,
    ``endpoints.csv`` (HECKTOR 2021 columns ``PatientID, Progression,
    Progression free survival``, days), ``bboxes.csv`` (HECKTOR format, a 144 mm cube that
    contains the tumour, in mm) and ``truth.csv`` (the generating values, see below). Every
    file is written atomically. The same arguments write identical files.

    Survival follows a Cox model. The true log-hazard is
    ``0.9 * z(log volume) + 0.5 * z(peak SUV) + 0.4 * z(heterogeneity) + 0.5 * N(0, 1)``,
    where ``z`` standardises each property with its design distribution (volume log-uniform
    in 1.5-45 mL, peak SUV uniform in 6-25, heterogeneity uniform in 0.1-0.6). Event times
    are Weibull (shape 1.3) with a baseline rate calibrated to the wanted censored share;
    censoring is the earlier of an administrative end of study (uniform 600-2400 days) and
    random loss to follow-up (exponential, mean 8000 days).

    ``truth.csv`` columns: ``PatientID``, ``centre``, ``log_hazard`` (true Cox log-hazard,
    higher is worse), ``event`` (0/1), ``time`` (observed days, as in ``endpoints.csv``),
    ``event_time`` and ``censoring_time`` (days, both latent), ``tumour_volume_ml`` (of the
    GTVt mask on the CT grid), ``suv_peak`` (generating peak SUV), ``suv_max`` (measured on
    the blurred, noisy PET), ``heterogeneity`` (relative SUV drop across the tumour),
    ``necrosis`` (0/1, a cold necrotic core), ``n_nodes`` (hot lymph nodes),
    ``tumour_x/y/z`` (generating centre, mm, LPS).

    Args:
        out_dir: str or PathLike. Folder to write; created if needed. Existing files of the
            same names are replaced.
        n_patients: int. Number of patients. Defaults to 20.
        seed: int. Random seed; patient ``i`` only depends on ``seed`` and ``i``. Defaults
            to 0.
        n_centres: int. Number of centres (1-26), codes ``SYNA``, ``SYNB``, ...; centres
            differ in CT and PET spacing, CT noise, PET resolution (FWHM 5-10 mm) and noise,
            and direction cosines (``SYNB`` CT and ``SYNC`` PET are stored with x and y
            flipped). Defaults to 4.
        censoring: float. Expected share of censored patients, in (0, 1). Defaults to 0.8,
            as in HECKTOR 2020 (82%).
        image_scale: float. Voxel counts per axis are multiplied by it and spacings divided
            by it; the field of view stays the same. 0.5 gives 8 times smaller images for
            tests. In [0.25, 2]. Defaults to 1.0.
        n_jobs: int. Worker processes. Defaults to 1.
        progress: bool. Show a progress bar. Defaults to False.
        clinical: bool. Also draw clinical variables with known effects and write them as
            the HECKTOR 2021 clinical file ``clinical.csv`` (:func:`draw_clinical`); their
            part of the log-hazard is added to the image part (``truth.csv`` then also holds
            ``clinical_log_hazard`` and the latent ``hpv_true``), and the baseline rate is
            calibrated with it. The images are the same as without. Defaults to False.
        centre_effect: float. Strength ``a`` in [0, 1] of a centre effect that confounds the
            outcome, so that a model can predict risk from the centre's signature
            (the test case of the domain-adversarial branch). Centre ``k`` of ``K`` gets
            ``m_k = a * (2k / (K - 1) - 1)`` and: larger tumours for ``m_k > 0`` (its patients'
            volume share ``u`` in the log-volume range becomes ``u ** exp(-1.5 m_k)``, so
            the true log-hazard, still the formula above, is higher: case mix), a CT offset
            of ``40 m_k`` HU, a PET scale of ``1 + 0.3 m_k`` (SUV calibration) and a PET
            resolution ``3 (m_k + a)`` mm coarser (FWHM). ``truth.csv`` holds the resulting
            volumes and log-hazards; ``suv_peak`` is the value before the PET scale. 0 (no
            effect) writes the same files as before this option existed. Defaults to 0.0.

    Returns:
        pathlib.Path. ``out_dir``.

    Raises:
        InputError: on an argument out of range.

    Example:
        >>> from hnprog.data.synthetic import generate_cohort, oracle_cindex
        >>> root = generate_cohort("synthetic", n_patients=20, seed=0)  # doctest: +SKIP
        >>> oracle_cindex(root)  # doctest: +SKIP
    """
    checks = [
        ("n_patients", n_patients, isinstance(n_patients, int) and n_patients >= 1, "an int >= 1"),
        ("seed", seed, isinstance(seed, int) and seed >= 0, "an int >= 0"),
        ("n_centres", n_centres, isinstance(n_centres, int) and 1 <= n_centres <= 26, "in 1-26"),
        ("censoring", censoring, 0.0 < censoring < 1.0, "in (0, 1)"),
        ("image_scale", image_scale, 0.25 <= image_scale <= 2.0, "in [0.25, 2]"),
        ("n_jobs", n_jobs, isinstance(n_jobs, int) and n_jobs >= 1, "an int >= 1"),
        ("centre_effect", centre_effect, 0.0 <= centre_effect <= 1.0, "in [0, 1]"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise InputError(
                f"generate_cohort: {name} must be {expected}. Received: {name}={value!r}"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline_rate = _baseline_rate(censoring, clinical)

    root_sequence = np.random.SeedSequence(seed)
    children = root_sequence.spawn(n_patients)
    centre_of = [
        int(np.random.default_rng(child.spawn(1)[0]).integers(n_centres)) for child in children
    ]
    # the clinical variables come from a second spawned stream of each patient
    clinical_rows = ([_clinical_draws(np.random.default_rng(child.spawn(1)[0]), None)
                      for child in children] if clinical else None)
    counters = [0] * n_centres
    jobs = []
    for i, (child, centre_index) in enumerate(zip(children, centre_of)):
        counters[centre_index] += 1
        patient_id = f"SYN{_CENTRE_LETTERS[centre_index]}{counters[centre_index]:03d}"
        jobs.append((out_dir, patient_id, centre_index, child, image_scale, baseline_rate,
                     0.0 if clinical_rows is None
                     else float(_clinical_log_hazard(clinical_rows[i])),
                     _CentreEffect.of(centre_index, n_centres, centre_effect)))

    from hnprog.data.runner import progress_bar

    bar = dict(total=n_patients, desc="synthetic patients", disable=not progress)
    if n_jobs > 1 and n_patients > 1:
        with ProcessPoolExecutor(max_workers=min(n_jobs, n_patients)) as pool:
            results = list(progress_bar(pool.map(_generate_patient, *zip(*jobs)), **bar))
    else:
        results = [_generate_patient(*job) for job in progress_bar(jobs, **bar)]

    rows = [r["row"] for r in results]
    with atomic_write(out_dir / "endpoints.csv", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ENDPOINT_COLUMNS)
        for row in rows:
            writer.writerow([row["PatientID"], row["event"], row["time"]])
    fields = list(TRUTH_COLUMNS)
    if clinical_rows is not None:
        fields += ["clinical_log_hazard", "hpv_true"]
        for row, draw in zip(rows, clinical_rows):
            row["clinical_log_hazard"] = round(float(_clinical_log_hazard(draw)), 6)
            row["hpv_true"] = int(draw["hpv_true"])
        write_clinical_file([(r["PatientID"], j[2] + 1, d)
                             for r, j, d in zip(rows, jobs, clinical_rows)],
                            out_dir / CLINICAL_FILE)
    with atomic_write(out_dir / "truth.csv", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    write_bboxes({r["row"]["PatientID"]: r["box"] for r in results}, out_dir / "bboxes.csv")
    return out_dir


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """Read a synthetic cohort's ``truth.csv``.

    Args:
        path: str or PathLike. The cohort folder or its ``truth.csv``.

    Returns:
        pandas.DataFrame indexed by ``PatientID`` with the columns of :data:`TRUTH_COLUMNS`.

    Raises:
        InputError: if the file is missing or lacks columns.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "truth.csv"
    if not path.is_file():
        raise InputError(f"truth file {path}: file not found (is this a synthetic cohort?)")
    truth = pd.read_csv(path, dtype={"PatientID": str})
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(f"truth file {path}: missing columns {missing}")
    return truth.set_index("PatientID")


def oracle_cindex(path_or_truth: str | os.PathLike | pd.DataFrame) -> float:
    """The C-index of the true log-hazard: the best any model can expect on this cohort.

    Harrell's C-index of ``log_hazard`` against the observed ``(event, time)``, computed with
    ``sksurv.metrics.concordance_index_censored`` (higher risk should mean an earlier event;
    tied risks count 1/2).

    Args:
        path_or_truth: str, PathLike or pandas.DataFrame. A cohort folder, its ``truth.csv``,
            or the table returned by :func:`read_truth`.

    Returns:
        float. The C-index, in [0, 1].

    Raises:
        InputError: if the truth table is missing, holds fewer than 2 patients, or holds no
            comparable pair (no event).
    """
    from sksurv.metrics import concordance_index_censored

    truth = path_or_truth if hasattr(path_or_truth, "columns") else read_truth(path_or_truth)
    event = truth["event"].to_numpy().astype(bool)
    if len(event) < 2:
        raise InputError(f"oracle_cindex: {len(event)} patient(s), a C-index needs at least 2")
    if not event.any():
        raise InputError("oracle_cindex: no event in the cohort, the C-index is undefined")
    time = truth["time"].to_numpy(dtype=float)
    return float(concordance_index_censored(event, time, truth["log_hazard"].to_numpy(float))[0])
