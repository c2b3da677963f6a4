"""The ``hnprog`` command-line tool: a thin click layer over the Python API.

Each command parses its options, calls one library function and turns
:class:`hnprog.errors.HnprogError` into a one-line message with a non-zero exit code (a full
traceback only with ``hnprog --debug``). Heavy libraries (Keras, TensorFlow, PyRadiomics) are
imported inside the commands, so ``hnprog --help`` answers at once.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from hnprog import __version__
from hnprog.errors import HnprogError

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """A click group that prints errors as one line unless ``--debug`` is given.

    Library errors exit with status 1; command-line mistakes (a missing path, a malformed
    option) with click's status 2, naming the command whose ``--help`` to read.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HnprogError as exc:
            root = ctx.find_root()
            if root.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            _exit_on_usage_error(exc, ctx.command_path)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # Mistakes in the options of `hnprog` itself are found here, before invoke().
        debug = "--debug" in args  # before parsing, which consumes the list
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if debug:
                raise
            _exit_on_usage_error(exc, info_name or "hnprog")


def _exit_on_usage_error(exc: click.UsageError, command_path: str) -> NoReturn:
    """Print a command-line mistake as one ``Error:`` line naming the --help to read; exit 2."""
    command = exc.ctx.command_path if exc.ctx is not None else command_path
    click.echo(f"Error: {exc.format_message()} (see '{command} --help')", err=True)
    sys.exit(exc.exit_code)


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
      hnprog predict --ct CT --pet PET -m MODEL -o out/
                                  risk and tumour contour of one patient (or of a cohort
                                  folder); MODEL from `hnprog presets list` or your own run
      hnprog COMMAND --help       each command's options, with an example
    """


def option_group(*decorators: Callable) -> Callable:
    """Bundle click options so that commands sharing them declare them once."""

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def quiet_keras_start() -> None:
    """Import Keras and start its backend with TensorFlow's C++ start-up logs hidden.

    TensorFlow writes CUDA-probing and oneDNN notes to file descriptor 2 before any logging
    setting applies; on a command line they bury the one line that matters. ``--debug`` (or
    ``HNPROG_VERBOSE_BACKEND=1``) keeps them.
    """
    ctx = click.get_current_context(silent=True)
    debug = bool(ctx and ctx.find_root().params.get("debug"))
    if debug or os.environ.get("HNPROG_VERBOSE_BACKEND") or "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras

            keras.ops.convert_to_numpy(keras.ops.zeros((1,)))  # initialise the devices now
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def needs_keras(func: Callable) -> Callable:
    """Decorate a command that builds or runs models: start Keras quietly first."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet_keras_start()
        return func(*args, **kwargs)

    return wrapper


def echo_done(message: str) -> None:
    """Print a final 'where everything is' line in a consistent style."""
    click.secho(message, fg="green", err=False)


# == data commands (synth, preprocess) ==


@main.command("synth")
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False))
@click.option("--patients", "-n", default=20, show_default=True, type=click.IntRange(min=1),
              help="Number of patients.")
@click.option("--seed", "-s", default=0, show_default=True, type=click.IntRange(min=0),
              help="Random seed; the same seed writes identical files.")
@click.option("--centres", default=4, show_default=True, type=click.IntRange(1, 26),
              help="Number of centres (SYNA, SYNB, ...), differing in noise and resolution.")
