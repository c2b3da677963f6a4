"""The options hnprog's commands share, each defined once as a decorator (sqlite-utils style).

A default that ``--help`` shows is read from the library, never copied here:

- the grid options (``--spacing``, ``--crop-size``, ``--cpu``) from
  :class:`hnprog.transforms.PreprocessConfig` and :meth:`~hnprog.transforms.PreprocessConfig.cpu`;
- the training options from the field defaults of
  :class:`hnprog.training.config.TrainingConfig` and, for ``finetune``,
  :data:`hnprog.training.config.FINETUNE_DEFAULTS`;
- any other default from the signature of the library function the command calls, through
  :class:`LibraryDefault`, which imports that function only when the default is needed (to
  show ``--help`` or to run the command), so ``hnprog --help`` stays fast.

Options whose absence means "let the library decide" (the grid and training options, where
``--cpu`` or fine-tuning change the defaults) default to None, and their help shows what the
library then uses. None of the modules imported here loads Keras.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import click

from hnprog.data.distributed import SCHEDULER_VARIABLE
from hnprog.presets.exported import EXPORT_FORMATS, PRECISIONS, RUNTIMES
from hnprog.training.config import FINETUNE_DEFAULTS, TrainingConfig
from hnprog.transforms import PreprocessConfig

__all__ = [
    "clinical_option",
    "split_option",
    "LibraryDefault",
    "bboxes_option",
    "cache_dir_option",
    "data_argument",
    "endpoint_option",
    "endpoints_option",
    "export_formats_option",
    "hub_options",
    "jobs_option",
    "option_group",
    "parse_days",
    "out_option",
    "preprocess_options",
    "quiet_option",
    "runtime_options",
    "scheduler_option",
    "shown_default",
    "skip_bad_option",
    "training_options",
]


def parse_days(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Callback of a ``--times 365,730`` option: the days, ascending; a usage error when
    malformed (:func:`hnprog.predict.survival.check_times`)."""
    if value is None:
        return None
    from hnprog.errors import InputError
    from hnprog.predict.survival import check_times

    try:
        return check_times([v.strip() for v in value.split(",") if v.strip()] or [""])
    except InputError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def option_group(*decorators: Callable) -> Callable:
    """Bundle click options (or other groups) so that commands sharing them declare them once."""

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def shown_default(value: Any) -> str:
    """A default as help shows it: ``1e-3`` rather than ``0.001``, ``8,16`` for a tuple."""
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        return f"{value:.0e}".replace("e-0", "e-")
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


class LibraryDefault:
    """The default of one keyword of a library function, read from its signature when needed.

    click calls it for an option the user left out, and shows ``str()`` of it in ``--help``
    (and mkdocs-click in the reference), so the library's signature stays the one place the
    value is written. The function's module is imported on first use only.

    Args:
        target: str. ``"module:function"``, e.g. ``"hnprog.data.synthetic:generate_cohort"``.
        keyword: str. The keyword whose default to use.

    Example:
        >>> str(LibraryDefault("hnprog.data.synthetic:generate_cohort", "n_patients"))
        '20'
    """

    def __init__(self, target: str, keyword: str) -> None:
        self.target = target
        self.keyword = keyword

    @property
    def value(self) -> Any:
        """The default, read once from the function's signature."""
        if "_value" not in self.__dict__:
            module, _, name = self.target.partition(":")
            function = getattr(importlib.import_module(module), name)
            default = inspect.signature(function).parameters[self.keyword].default
            if default is inspect.Parameter.empty:
                raise TypeError(f"{self.target} has no default for {self.keyword!r}")
            self.__dict__["_value"] = default
        return self.__dict__["_value"]

    def __call__(self) -> Any:
        return self.value

    def __str__(self) -> str:
        return shown_default(self.value)

    def __repr__(self) -> str:
        return f"LibraryDefault({self.target!r}, {self.keyword!r})"


# -- inputs and outputs ------------------------------------------------------------------------


def data_argument(*, required: bool = True) -> Callable:
    """The ``DATA`` argument: a cohort folder (HECKTOR layout) or a CSV manifest."""
    return click.argument("data", required=required, type=click.Path(exists=True))


