"""The ``hnprog`` command-line tool: a thin click layer over the Python API.

Each command parses its options, calls one library function and turns
:class:`hnprog.errors.HnprogError` into a one-line message with a non-zero exit code (a full
traceback only with ``hnprog --debug``). Heavy libraries (Keras, TensorFlow, PyRadiomics) are
imported inside the commands, so ``hnprog --help`` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from hnprog import __version__
from hnprog.errors import HnprogError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """A click group that prints library errors as one line unless ``--debug`` is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HnprogError as exc:
            root = ctx.find_root()
            if root.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="hnprog")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Prognosis of head-and-neck cancer from FDG-PET/CT.

    Multi-task deep segmentation and radiomics (Andrearczyk et al., MICCAI 2021): predict a
    risk score and a tumour contour from a PET/CT pair, fine-tune and cross-validate on your
    own cohort, and compare against a handcrafted radiomics baseline.

    \b
    Start here:
      hnprog demo                 whole method on a synthetic cohort, in minutes on a CPU
      hnprog synth data/ -n 20    write a synthetic HECKTOR-layout cohort
      hnprog COMMAND --help       each command's options, with an example
    """


def option_group(*decorators: Callable) -> Callable:
    """Bundle click options so that commands sharing them declare them once."""

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def echo_done(message: str) -> None:
    """Print a final 'where everything is' line in a consistent style."""
    click.secho(message, fg="green", err=False)


# == data commands (synth, preprocess) ==


@main.command("preprocess")
@click.argument("data", type=click.Path(exists=True))
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--spacing", type=float, help="Grid voxel size in mm.  [default: 1.0; 2.0 with --cpu]"
)
@click.option("--crop-size", type=int, help="Grid edge in voxels.  [default: 144; 64 with --cpu]")
@click.option("--cpu", "cpu_preset", is_flag=True, help="Fast CPU setting: 2 mm voxels, 64^3 grid.")
@click.option(
    "--bboxes",
    type=click.Path(exists=True, dir_okay=False),
    help="HECKTOR box CSV (PatientID,x1,x2,y1,y2,z1,z2 in mm).  "
    "[default: bboxes.csv in DATA; else the automatic PET box]",
)
@click.option(
    "--endpoints",
    type=click.Path(exists=True, dir_okay=False),
    help="Endpoint CSV.  [default: endpoints.csv in DATA]",
)
@click.option(
    "--layout",
    type=click.Choice(["auto", "hecktor2020", "hecktor2021", "hecktor2022", "manifest"]),
    default="auto",
    show_default=True,
    help="Cohort layout.",
)
@click.option("--nifti", is_flag=True, help="Also write the grid volumes as NIfTI for a viewer.")
def preprocess_command(
    data: str,
    out_dir: str,
    spacing: float | None,
    crop_size: int | None,
    cpu_preset: bool,
    bboxes: str | None,
    endpoints: str | None,
    layout: str,
    nifti: bool,
) -> None:
    """Crop, resample and normalise every patient of a cohort onto the box grid.

    DATA is a HECKTOR 2020/2021/2022 folder or a CSV manifest (patient_id,ct,pet[,mask]).
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
    failures = preprocess_cohort(cohort, out_dir, config, write_nifti=nifti, progress=True)
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

# == radiomics commands ==


@main.group()
def radiomics() -> None:
    """Handcrafted radiomics baseline: the paper's 274 PyRadiomics features and a Cox model."""