@click.option("--censoring", default=0.8, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Expected share of censored patients.")
@click.option("--scale", "image_scale", default=1.0, show_default=True,
              type=click.FloatRange(0.25, 2.0),
              help="Voxels per axis times SCALE (0.5: 8x smaller images, for quick tries).")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes.")
def synth_command(
    out_dir: str,
    patients: int,
    seed: int,
    centres: int,
    censoring: float,
    image_scale: float,
    jobs: int,
) -> None:
    """Write a synthetic HECKTOR 2021-layout PET/CT cohort with a known survival model.

    Writes <ID>_ct.nii.gz, <ID>_pt.nii.gz and <ID>_gtvt.nii.gz per patient, endpoints.csv,
    bboxes.csv and truth.csv (the true log-hazard and tumour properties) into OUT.

    \b
    Example:
      hnprog synth data/ -n 20 --seed 0
    """
    from hnprog.data.synthetic import generate_cohort, oracle_cindex, read_truth

    root = generate_cohort(
        out_dir,
        n_patients=patients,
        seed=seed,
        n_centres=centres,
        censoring=censoring,
        image_scale=image_scale,
        n_jobs=jobs,
        progress=True,
    )
    truth = read_truth(root)
    n_events = int(truth["event"].sum())
    oracle = f"{oracle_cindex(truth):.3f}" if n_events else "undefined (no event)"
    echo_done(
        f"{patients} synthetic patients in {root} ({n_events} events, "
        f"{100 * (1 - n_events / patients):.0f}% censored, oracle C-index {oracle})"
    )


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
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Cross-validation folds; each tests on 1/FOLDS of the patients.")
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

# Shown in --help and used as the commands' defaults. Copies, because importing
# hnprog.training starts Keras: tests check them against TrainingConfig and
# hnprog.training.finetune.FINETUNE_DEFAULTS.
_TRAINING_DEFAULTS = {"epochs": 60, "learning_rate": 1e-3}
_FINETUNE_DEFAULTS = {"epochs": 20, "learning_rate": 1e-4}


def _format_default(value: Any) -> str:
    """A default as the help shows it: ``1e-3`` rather than ``0.001``."""
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        return f"{value:.0e}".replace("e-0", "e-")
    return str(value)


def _training_options(*, finetune: bool = False) -> Callable:
    """The options ``train``, ``cv`` and ``finetune`` share, with each command's true defaults.

    Fine-tuning starts from a built model and keeps its recorded preprocessing, so it shows
    its own epochs and learning rate, says that the grid options only apply to a model that
    records no preprocessing, and does not offer the options that only shape a new model
    (``--filters``, ``--mixed-precision``).
    """
    defaults = _FINETUNE_DEFAULTS if finetune else _TRAINING_DEFAULTS
    grid_note = " Only for a model that records no preprocessing." if finetune else ""
    grid_default = "the model's recorded one; else " if finetune else ""
    options = [
        click.argument("data", type=click.Path(exists=True)),
        click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Output folder."),
        click.option("--epochs", type=int,
                     help=f"Epochs.  [default: {_format_default(defaults['epochs'])}]"),
        click.option("--batch-size", type=int, help="Patients per batch.  [default: 10]"),
        click.option("--learning-rate", "--lr", "learning_rate", type=float,
                     help="Initial Adam learning rate (cosine decay to 0).  "
                          f"[default: {_format_default(defaults['learning_rate'])}]"),
        click.option("--w-rad", type=float, help="Weight of the Cox loss.  [default: 1]"),
        click.option("--w-seg", type=float, help="Weight of the Dice loss.  [default: 1]"),
        click.option("--spacing", type=float,
                     help=f"Voxel size, mm.{grid_note}  "
                          f"[default: {grid_default}1.0; 2.0 with --cpu]"),
        click.option("--crop-size", type=int,
                     help=f"Input edge, voxels, divisible by 16.{grid_note}  "
                          f"[default: {grid_default}144; 64 with --cpu]"),
        click.option("--cpu", "cpu_preset", is_flag=True,
                     help=f"Fast CPU preset: 2 mm voxels, 64^3 crop.{grid_note}"),
    ]
    if not finetune:
        options += [
            click.option("--filters", callback=lambda ctx, param, value: _parse_filters(value),
                         help="Encoder filters per level, comma-separated (decoder mirrors "
                              "them).  [default: 8,16,32,64,128, the paper's]"),
        ]
    options += [
        click.option("--seed", type=int, help="Seed of splits, sampling, init.  [default: 0]"),
        click.option("--workers", type=int, help="Data-loading threads.  [default: 1]"),
    ]
    if not finetune:
        options += [
            click.option("--mixed-precision",
                         type=click.Choice(["mixed_float16", "mixed_bfloat16"]),
                         help="Mixed-precision policy.  [default: float32]"),
        ]
    options += [
        click.option("--resume", is_flag=True, help="Continue the run in --out (same settings)."),
        click.option("--overwrite", is_flag=True, help="Replace a run already in --out."),
        click.option("--distribute", is_flag=True,
                     help="Data-parallel over all local GPUs (JAX or TensorFlow backend)."),
    ]
    return option_group(*options)


_TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "w_rad", "w_seg", "spacing",
                  "crop_size", "filters", "seed", "workers", "mixed_precision", "distribute")