def out_option(help: str = "Output folder.", *, file: bool = False,  # noqa: A002 - click's name
               default: Any = None) -> Callable:
    """``--out/-o``: the folder (``out_dir``) or, with ``file=True``, the file (``out``) to write.

    Required unless a ``default`` is given.
    """
    return click.option(
        "--out", "-o", "out" if file else "out_dir",
        required=default is None, default=default, show_default=default is not None,
        type=click.Path(dir_okay=False) if file else click.Path(file_okay=False),
        help=help,
    )


def endpoints_option(*, required: bool = False, short: bool = False, purpose: str = "") -> Callable:
    """``--endpoints``: the endpoint CSV; when not required, found in DATA by default
    (:func:`hnprog.data.cohort.read_cohort`: ``endpoints.csv``, else a single
    ``*endpoint*.csv``)."""
    names = ("--endpoints", "-e") if short else ("--endpoints",)
    default = "" if required else ("  [default: endpoints.csv in DATA, else its only "
                                   "*endpoint*.csv]")
    return click.option(
        *names, required=required, type=click.Path(exists=True, dir_okay=False),
        help=f"Endpoint CSV{purpose} (HECKTOR 2021/2022 or patient_id,event,time; time in "
             f"days).{default}",
    )


def bboxes_option(*, purpose: str = "") -> Callable:
    """``--bboxes``: the HECKTOR box CSV; found in DATA by default
    (:func:`hnprog.data.cohort.read_cohort`: ``bboxes.csv``, ``bbox.csv``, else a single
    ``*bbox*.csv``), else the automatic PET box."""
    return click.option(
        "--bboxes", type=click.Path(exists=True, dir_okay=False),
        help=f"HECKTOR box CSV (PatientID,x1,x2,y1,y2,z1,z2 in mm){purpose}.  "
             "[default: bboxes.csv or bbox.csv in DATA, else its only *bbox*.csv; else the "
             "automatic PET box]",
    )


def skip_bad_option() -> Callable:
    """``--skip-bad``: train without the patients that fail the input check
    (:func:`hnprog.training.precheck.precheck_cohort`) instead of refusing the cohort."""
    return click.option(
        "--skip-bad", is_flag=True,
        help="Every patient is checked before training (files readable, CT in HU, PET in SUV, "
             "overlap, mask labels); without this flag one bad patient stops the command "
             "before anything is written, naming every failed patient. With it, train "
             "without them and list them in --out's failures.csv.",
    )


def jobs_option(help: str, *, default: Any) -> Callable:  # noqa: A002 - click's name
    """``--jobs/-j``: worker processes, passed to the library as ``n_jobs``."""
    return click.option("--jobs", "-j", "n_jobs", default=default, show_default=True,
                        type=click.IntRange(min=1), help=help)


