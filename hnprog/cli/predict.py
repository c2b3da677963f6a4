"""Prediction commands: ``hnprog predict``, ``hnprog demo`` and ``hnprog info``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from hnprog.cli.common import echo_done, needs_keras, quiet_keras_start
from hnprog.cli.options import (LibraryDefault, bboxes_option, clinical_option, data_argument,
                                endpoints_option,
                                jobs_option, out_option, parse_days, runtime_options,
                                scheduler_option)
from hnprog.errors import InputError, counted

__all__ = ["COMMANDS", "demo_command", "info_command", "predict_command"]


def _parse_box(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--bbox`` as a :class:`hnprog.geometry.BoundingBox`; a malformed box is a usage error."""
    if value is None:
        return None
    from hnprog.geometry import BoundingBox

    try:
        return BoundingBox.parse(value)
    except InputError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _parse_center(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--center x,y,z`` (mm) as a tuple of 3 floats; a malformed one is a usage error."""
    if value is None:
        return None
    try:
        center = tuple(float(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        center = ()
    if len(center) != 3 or not all(c == c and abs(c) != float("inf") for c in center):
        raise click.BadParameter(f"a centre is three numbers x,y,z in mm. Received: {value!r}",
                                 ctx=ctx, param=param)
    return center


class _SUVWindow(click.ParamType):
    """``--suv-window LO,HI``: the overlays' PET window, SUV; a usage error when malformed
    (:func:`hnprog.plotting.check_suv_window`)."""

    name = "LO,HI"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):  # the library default
            return value
        from hnprog.plotting import check_suv_window

        try:
            return check_suv_window(str(value).split(","))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


@click.command("predict")
@data_argument(required=False)
@click.option("--ct", type=click.Path(exists=True, dir_okay=False),
              help="CT of one patient, in HU (NIfTI or any format SimpleITK reads).")
@click.option("--pet", type=click.Path(exists=True, dir_okay=False),
              help="PET of one patient, in SUV (NIfTI or any format SimpleITK reads).")
@click.option("--model", "-m", "models", multiple=True, required=True,
              help="Preset name, hf://org/repo[@revision] or preset folder; repeat it (or give "
                   "a folder of fold presets) to average several folds.")
@out_option()
@click.option("--patient-id", default=None,
              help="Name of the patient in the outputs and messages (with --ct/--pet).  "
                   "[default: from the CT file name, without its extension and a trailing _ct, "
                   "_CT or __CT: CHGJ007_ct.nii.gz -> CHGJ007; a generic name such as "
                   "CT.nii.gz gives its folder's name]")
@click.option("--mask", "reference_mask", type=click.Path(exists=True, dir_okay=False),
              help="Reference GTVt mask of the patient, for a Dice and the overlay (with --ct/--pet).")
@click.option("--bbox", "box", callback=_parse_box,
              help="Box x1,x2,y1,y2,z1,z2 in mm (with --ct/--pet), the size of the model's "
                   "cube (144 mm for the paper's models; another size is refused).  "
                   "[default: the automatic box from the PET]")
@click.option("--center", callback=_parse_center, metavar="X,Y,Z",
              help="Centre of the model's cube in mm (with --ct/--pet), instead of --bbox.")
@bboxes_option(purpose=", for a cohort")
@click.option("--auto-box", is_flag=True,
              help="Use the automatic PET box for every patient, ignoring any box CSV (as "
                   "hnprog demo does; with the shipped box CSVs results differ slightly).")
@endpoints_option(purpose=", to report the C-index")
@click.option("--times", callback=parse_days, default=None,
              help="Days at which to report each patient's survival probability, comma "
                   "separated (columns survival_<days>d of risk.csv and predictions.csv), "
                   "from the presets' Breslow baseline; beyond the training patients' "
                   "follow-up the probability is empty.  [default: 365,730,1095,1825]")
@click.option("--format", "output_format", type=click.Choice(["hnprog", "hecktor"]),
              default="hnprog", show_default=True,
              help="hecktor: also write the HECKTOR challenge's PatientID,Prediction file "
                   "(hecktor_predictions.csv; Prediction = the risk, higher is worse), which "
                   "hnprog evaluate scores with the challenge's C-index.")
@click.option("--no-overlay", is_flag=True, help="Skip the PNG overlays (faster).")
@click.option("--suv-window", type=_SUVWindow(), show_default=True,
              default=LibraryDefault("hnprog.plotting:plot_overlay", "suv_window"),
              help="PET window of the overlays in SUV, black to white, the same for every "
                   "patient (the ends of the colour bar).")
@click.option("--restart", is_flag=True, help="Predict every patient again instead of resuming.")
@click.option("--dicom-out", is_flag=True,
              help="Also write <ID>/gtvt_rtstruct.dcm: the predicted GTVt as an RTSTRUCT on the "
                   "patient's CT series (DATA must be DICOM patient folders).")
@runtime_options()
@scheduler_option()
@click.option("--risk-map", is_flag=True,
              help="Also write risk_map.nii.gz on the CT grid: where the predicted risk comes "
                   "from, drawn in the overlay.")
@click.option("--risk-map-method", type=click.Choice(["occlusion", "gradcam"]),
              default="occlusion", show_default=True,
              help="How the risk map is made (giving it implies --risk-map). occlusion: how "
                   "much the risk drops when each block of the image is hidden (129 forward "
                   "passes per patient; faithful). gradcam: Grad-CAM over the encoder levels "
                   "(one pass; coarse).")
@clinical_option("with presets trained --clinical, risk.csv and predictions.csv gain "
                 "risk_clinical, the log-hazard of the image risk and the clinical covariates "
                 "combined.")
def predict_command(data: str | None, ct: str | None, pet: str | None, models: tuple[str, ...],
                    out_dir: str, patient_id: str | None, reference_mask: str | None,
                    box: Any, center: tuple[float, float, float] | None, bboxes: str | None,
                    auto_box: bool, endpoints: str | None,
                    times: tuple[float, ...] | None, output_format: str, no_overlay: bool,
                    restart: bool, dicom_out: bool, runtime: str, precision: str,
                    tta: bool, executor: Any, risk_map: bool, risk_map_method: str,
                    suv_window: tuple[float, float], clinical: str | None) -> None:
    """Predict the risk and the tumour contour of one patient or of a cohort.

    One patient: give --ct and --pet. A cohort: give DATA, a HECKTOR 2020/2021/2022 or nnU-Net
    folder, a CSV manifest or DICOM patient folders (converted once into a cache); each
    patient gets a folder, failed patients are listed with the reason in failures.csv, and a
    second run resumes where the first stopped.

    Each patient folder holds risk.csv (Cox log-hazard: higher is worse; the risk group at
    the model's threshold; for several folds also risk_fold_sd, the spread of the risk across
    the folds; survival_<days>d probabilities when the presets record a survival baseline, as
    the shipped ones do), gtvt_probability.nii.gz
    and gtvt_mask.nii.gz on the patient's original CT grid (open them over the CT in 3D Slicer
    or ITK-SNAP), overlay.png and report.json (box, tumour volume in mL, survival curve,
    preprocessing, versions, warnings). A cohort also gets predictions.csv and metrics.json
    (C-index with endpoints; Dice and the 95th-percentile Hausdorff distance in mm with
    masks).

    \b
    Examples:
      hnprog predict --ct P1_ct.nii.gz --pet P1_pt.nii.gz -m unet3d_multitask_synthetic_petct \\
          -o out/P1
      hnprog predict data/ -m cv/multitask/fold-1/preset -m cv/multitask/fold-2/preset \\
          -o predictions/
      hnprog predict data/ -m exported/ --runtime openvino -o predictions/
    """
    # Which options go together is the command line's business; these errors name its flags.
    if auto_box and (box is not None or center is not None or bboxes is not None):
        raise InputError("--auto-box ignores every box: do not combine it with --bbox, --center "
                         "or --bboxes")
    if box is not None and center is not None:
        raise click.UsageError("give --bbox or --center, not both")
    single = ct is not None or pet is not None
    if (box is not None or center is not None) and not single:
        raise click.UsageError("--bbox and --center are for one patient (--ct/--pet); a cohort "
                               "takes a box file (--bboxes)")
    if single and data is not None:
        raise InputError("give either DATA (a cohort) or --ct and --pet (one patient), not both")
    if single and (ct is None or pet is None):  # a command-line mistake: exit status 2
        raise click.UsageError(f"one patient needs both --ct and --pet; "
                               f"{'--pet' if pet is None else '--ct'} is missing")
    if not single and data is None:
        raise InputError("nothing to predict: give DATA (a cohort) or --ct and --pet")
    if dicom_out and single:
        raise InputError("--dicom-out references the patient's DICOM CT series: give the DICOM "
                         "patient folder as DATA instead of --ct and --pet")
    with _notes():
        rows = _predict(data, ct, pet, models, out_dir, single=single, patient_id=patient_id,
                        box=box, center=center, reference_mask=reference_mask,
                        bboxes={} if auto_box else bboxes, endpoints=endpoints, times=times,
                        no_overlay=no_overlay, restart=restart, dicom_out=dicom_out,
                        runtime=runtime, precision=precision, tta=tta, executor=executor,
                        risk_map=risk_map_method if risk_map or _given(
                            "risk_map_method") else False,
                        suv_window=suv_window, clinical=clinical)
    if output_format == "hecktor":
        from hnprog.predict.outputs import HECKTOR_FILE, write_hecktor_csv

        path = write_hecktor_csv(rows, Path(out_dir) / HECKTOR_FILE)
        echo_done(f"HECKTOR submission file: {path}")


def _predict(data: str | None, ct: str | None, pet: str | None, models: tuple[str, ...],
             out_dir: str, *, single: bool, patient_id: str | None, box: Any,
             center: tuple[float, float, float] | None, reference_mask: str | None,
             bboxes: Any, endpoints: str | None, times: tuple[float, ...] | None,
             no_overlay: bool, restart: bool, dicom_out: bool, runtime: str, precision: str,
             tta: bool, executor: Any, risk_map: bool | str, suv_window: tuple[float, float],
             clinical: str | None) -> list[dict[str, Any]]:
    """The checked inputs, then the model, then one patient or a cohort: the rows
    (patient_id, risk) of the patients predicted."""
    # Everything that can be wrong with the inputs is found before Keras starts (14-22 s of
    # TensorFlow import): the presets' records, the box, the clinical file, the cohort's files
    # and box and endpoint CSVs, and one patient's images.
    config = _recorded_preprocessing(models)
    runtimes, exported = _checked_runtimes(models, runtime, precision)
    if box is not None or center is not None:
        box = _checked_box(box, center, config.field_of_view_mm)
    table = None
    if clinical is not None:
        from hnprog.data.clinical import read_clinical

        table = read_clinical(clinical)
    if single:
        inputs = _load_one(ct, pet, config, patient_id=patient_id, box=box,
                           reference_mask=reference_mask)
    else:
        inputs = _read_cohort(data, endpoints=endpoints, bboxes=bboxes,
                              dicom_out=dicom_out)
    quiet_keras_start()
    from hnprog.predict import load_predictor

    predictor = load_predictor(list(models), runtime=runtime, precision=precision, tta=tta)
    from hnprog.predict.patient import model_warnings

    for warning in model_warnings(predictor):  # on every run: the numbers follow it
        click.secho(f"Warning: {warning}.", fg="yellow", err=True)
    if runtime == "auto" and exported:  # a never-exported preset has no choice to report
        why = ("the fastest when exported on this machine" if set(runtimes) != {"keras"}
               else "no faster export measured on this machine")
        click.echo(f"runtime: {', '.join(dict.fromkeys(runtimes))} (--runtime auto: {why})",
                   err=True)
    options = dict(overlay=not no_overlay, times=times, risk_map=risk_map,
                   suv_window=suv_window, clinical=table)
    if single:
        rows = _predict_one(inputs, predictor, out_dir, **options)
    else:
        rows = _predict_cohort(inputs, predictor, out_dir, resume=not restart,
                               dicom_out=dicom_out, executor=executor, **options)
    return rows


def _given(parameter: str) -> bool:
    """Whether the user gave the option on the command line (not its default)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source not in (None, click.core.ParameterSource.DEFAULT)