def _parse_filters(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        filters = tuple(int(v) for v in value.split(","))
    except ValueError:
        filters = ()
    if len(filters) != 5 or min(filters) < 1:
        raise click.BadParameter(f"expected five positive integers such as 8,16,32,64,128, "
                                 f"got {value!r}", param_hint="--filters")
    return filters


def _training_config(options: dict[str, Any], **defaults: Any) -> Any:
    """Build a TrainingConfig from the shared options (unset ones keep the defaults)."""
    from hnprog.training import TrainingConfig

    values = {**defaults, **{k: options[k] for k in _TRAINING_KEYS if options.get(k) is not None}}
    if not values.get("distribute"):
        values.pop("distribute", None)
    if options.get("cpu_preset"):
        return TrainingConfig.fast_cpu(**values)
    return TrainingConfig(**values)


@main.command("train")
@_training_options()
@needs_keras
def train_command(data: str, out_dir: str, resume: bool, overwrite: bool, **options: Any) -> None:
    """Train the multi-task model on a cohort (80% training, 20% validation).

    \b
    Example:
      hnprog train data/ --out runs/mt --cpu --epochs 10
    """
    from hnprog.training import train_on_cohort

    config = _training_config(options)
    result = train_on_cohort(data, out_dir, config=config, resume=resume, overwrite=overwrite)
    echo_done(f"Kept epoch {result.best_epoch}; model in {os.path.join(out_dir, 'model.keras')}")


@main.command("cv")
@_training_options()
@click.option("--settings", default="multitask,radiomics,segmentation", show_default=True,
              help="Comma-separated settings: multitask (1,1), radiomics (1,0), segmentation (0,1).")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds.")
@click.option("--radiomics-features", type=click.Path(exists=True, dir_okay=False),
              help="Handcrafted features CSV of the same cohort: adds the radiomics baseline row.")
@needs_keras
def cv_command(data: str, out_dir: str, resume: bool, overwrite: bool, settings: str, folds: int,
               radiomics_features: str | None, **options: Any) -> None:
    """Cross-validate the paper's deep settings (Tables 1-2 format, KM plots, predictions).

    \b
    Example:
      hnprog cv data/ --out cv/ --cpu --epochs 10 --settings multitask,radiomics
    """
    from hnprog.training import cross_validate

    config = _training_config(options, n_folds=folds)
    result = cross_validate(
        data, out_dir, config=config, settings=[s.strip() for s in settings.split(",")],
        radiomics_features=radiomics_features, resume=resume, overwrite=overwrite,
    )
    with open(result.files["markdown"], encoding="utf-8") as f:
        click.echo(f.read())
    echo_done(f"Results in {out_dir}")


@main.command("finetune")
@_training_options(finetune=True)
@click.option("--from", "source", required=True,
              help="A .keras model, a run folder, a preset name or hf://org/repo.")
@click.option("--freeze-encoder", is_flag=True, help="Train only the decoder and risk head.")
@needs_keras
def finetune_command(data: str, out_dir: str, resume: bool, overwrite: bool, source: str,
                     freeze_encoder: bool, **options: Any) -> None:
    """Fine-tune a saved model or preset on a cohort, keeping its preprocessing.

    Spacing and crop size come from the model's recorded preprocessing (--spacing, --crop-size
    and --cpu apply only to a .keras file saved without a preprocessing.json); the filters and
    precision are the model's own. Defaults: 20 epochs, learning rate 1e-4.

    \b
    Example:
      hnprog finetune data/ --from runs/mt/model.keras --out runs/ft --freeze-encoder
    """
    from hnprog.training import finetune

    config = _training_config(options, **_FINETUNE_DEFAULTS)
    result = finetune(data, out_dir, source=source, config=config, freeze=freeze_encoder,
                      resume=resume, overwrite=overwrite)
    echo_done(f"Kept epoch {result.best_epoch}; model in {os.path.join(out_dir, 'model.keras')}")


# == model-zoo commands (presets, download, upload, card) ==

_hub_options = option_group(
    click.option(
        "--cache-dir", type=click.Path(file_okay=False), default=None,
        help="Hugging Face cache folder. [default: HF_HUB_CACHE or ~/.cache/huggingface/hub]",
    ),
    click.option(
        "--endpoint", default=None, metavar="URL",
        help="Hub URL. [default: HF_ENDPOINT or https://huggingface.co]",
    ),
)


@main.group()
def presets() -> None:
    """Registered pretrained presets (pinned Hub commits with sha256 checksums)."""


@presets.command("list")
def presets_list() -> None:
    """List the registered presets (name, description, where the weights live) and families.

    A family name such as unet3d_multitask_synthetic_petct stands for all its registered
    <family>_fold<k> presets; loading it averages the folds.

    \b
    Example:
      hnprog presets list
    """
    from hnprog.presets import list_families, list_presets

    registry = list_presets()
    if not registry:
        click.echo(
            "No presets are registered in this version of hnprog. Load a preset folder or an "
            "hf://org/repo[@revision] URI with hnprog.from_preset."
        )
        return
    families = list_families(registry)
    if families:
        click.echo("Families (a family name given to --model, hnprog download or "
                   "hnprog.from_preset\nloads all its folds and averages them):")
        for family, members in families.items():
            folds = ", ".join(m[len(family) + 1:] for m in members)
            click.echo(f"  {family}  ({folds})")
        click.echo("\nPresets:")
    for name, entry in sorted(registry.items()):
        click.echo(f"  {name}\n    {entry['description']}\n"
                   f"    {entry.get('uri') or entry.get('path')}")


@main.command("download")
@click.argument("name")
@_hub_options
@click.option("--offline", is_flag=True, help="Use the local cache only, never the network.")
def download(name: str, cache_dir: str | None, endpoint: str | None, offline: bool) -> None:
    """Download a preset into the Hugging Face cache and verify every file's sha256.

    NAME is a registered preset, a family (all its folds), hf://org/repo[@revision] or a local
    preset folder. Prints the verified folder(s); loading them later works offline.

    \b
    Example:
      hnprog download unet3d_multitask_synthetic_petct
    """
    from hnprog.presets import download_preset

    folders = download_preset(name, cache_dir=cache_dir, endpoint=endpoint,
                              local_files_only=offline)
    for folder in folders:
        echo_done(f"verified preset -> {folder}")


@main.command("upload")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("uri")
@click.option("--tag", default=None, help="Release tag to create on the new commit, e.g. v1.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option(
    "--endpoint", default=None, metavar="URL",
    help="Hub URL. [default: HF_ENDPOINT or https://huggingface.co]",
)
def upload(folder: str, uri: str, tag: str | None, private: bool, endpoint: str | None) -> None:
    """Validate a preset FOLDER and upload it to the Hub repository URI (hf://org/repo).

    The checksums are verified first; the repository is created if needed and the new commit
    tagged with --tag. The token is the one huggingface_hub finds (HF_TOKEN or
    `hf auth login`). Prints the commit id to pin.

    \b
    Example:
      hnprog upload cv/multitask/fold-1/preset hf://my-lab/unet3d_multitask_petct_fold1 --tag v1
    """
    from hnprog.hub import upload_preset

    commit = upload_preset(folder, uri, tag=tag, private=private, endpoint=endpoint)
    echo_done(f"uploaded {folder} -> commit {commit}; pin it as {uri}@{commit}")


@main.command("card")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--cards-dir", type=click.Path(file_okay=False), default="weights_cards", show_default=True,
    help="Where copies of the cards go, as <preset name>.md.",
)
def card(run_dir: str, cards_dir: str) -> None:
    """Write the model card of every preset in RUN_DIR from the run's own metrics.

    RUN_DIR is a preset folder or a run folder with presets below it (one per fold). Each
    card is written as the preset's README.md (its checksum in hnprog.json is updated) and
    copied into --cards-dir.

    \b
    Example:
      hnprog card cv/multitask --cards-dir weights_cards
    """
    from hnprog.cards import card_run

    written = card_run(run_dir, cards_dir=cards_dir)
    echo_done(f"{len(written)} card(s) written; copies in {cards_dir}")