def quiet_option() -> Callable:
    """``--quiet/-q``: no progress bar."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


def scheduler_option() -> Callable:
    """``--scheduler`` (or ``DASK_SCHEDULER_ADDRESS``): run a cohort command's patients on a
    Dask distributed cluster.

    The decorated command receives ``executor`` instead of ``scheduler``: the cluster's
    executor while the command runs (:func:`hnprog.data.distributed.cohort_executor`, the
    client closed afterwards), or None for a local run; it passes it to the library.
    """

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, scheduler: str | None = None, **kwargs: Any) -> Any:
            from hnprog.data.distributed import cohort_executor

            with cohort_executor(scheduler) as executor:
                return func(*args, executor=executor, **kwargs)

        return click.option(
            "--scheduler", envvar=SCHEDULER_VARIABLE, show_envvar=True, default=None,
            metavar="ADDRESS",
            help="Dask scheduler (tcp://host:8786) whose workers do the patients instead of "
                 "this machine (the command's --jobs, where it has one, is then unused); "
                 "data, presets and outputs must be on a file system the workers see.  "
                 "[default: this machine]",
        )(wrapper)

    return decorate


def runtime_options() -> Callable:
    """``--runtime``, ``--precision`` and ``--tta``: what computes a prediction, and how."""
    return option_group(
        click.option("--runtime", type=click.Choice(["auto", *RUNTIMES]), default="auto",
                     show_default=True,
                     help="What runs the model: auto takes the runtime that was fastest when "
                          "the preset was exported (hnprog export) on a machine like this one "
                          "and that is installed, else Keras (docs/scaling.md)."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default="fp32",
                     show_default=True,
                     help="bf16: about 1.4x faster OpenVINO inference on CPUs with AVX-512 "
                          "BF16 or AMX-BF16; its risks agree with fp32, its masks can differ "
                          "(Dice down to 0.87 in docs/benchmarks.md). Refused elsewhere."),
        click.option("--tta", is_flag=True,
                     help="Test-time mirroring: average with the prediction on the left-right "
                          "mirrored image (twice the forward time)."),
    )


def export_formats_option() -> Callable:
    """``--format/-f``: the runtime formats to export to, repeatable."""
    return click.option("--format", "-f", "formats", multiple=True,
                        type=click.Choice(list(EXPORT_FORMATS)), default=(EXPORT_FORMATS[0],),
                        show_default=True, help="Runtime format to export to; repeat for both.")


# -- the network grid and training -------------------------------------------------------------


def preprocess_options(*, trains: bool = False, recorded: bool = False) -> Callable:
    """``--spacing``, ``--crop-size`` and ``--cpu``: the grid a cohort is resampled onto.

    Unset, they keep :class:`~hnprog.transforms.PreprocessConfig`'s defaults, or those of
    :meth:`~hnprog.transforms.PreprocessConfig.cpu` with ``--cpu``.

    Args:
        trains: bool. The grid is a network's input, so the crop size must be divisible by 16.
        recorded: bool. The command starts from a model that may record its own grid
            (fine-tuning); the options then apply only to a model that records none.
    """
    paper, cpu = PreprocessConfig(), PreprocessConfig.cpu()
    note = " Only for a model that records no preprocessing." if recorded else ""
    first = "the model's recorded one; else " if recorded else ""
    divisible = ", divisible by 16" if trains else ""

    def default(name: str) -> str:
        value = shown_default(getattr(paper, name))
        return f"[default: {first}{value}; {shown_default(getattr(cpu, name))} with --cpu]"

    return option_group(
        click.option("--spacing", type=float,
                     help=f"Voxel size, mm.{note}  {default('spacing')}"),
        click.option("--crop-size", type=int,
                     help=f"Grid edge, voxels{divisible}.{note}  "
                          f"{default('crop_size')}"),
        click.option("--cpu", "cpu_preset", is_flag=True,
                     help=f"Fast CPU setting: {cpu.spacing:g} mm voxels, "
                          f"{cpu.crop_size}^3 grid.{note}"),
    )


def _parse_filters(ctx: click.Context, param: click.Parameter,
                   value: str | None) -> tuple[int, ...] | None:
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


def training_options(*, finetune: bool = False) -> Callable:
    """The options ``train``, ``cv`` and ``finetune`` share, with each command's true defaults.

    Unset options keep :class:`~hnprog.training.config.TrainingConfig`'s defaults (with
    ``finetune``, :data:`~hnprog.training.config.FINETUNE_DEFAULTS` first). Fine-tuning
    starts from a built model and keeps its recorded preprocessing, so it says that the grid
    options only apply to a model that records none, and does not offer the options that only
    shape a new model (``--filters``, ``--mixed-precision``).
    """
    paper = TrainingConfig()  # its loss weights resolved from its task
    defaults = {f.name: getattr(paper, f.name) for f in dataclasses.fields(TrainingConfig)}
    if finetune:
        defaults.update(FINETUNE_DEFAULTS)

    def shown(name: str, value: Any = None) -> str:
        return f"[default: {shown_default(defaults[name] if value is None else value)}]"

    options: list[Callable] = [
        data_argument(),
        out_option(),
        endpoints_option(purpose=" of DATA's patients"),
        bboxes_option(purpose=", the crop around the tumour"),
        skip_bad_option(),
        click.option("--epochs", type=click.IntRange(min=1), help=f"Epochs.  {shown('epochs')}"),
        click.option("--batch-size", type=click.IntRange(min=1),
                     help=f"Patients per batch.  {shown('batch_size')}"),
        click.option("--learning-rate", "--lr", "learning_rate", type=float,
                     help=f"Initial Adam learning rate (cosine decay to 0).  "
                          f"{shown('learning_rate')}"),
        click.option("--w-rad", type=float, help=f"Weight of the Cox loss.  {shown('w_rad')}"),
        click.option("--w-seg", type=float, help=f"Weight of the Dice loss.  {shown('w_seg')}"),
        preprocess_options(trains=True, recorded=finetune),
    ]
    if not finetune:
        options.append(
            click.option("--filters", callback=_parse_filters,
                         help="Encoder filters per level, comma-separated (decoder mirrors "
                              f"them).  [default: {shown_default(defaults['filters'])}, the "
                              "paper's]"),
        )
    options += [
        click.option("--seed", type=int,
                     help=f"Seed of splits, sampling, init.  {shown('seed')}"),
        click.option("--jobs", "-j", "--workers", "n_jobs", type=click.IntRange(min=1),
                     help=f"Data-loading threads.  {shown('n_jobs')}"),
    ]
    if not finetune:
        policy = defaults["mixed_precision"] or "float32"
        options.append(
            click.option("--mixed-precision",
                         type=click.Choice(["mixed_float16", "mixed_bfloat16"]),
                         help=f"Mixed-precision policy.  {shown('mixed_precision', policy)}"),
        )
    options += [
        click.option("--resume", is_flag=True, help="Continue the run in --out (same settings)."),
        click.option("--overwrite", is_flag=True, help="Replace a run already in --out."),
        click.option("--distribute", is_flag=True,
                     help="Data-parallel over all local GPUs (JAX or TensorFlow backend)."),
        click.option("--loss-weighting", type=click.Choice(["fixed", "uncertainty"]),
                     help="fixed: w-rad x Cox + w-seg x Dice (the paper); uncertainty: each "
                          "task's loss also weighted by a learnt log-variance (Kendall et al. "
                          f"2018).  {shown('loss_weighting')}"),
        click.option("--adversarial-centres", type=click.FloatRange(min=0.0), metavar="WEIGHT",
                     help="Train a centre classifier on the pooled encoder features behind a "
                          "gradient reversal of this weight, so the features forget the centre "
                          "(centres from a manifest's centre column or the patient ids, e.g. "
                          f"CHGJ007 -> CHGJ); 0: off.  {shown('adversarial_centres')}"),
    ]
    return option_group(*options)


def split_option() -> Callable:
    """``--split stratified|centre``: the kind of cross-validation split.

    See :func:`hnprog.splits.make_splits`.
    """
    return click.option(
        "--split", type=click.Choice(["stratified", "centre"]), default="stratified",
        show_default=True,
        help="stratified: event-stratified folds (the paper); centre: leave-one-centre-out, one "
             "fold per centre (manifest centre column or patient-id letters), --folds unused.")


def clinical_option(help: str) -> Callable:  # noqa: A002 - click's name
    """``--clinical FILE``: a HECKTOR 2021 clinical file (:func:`hnprog.data.read_clinical`)."""
    return click.option("--clinical", type=click.Path(exists=True, dir_okay=False),
                        help="HECKTOR 2021 clinical file (PatientID, CenterID, Age, T-stage, "
                             "N-stage, HPV status, ...; empty cells allowed): " + help)


# -- the Hugging Face Hub ----------------------------------------------------------------------


def cache_dir_option() -> Callable:
    """``--cache-dir``: the Hugging Face cache folder."""
    return click.option(
        "--cache-dir", type=click.Path(file_okay=False), default=None,
        help="Hugging Face cache folder. [default: HF_HUB_CACHE or ~/.cache/huggingface/hub]",
    )


def endpoint_option() -> Callable:
    """``--endpoint``: the Hub's URL."""
    return click.option(
        "--endpoint", default=None, metavar="URL",
        help="Hub URL. [default: HF_ENDPOINT or https://huggingface.co]",
    )


def hub_options() -> Callable:
    """``--cache-dir`` and ``--endpoint``: where a download comes from and goes to."""
    return option_group(cache_dir_option(), endpoint_option())