def _recorded_preprocessing(models: tuple[str, ...]) -> Any:
    """The preprocessing the (first) preset records, read from its ``hnprog.json`` without
    starting Keras (:class:`hnprog.transforms.PreprocessConfig`)."""
    from hnprog.predict import preprocess_config_from_spec
    from hnprog.presets.format import read_metadata
    from hnprog.presets.loading import resolve

    first = resolve(models[0])[0]  # a family name or a folder of folds: its first member
    return preprocess_config_from_spec(read_metadata(first.folder, root=first.root)
                                       .get("preprocessing"))


def _checked_runtimes(models: tuple[str, ...], runtime: str,
                      precision: str) -> tuple[list[str], bool]:
    """The runtime of each preset, decided (and bf16 or a missing export refused) from the
    ``hnprog.json`` files, before Keras starts (:func:`hnprog.presets.loading.chosen_runtimes`),
    and whether any preset was exported (so that ``auto`` had a choice)."""
    from hnprog.presets.exported import exported_formats
    from hnprog.presets.format import read_metadata
    from hnprog.presets.loading import chosen_runtimes, resolve

    found = resolve(models[0] if len(models) == 1 else list(models))
    exported = any(exported_formats(read_metadata(item.folder, root=item.root))
                   for item in found)
    return chosen_runtimes(found, runtime, precision), exported