# == prediction commands (predict, demo, info) ==


_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip")


def patient_id_from_ct(path: str | os.PathLike) -> str:
    """The default patient id of ``hnprog predict --ct``: the CT's file name, trimmed.

    The extension (``.nii.gz`` counts as one) and a trailing ``_ct``, ``_CT`` or ``__CT``
    (HECKTOR 2021 and 2022 names) are removed: ``CHGJ007_ct.nii.gz`` -> ``CHGJ007``,
    ``CHUM-001__CT.nii.gz`` -> ``CHUM-001``. A name that would end up empty gives ``patient``.
    """
    import re

    name = os.path.basename(os.fspath(path))
    if name.lower().endswith(_COMPRESSION_SUFFIXES):
        name = os.path.splitext(name)[0]
    name = re.sub(r"__?ct$", "", os.path.splitext(name)[0], flags=re.IGNORECASE)
    return name or "patient"


def _parse_bbox(value: str | None) -> Any:
    if value is None:
        return None
    from hnprog.geometry import BoundingBox

    parts = value.replace(" ", "").split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 6:
        raise click.BadParameter(f"expected six numbers x1,x2,y1,y2,z1,z2 in mm, got {value!r}",
                                 param_hint="--bbox")
    return BoundingBox(*numbers)


@main.command("predict")
@click.argument("data", required=False, type=click.Path(exists=True))
@click.option("--ct", type=click.Path(exists=True, dir_okay=False),
              help="CT of one patient, in HU (NIfTI or any format SimpleITK reads).")
