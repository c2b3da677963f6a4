"""Data commands: ``hnprog synth`` (a synthetic cohort) and ``hnprog preprocess`` (a cohort onto
the network grid)."""

from __future__ import annotations

from typing import Any

import click

from hnprog.cli.common import echo_done
from hnprog.cli.options import (
    LibraryDefault,
    bboxes_option,
    data_argument,
    endpoints_option,
    jobs_option,
    out_option,
    preprocess_options,
    scheduler_option,
)

__all__ = ["COMMANDS", "preprocess_command", "synth_command"]

_GENERATE = "hnprog.data.synthetic:generate_cohort"


@click.command("synth")
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False))
@click.option("--patients", "-n", default=LibraryDefault(_GENERATE, "n_patients"),
              show_default=True, type=click.IntRange(min=1), help="Number of patients.")
@click.option("--seed", "-s", default=LibraryDefault(_GENERATE, "seed"), show_default=True,
              type=click.IntRange(min=0), help="Random seed; the same seed writes identical files.")
@click.option("--centres", default=LibraryDefault(_GENERATE, "n_centres"), show_default=True,
              type=click.IntRange(1, 26),
              help="Number of centres (SYNA, SYNB, ...), differing in noise and resolution.")
@click.option("--censoring", default=LibraryDefault(_GENERATE, "censoring"), show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Expected share of censored patients.")
@click.option("--scale", "image_scale", default=LibraryDefault(_GENERATE, "image_scale"),
              show_default=True, type=click.FloatRange(0.25, 2.0),
              help="Voxels per axis times SCALE (0.5: 8x smaller images, for quick tries).")
@jobs_option("Worker processes.", default=LibraryDefault(_GENERATE, "n_jobs"))
@click.option("--clinical", is_flag=True,
              help="Also write clinical.csv (HECKTOR 2021 clinical columns: age, T and N "
                   "stage, HPV status, ...), whose known effects join the true log-hazard.")
@click.option("--format", "file_format", type=click.Choice(["nifti", "dicom"]), default="nifti",
              show_default=True, help="nifti: the HECKTOR 2021 layout. dicom: one folder per "
              "patient (CT/, PT/ in BQML, RTSTRUCT.dcm), the NIfTI truth in OUT/nifti/ and each "
              "PET's SUV factor in OUT/dicom.csv.")
def synth_command(out_dir: str, patients: int, seed: int, centres: int, censoring: float,
                  image_scale: float, n_jobs: int, clinical: bool, file_format: str) -> None:
    """Write a synthetic HECKTOR 2021-layout PET/CT cohort with a known survival model.

    Writes <ID>_ct.nii.gz, <ID>_pt.nii.gz and <ID>_gtvt.nii.gz per patient, endpoints.csv,
    bboxes.csv and truth.csv (the true log-hazard and tumour properties) into OUT.

    With --format dicom, writes each patient as DICOM instead (CT in HU, PET in Bq/mL with
    its decay tags, RTSTRUCT of the GTVt), for trying `hnprog convert` on known values.

    \b
    Examples:
      hnprog synth data/ -n 20 --seed 0
      hnprog synth data/ -n 100 --clinical --scale 0.5
      hnprog synth dicom/ -n 5 --format dicom
    """
    from hnprog.data.synthetic import generate_cohort, oracle_cindex, read_truth

    kwargs = dict(n_centres=centres, censoring=censoring, image_scale=image_scale,
                  n_jobs=n_jobs, progress=True, clinical=clinical)
    if file_format == "dicom":
        from hnprog.data.dicom.write import write_synthetic_dicom

        dicom_root = write_synthetic_dicom(out_dir, patients, seed, **kwargs)
        root = dicom_root / "nifti"
    else:
        root = generate_cohort(out_dir, n_patients=patients, seed=seed, **kwargs)
    truth = read_truth(root)
    n_events = int(truth["event"].sum())
    if n_events and patients >= 2:
        oracle = f"{oracle_cindex(truth):.3f}"
    else:
        oracle = "undefined (no event)" if patients >= 2 else "undefined (one patient)"
    where = f"{out_dir} (DICOM; NIfTI truth in {root})" if file_format == "dicom" else root
    echo_done(
        f"{patients} synthetic patients in {where} ({n_events} events, "
        f"{100 * (1 - n_events / patients):.0f}% censored, oracle C-index {oracle})"
    )


class _Layouts(click.Choice):
    """The cohort layouts :func:`hnprog.data.cohort.read_cohort` reads, looked up when needed
    (reading them at start-up would import pandas for every command)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from hnprog.data.cohort import LAYOUTS

        return LAYOUTS

    @choices.setter
    def choices(self, value: object) -> None:  # click.Choice.__init__ assigns the empty tuple
        pass


@click.command("preprocess")
@data_argument()
@out_option()
@preprocess_options()
@bboxes_option()
@endpoints_option()
@click.option("--layout", type=_Layouts(), default=LibraryDefault(
    "hnprog.data.cohort:read_cohort", "layout"), show_default=True, help="Cohort layout.")
@click.option("--nifti", is_flag=True, help="Also write the grid volumes as NIfTI for a viewer.")
@scheduler_option()
def preprocess_command(data: str, out_dir: str, spacing: float | None, crop_size: int | None,
                       cpu_preset: bool, bboxes: str | None, endpoints: str | None, layout: str,
                       nifti: bool, executor: Any) -> None:
    """Crop, resample and normalise every patient of a cohort onto the box grid.

    DATA is a HECKTOR 2020/2021/2022 or nnU-Net folder, a CSV manifest
    (patient_id,ct,pet[,mask]) or DICOM patient folders (see hnprog convert).
    Writes <ID>.npz per case, cases.csv, bboxes.csv, preprocess.json and failures.csv
    (every patient that could not be preprocessed, with the reason).

    \b
    Example:
      hnprog preprocess data/ --out prep/ --cpu
    """
    from hnprog.data.cohort import read_cohort
    from hnprog.data.preprocess import preprocess_cohort
    from hnprog.transforms import PreprocessConfig

    overrides = {k: v for k, v in (("spacing", spacing), ("crop_size", crop_size)) if v is not None}
    config = PreprocessConfig.cpu(**overrides) if cpu_preset else PreprocessConfig(**overrides)
    cohort = read_cohort(data, endpoints=endpoints, bboxes=bboxes, layout=layout)
    failures = preprocess_cohort(cohort, out_dir, config, write_nifti=nifti, progress=True,
                                 executor=executor)
    n_done = len(cohort) - len(failures)
    if len(failures):
        click.secho(
            f"{len(failures)} of {len(cohort)} patients failed; reasons in {out_dir}/failures.csv",
            fg="yellow",
            err=True,
        )
    if n_done == 0:
        raise click.ClickException(f"no patient could be preprocessed; see {out_dir}/failures.csv")
    echo_done(
        f"{n_done} cases preprocessed into {out_dir} ({config.crop_size}^3 at {config.spacing} mm)"
    )


COMMANDS = (synth_command, preprocess_command)