@radiomics.command("extract")
@click.argument("data", type=click.Path(exists=True))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False),
    help="Features CSV to write (one row per patient).",
)
@click.option(
    "--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
    help="Patients extracted in parallel (worker processes).",
)
@click.option(
    "--params", type=click.Path(exists=True, dir_okay=False), default=None,
    help="hnprog radiomics params YAML. [default: the paper's 274 features]",
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), default=None,
    help="Per-patient cache folder. [default: .radiomics_cache next to --out]",
)
@click.option(
    "--failures", type=click.Path(dir_okay=False), default=None,
    help="CSV of failed patients and reasons. [default: failures.csv next to --out]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def radiomics_extract(
    data: str,
    out: str,
    jobs: int,
    params: str | None,
    cache_dir: str | None,
    failures: str | None,
    quiet: bool,
) -> None:
    """Extract radiomics features inside the GTVt of every patient of DATA.

    DATA is a cohort folder (HECKTOR 2020, 2021 or 2022 layout) or a CSV manifest. CT and PET
    are cropped around the mask and resampled to 2 mm; patients that fail are listed with
    their reason in the failures CSV and the others complete. An interrupted run resumes from
    the per-patient cache.

    \b
    Example:
      hnprog radiomics extract hecktor2021/train --out features.csv --jobs 4
    """
    from pathlib import Path

    from hnprog.data.cohort import read_cohort
    from hnprog.radiomics.extract import extract_cohort_features

    cohort = read_cohort(data)
    failures_path = Path(failures) if failures else Path(out).parent / "failures.csv"
    table = extract_cohort_features(
        cohort,
        out,
        params=params,
        jobs=jobs,
        cache_dir=cache_dir,
        failures=failures_path,
        progress=not quiet,
    )
    n_failed = len(cohort) - len(table)
    note = f"; {n_failed} failed, reasons in {failures_path}" if n_failed else ""
    echo_done(f"{len(table)} patients x {table.shape[1]} features -> {out}{note}")


@radiomics.command("cv")
@click.argument("features", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--endpoints", "-e", required=True, type=click.Path(exists=True, dir_okay=False),
    help="Endpoint CSV (HECKTOR 2021/2022 or patient_id,event,time; time in days).",
)
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False),
    help="Output folder for the report.",
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2))
@click.option(
    "--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Validation share of the non-test patients.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the splits.")
@click.option(
    "--by-centre", is_flag=True,
    help="Also stratify the splits by centre (the letters of HECKTOR ids, e.g. CHGJ).",
)
@click.option(
    "--drop-constant", is_flag=True, help="Ignore constant features instead of failing."
)
def radiomics_cv(
    features: str,
    endpoints: str,
    out: str,
    folds: int,
    val_fraction: float,
    seed: int,
    by_centre: bool,
    drop_constant: bool,
) -> None:
    """Cross-validate the radiomics baseline on a features CSV.

    Each fold holds out 20% of the patients for testing (5 folds) and splits the rest 80/20
    into training and validation, stratified by event. Features are ranked by univariate
    C-index and filtered by correlation on the validation data; a Cox model is fitted on the
    training data. Writes results.{md,csv,json} (mean ± standard error, as the paper's
    Table 1), results_per_fold.csv, predictions.csv and kaplan_meier.png to OUT.

    \b
    Example:
      hnprog radiomics cv features.csv --endpoints endpoints.csv --out cv_radiomics/
    """
    from hnprog.data.cohort import centre_from_id, read_endpoints
    from hnprog.radiomics.cv import run_radiomics_cv
    from hnprog.radiomics.extract import read_features

    table = read_features(features)
    outcomes = read_endpoints(endpoints)
    unmatched = [pid for pid in table.index if pid not in outcomes.index]
    if unmatched:
        click.echo(
            f"Note: {len(unmatched)} patients of {features} have no endpoint and are left out "
            f"(e.g. {unmatched[:3]})",
            err=True,
        )
    groups = {pid: centre_from_id(pid) or "unknown" for pid in table.index} if by_centre else None
    result = run_radiomics_cv(
        table,
        outcomes,
        out,
        n_folds=folds,
        val_fraction=val_fraction,
        seed=seed,
        groups=groups,
        drop_constant=drop_constant,
    )
    echo_done(
        f"test C-index {result.c_index_mean:.3f} ± {result.c_index_se:.3f} over {folds} folds "
        f"({len(result.predictions)} patients) -> {result.files['markdown']}"
    )

# == training commands (train, cv, finetune) ==

# == model-zoo commands (presets, download, upload, card) ==

# == prediction commands (predict, demo, info) ==


if __name__ == "__main__":  # pragma: no cover
    main()
