"""``hnprog convert``: DICOM patient folders to the HECKTOR 2021 NIfTI layout."""

from __future__ import annotations

import click

from hnprog.cli.common import echo_done
from hnprog.cli.options import LibraryDefault, jobs_option, out_option

__all__ = ["COMMANDS", "convert_command"]

_CONVERT = "hnprog.data.dicom.convert:convert_dicom"


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@out_option("Output folder (HECKTOR 2021 layout, manifest.csv, failures.csv).")
@click.option("--roi", default=None, metavar="PATTERN",
              help="RTSTRUCT ROI to convert, a name or a glob (case-insensitive). "
                   "[default: the first ROI named GTVt, GTVp or GTV]")
@click.option("--weight", "weight_kg", type=click.FloatRange(min=0, min_open=True),
              metavar="KG", help="Patient weight for SUV, instead of PatientWeight.")
@click.option("--dose", "dose_mbq", type=click.FloatRange(min=0, min_open=True), metavar="MBQ",
              help="Injected dose for SUV, instead of RadionuclideTotalDose.")
@click.option("--injection-time", metavar="HH:MM[:SS]",
              help="Injection time for SUV, instead of RadiopharmaceuticalStartTime.")
@click.option("--restart", is_flag=True,
              help="Convert every patient again instead of resuming from OUT/manifest.csv.")
@jobs_option("Worker processes.", default=LibraryDefault(_CONVERT, "n_jobs"))
def convert_command(src: str, out_dir: str, roi: str | None, weight_kg: float | None,
                    dose_mbq: float | None, injection_time: str | None, restart: bool,
                    n_jobs: int) -> None:
    """Convert DICOM CT, PET and RTSTRUCT to NIfTI (CT in HU, PET in SUV, GTVt mask).

    SRC is one patient folder or a folder of patient folders, each holding DICOM files
    anywhere below it. Per patient (the folder's name as ID) writes <ID>_ct.nii.gz,
    <ID>_pt.nii.gz (body-weight SUV from Units BQML, CNTS with a Philips scale factor, or
    GML) and <ID>_gtvt.nii.gz (the RTSTRUCT ROI on the grid of the series it references),
    plus manifest.csv (files, series, SUV factor and its inputs) and failures.csv. Several
    series of one modality: the one with the most slices is used. Patients already converted
    are kept (resume). The overrides apply to every patient.

    \b
    Example:
      hnprog convert dicom/ --out nifti/ --roi 'GTV*'
    """
    from hnprog.data.dicom.convert import convert_dicom

    run = convert_dicom(src, out_dir, roi=roi, weight_kg=weight_kg, dose_mbq=dose_mbq,
                         injection_time=injection_time, resume=not restart, n_jobs=n_jobs,
                         progress=True)
    if run.failures:
        click.secho(f"{len(run.failures)} of {len(run.failures) + len(run.results)} patients "
                    f"failed; reasons in {out_dir}/failures.csv", fg="yellow", err=True)
    if not run.results:
        raise click.ClickException(f"no patient could be converted; see {out_dir}/failures.csv")
    echo_done(f"{len(run.results)} patients converted into {out_dir} (manifest.csv)")


COMMANDS = (convert_command,)