@click.option("--pet", type=click.Path(exists=True, dir_okay=False),
              help="PET of one patient, in SUV (NIfTI or any format SimpleITK reads).")
@click.option("--model", "-m", "models", multiple=True, required=True,
              help="Preset name, hf://org/repo[@revision] or preset folder; repeat it (or give "
                   "a folder of fold presets) to average several folds.")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder.")
@click.option("--patient-id", default=None,
              help="Name of the patient in the outputs and messages (with --ct/--pet).  "
                   "[default: the CT file name without its extension and a trailing _ct, "
                   "_CT or __CT: CHGJ007_ct.nii.gz -> CHGJ007]")
@click.option("--mask", "reference_mask", type=click.Path(exists=True, dir_okay=False),
              help="Reference GTVt mask of the patient, for a Dice and the overlay (with --ct/--pet).")
@click.option("--bbox", help="Box x1,x2,y1,y2,z1,z2 in mm (with --ct/--pet).  "
                             "[default: the automatic box from the PET]")
@click.option("--bboxes", type=click.Path(exists=True, dir_okay=False),
              help="HECKTOR box CSV for a cohort.  [default: bboxes.csv in DATA, else automatic]")
@click.option("--auto-box", is_flag=True,
              help="Use the automatic PET box for every patient, ignoring any box CSV (as "
                   "hnprog demo does; with the shipped box CSVs results differ slightly).")