def _checked_box(box: Any, center: tuple[float, float, float] | None, edge: float) -> Any:
    """The one patient's box: the model's cube of ``edge`` mm around ``--center``, or the
    ``--bbox`` checked against it (:meth:`hnprog.geometry.BoundingBox.check_cube`)."""
    from hnprog.geometry import BoundingBox

    if center is not None:
        return BoundingBox.from_center(center, edge)
    try:
        return box.check_cube(edge, "--bbox")
    except InputError as exc:  # a command-line mistake: exit status 2
        raise click.BadParameter(str(exc).removeprefix("--bbox "),
                                 param_hint="'--bbox'") from exc


def _load_one(ct: str, pet: str, config: Any, *, patient_id: str | None, box: Any,
              reference_mask: str | None) -> Any:
    """One patient read, checked, boxed and preprocessed
    (:func:`hnprog.predict.patient.load_patient`), before any model is loaded."""
    from hnprog.data.cohort import Patient, patient_id_from_path
    from hnprog.predict.patient import PredictionJob, load_patient

    patient = Patient(patient_id or patient_id_from_path(ct), Path(ct), Path(pet),
                      None if reference_mask is None else Path(reference_mask))
    return load_patient(PredictionJob(patient, Path("."), box), config)


def _read_cohort(data: str, *, endpoints: str | None, bboxes: Any, dicom_out: bool) -> Any:
    from hnprog.data.cohort import read_cohort

    cohort = read_cohort(data, endpoints=endpoints, bboxes=bboxes)
    if dicom_out and cohort.layout != "dicom":
        raise InputError(f"--dicom-out needs DATA to be DICOM patient folders; {data} is a "
                         f"{cohort.layout} cohort")
    return cohort