@click.option("--endpoints", type=click.Path(exists=True, dir_okay=False),
              help="Endpoint CSV, to report the C-index.  [default: endpoints.csv in DATA]")
@click.option("--no-overlay", is_flag=True, help="Skip the PNG overlays (faster).")
@click.option("--restart", is_flag=True, help="Predict every patient again instead of resuming.")
@needs_keras
def predict_command(data: str | None, ct: str | None, pet: str | None, models: tuple[str, ...],
                    out_dir: str, patient_id: str | None, reference_mask: str | None, bbox: str | None,
                    bboxes: str | None, auto_box: bool, endpoints: str | None,
                    no_overlay: bool, restart: bool) -> None:
    """Predict the risk and the tumour contour of one patient or of a cohort.

    One patient: give --ct and --pet. A cohort: give DATA, a HECKTOR 2020/2021/2022 folder or
    a CSV manifest; each patient gets a folder, failed patients are listed with the reason in
    failures.csv, and a second run resumes where the first stopped.

    Each patient folder holds risk.csv (Cox log-hazard: higher is worse), gtvt_probability.nii.gz
    and gtvt_mask.nii.gz on the patient's original CT grid (open them over the CT in 3D Slicer
    or ITK-SNAP), overlay.png and report.json (box, tumour volume in mL, preprocessing,
    versions). A cohort also gets predictions.csv and metrics.json (C-index with endpoints,
    Dice with masks).

    \b
    Examples:
      hnprog predict --ct P1_ct.nii.gz --pet P1_pt.nii.gz -m unet3d_multitask_synthetic_petct \\
          -o out/P1
      hnprog predict data/ -m cv/multitask/fold-1/preset -m cv/multitask/fold-2/preset \\
          -o predictions/
    """
    from hnprog.errors import InputError

    box = _parse_bbox(bbox)
    if auto_box and (bbox is not None or bboxes is not None):
        raise InputError("--auto-box ignores every box: do not combine it with --bbox or --bboxes")
    single = ct is not None or pet is not None
    if single and data is not None:
        raise InputError("give either DATA (a cohort) or --ct and --pet (one patient), not both")
    if single and (ct is None or pet is None):
        raise InputError("one patient needs both --ct and --pet")
    if not single and data is None:
        raise InputError("nothing to predict: give DATA (a cohort) or --ct and --pet")
    from hnprog.predict import load_predictor, predict_cohort, predict_patient

    predictor = load_predictor(list(models))
    if single:
        patient_id = patient_id or patient_id_from_ct(ct)
        result = predict_patient(ct, pet, predictor, out_dir, patient_id=patient_id, box=box,
                                 reference_mask=reference_mask, overlay=not no_overlay)
        group = f" ({result.risk_group} risk)" if result.risk_group else ""
        volume = ("" if result.tumour_volume_ml is None
                  else f", predicted GTVt {result.tumour_volume_ml:.1f} mL")
        echo_done(f"{patient_id}: risk (log-hazard) {result.risk:+.3f}{group}{volume}; "
                  f"outputs in {out_dir}")
        return
    from hnprog.data.cohort import read_cohort

    cohort = read_cohort(data, endpoints=endpoints, bboxes={} if auto_box else bboxes)
    predictions, failures, metrics = predict_cohort(cohort, predictor, out_dir,
                                                    overlay=not no_overlay, resume=not restart)
    if len(failures):
        click.secho(f"{len(failures)} of {len(cohort)} patients failed; reasons in "
                    f"{out_dir}/failures.csv", fg="yellow", err=True)
    scores = []
    if "c_index" in metrics:
        scores.append(f"C-index {metrics['c_index']:.3f}")
    if "dice_mean" in metrics:
        scores.append(f"mean Dice {metrics['dice_mean']:.3f}")
    n_resumed = metrics.get("n_resumed", 0)
    done = f"{len(predictions) - n_resumed} patients predicted into {out_dir}"
    if n_resumed:
        done = (f"{len(predictions) - n_resumed} patients predicted now, {n_resumed} already "
                f"done by an earlier run (--restart redoes them); all {len(predictions)} in "
                f"{out_dir}/predictions.csv")
    echo_done(done + (f" ({', '.join(scores)})" if scores else ""))
    if len(predictions) == 0:
        raise click.ClickException(f"no patient could be predicted; see {out_dir}/failures.csv")


@main.command("demo")
@click.option("--out", "-o", "out_dir", default="hnprog-demo", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
@click.option("--patients", "-n", default=24, show_default=True, type=click.IntRange(min=4),
              help="Held-out synthetic patients to predict.")
@click.option("--seed", default=7, show_default=True, type=click.IntRange(min=0),
              help="Seed of the held-out cohort.")
@click.option("--model", "-m", default=None,
              help="Preset name, folder or hf:// URI.  [default: the shipped synthetic presets]")
@click.option("--train", is_flag=True,
              help="Train a fast multi-task model here instead of using a preset (slower).")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1),
              help="Training epochs with --train.")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(min=1),
              help="Processes generating the synthetic cohorts.")
@needs_keras
def demo_command(out_dir: str, patients: int, seed: int, model: str | None, train: bool,
                 epochs: int, jobs: int) -> None:
    """Run the whole method on a synthetic cohort, in minutes on a laptop CPU.

    Generates held-out synthetic PET/CT patients with a known true risk, predicts their risk
    and tumour contour from CT and PET alone with the multi-task model (the shipped
    synthetic-data fold presets, or one trained here with --train), and prints the C-index
    and Dice next to the generator's oracle C-index. Writes a Kaplan-Meier plot, one overlay
    picture per patient and all predictions into OUT.

    \b
    Examples:
      hnprog demo
      hnprog demo --out demo/ --patients 40 --train --epochs 10
    """
    from hnprog.demo import run_demo

    run_demo(out_dir, n_patients=patients, seed=seed, model=model, train=train, epochs=epochs,
             jobs=jobs, echo=click.echo)
    echo_done(f"Everything is in {out_dir}/ (summary.md, kaplan_meier.png, predictions/).")


@main.command("info")
@needs_keras
def info_command() -> None:
    """Show the CPU's vector extensions, whether TensorFlow's oneDNN kernels are on, the Keras
    backend, the devices it sees and the versions of the key libraries.

    \b
    Example:
      KERAS_BACKEND=jax hnprog info
    """
    from importlib import metadata

    import keras

    from hnprog.cpu import cpu_name, cpu_vector_extensions, onednn_status

    click.echo(f"hnprog {__version__}")
    extensions = cpu_vector_extensions()
    click.echo(f"CPU: {cpu_name()}; vector extensions: {', '.join(extensions) or 'unknown'}")
    if keras.backend.backend() == "tensorflow":
        click.echo(f"TensorFlow oneDNN kernels: {onednn_status()}")
    click.echo(f"Keras backend: {keras.backend.backend()} (set KERAS_BACKEND to change it)")
    click.echo(f"devices: {', '.join(_devices(keras.backend.backend()))}")
    for package in ("keras", "tensorflow", "jax", "torch", "numpy", "SimpleITK",
                    "pyradiomics-bhklab", "scikit-survival", "huggingface-hub", "click"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        click.echo(f"  {package:<20} {version}")


def _devices(backend: str) -> list[str]:
    try:
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "torch":
            import torch

            gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            return ["cpu", *gpus]
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_logical_devices()]
    except Exception as exc:  # noqa: BLE001 - a diagnostic command reports, never fails
        return [f"unknown ({exc})"]
    return ["cpu"]


if __name__ == "__main__":  # pragma: no cover
    main()