@contextlib.contextmanager
def _notes() -> Iterator[None]:
    """hnprog's own warnings of a prediction run (a preset without survival baseline, days
    beyond its follow-up), each printed once as a ``Note:`` line after the run."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    seen = set()
    for warning in caught:
        text = str(warning.message)
        if "hnprog" in str(warning.filename) and issubclass(
                warning.category, (UserWarning, RuntimeWarning)):
            if text not in seen:
                seen.add(text)
                click.echo(f"Note: {text}", err=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)


def _predict_one(loaded: Any, predictor: Any, out_dir: str, **options: Any
                 ) -> list[dict[str, Any]]:
    from hnprog.predict import predict_patient

    job = loaded.job
    patient_id = job.patient_id
    result = predict_patient(job.patient.ct, job.patient.pet, predictor, out_dir,
                             patient_id=patient_id, box=job.box, reference_mask=job.patient.mask,
                             loaded=loaded, **options)
    group = f" ({result.risk_group} risk)" if result.risk_group else ""
    volume = ("" if result.tumour_volume_ml is None
              else f", predicted GTVt {result.tumour_volume_ml:.1f} mL")
    survival = ""
    if result.survival is not None:
        survival = "; " + ", ".join(
            f"{days:g}-day survival {p:.0%}" for days, p in zip(result.survival.times_days,
                                                                 result.survival.probability)
            if p == p)
    if result.clinical is not None:
        survival += f"; with clinical covariates {result.clinical['log_hazard']:+.3f}"
    echo_done(f"{patient_id}: risk (log-hazard) {result.risk:+.3f}{group}{volume}{survival}; "
              f"outputs in {out_dir}")
    return [{"patient_id": patient_id, "risk": result.risk}]


def _predict_cohort(cohort: Any, predictor: Any, out_dir: str, *, dicom_out: bool = False,
                    **options: Any) -> list[dict[str, Any]]:
    from hnprog.predict import predict_cohort

    predictions, failures, metrics = predict_cohort(cohort, predictor, out_dir, **options)
    if dicom_out:
        _write_rtstructs(cohort.root, out_dir, predictions)
    if len(failures):
        click.secho(f"{len(failures)} of {len(cohort)} patients failed; reasons in "
                    f"{out_dir}/failures.csv", fg="yellow", err=True)
    scores = []
    if "c_index" in metrics:
        scores.append(f"C-index {metrics['c_index']:.3f}")
    if "dice_mean" in metrics:
        scores.append(f"mean Dice {metrics['dice_mean']:.3f}")
    n_resumed = metrics.get("n_resumed", 0)
    done = f"{counted(len(predictions) - n_resumed, 'patient')} predicted into {out_dir}"
    if n_resumed:
        done = (f"{len(predictions) - n_resumed} patients predicted now, {n_resumed} already "
                f"done by an earlier run (--restart redoes them); all {len(predictions)} in "
                f"{out_dir}/predictions.csv")
    echo_done(done + (f" ({', '.join(scores)})" if scores else ""))
    if len(predictions) == 0:
        raise click.ClickException(f"no patient could be predicted; see {out_dir}/failures.csv")
    return predictions[["patient_id", "risk"]].to_dict("records")


def _write_rtstructs(dicom_root: Any, out_dir: str, predictions: Any) -> None:
    from hnprog.data.dicom.export import write_cohort_rtstructs

    run = write_cohort_rtstructs(dicom_root, out_dir, [str(i) for i in predictions["patient_id"]])
    for pid, reason in run.failures.items():
        click.secho(f"{pid}: no RTSTRUCT written: {reason}", fg="yellow", err=True)
    click.echo(f"{len(run.results)} RTSTRUCTs (<ID>/gtvt_rtstruct.dcm) on the patients' CT "
               "series", err=True)


_DEMO = "hnprog.demo:run_demo"


@click.command("demo")
@out_option(default=LibraryDefault(_DEMO, "out_dir"))
@click.option("--patients", "-n", default=LibraryDefault(_DEMO, "n_patients"), show_default=True,
              type=click.IntRange(min=4), help="Held-out synthetic patients to predict.")
@click.option("--seed", default=LibraryDefault(_DEMO, "seed"), show_default=True,
              type=click.IntRange(min=0), help="Seed of the held-out cohort.")
@click.option("--model", "-m", default=None,
              help="Preset name, folder or hf:// URI.  [default: the shipped synthetic presets]")
@click.option("--train", is_flag=True,
              help="Train a fast multi-task model here instead of using a preset (slower).")
@click.option("--epochs", default=LibraryDefault(_DEMO, "epochs"), show_default=True,
              type=click.IntRange(min=1), help="Training epochs with --train.")
@jobs_option("Processes generating the synthetic cohorts.", default=LibraryDefault(_DEMO, "n_jobs"))
@needs_keras
def demo_command(out_dir: str, patients: int, seed: int, model: str | None, train: bool,
                 epochs: int, n_jobs: int) -> None:
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
             n_jobs=n_jobs, echo=click.echo)
    echo_done(f"Everything is in {out_dir}/ (summary.md, kaplan_meier.png, predictions/).")


@click.command("info")
@needs_keras
def info_command() -> None:
    """Show the CPU's vector extensions, whether TensorFlow's oneDNN kernels are on, the Keras
    backend, the devices it sees and the versions of the key libraries.

    \b
    Example:
      KERAS_BACKEND=jax hnprog info
    """
    from hnprog.runtime import runtime_summary

    for line in runtime_summary():
        click.echo(line)


COMMANDS = (predict_command, demo_command, info_command)
