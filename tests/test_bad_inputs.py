"""Bad inputs and injected faults, as one table (issue #17): the next hole is one row.

Each row builds its inputs in a fresh folder and runs one ``hnprog`` command (or, where the
hole is below the command line, one library call, whose :class:`~hnprog.errors.HnprogError`
counts as the CLI's exit status 1). It states the exit status, words the message must hold,
and the files that must or must not exist afterwards (relative to the row's folder). Unless a
row says otherwise the message is one line: no traceback, no library chatter.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.errors import HnprogError
from hnprog.io import LOCK_FILE, write_image
from hnprog.testing.cohorts import make_ct, make_pet, write_cohort

# What the rows' make functions get: the row's folder and the module's shared inputs.
Make = Callable[[Path, "Inputs"], "list[str] | Callable[[], Any]"]


@dataclasses.dataclass(frozen=True)
class Inputs:
    preset: Path  # a tiny preset (16^3 at 1 mm)
    cohort: Path  # two tiny hand-made patients P1, P2 with boxes and endpoints
    synthetic: Path  # the tiny synthetic cohort (automatic boxes work on it)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: how to make it, and what the user must see."""

    id: str
    make: Make
    status: int
    words: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    one_line: bool = True
    env: tuple[tuple[str, str | None], ...] = ()
    fault: Callable[[pytest.MonkeyPatch], None] | None = None  # injected after make
    check: Callable[[Path], None] | None = None  # more to assert on the row's folder


# -- helpers that build inputs ------------------------------------------------------------------


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _manifest(tmp: Path, inputs: Inputs, first_id: str) -> Path:
    rows = [f"{first_id},{inputs.cohort}/P1_ct.nii.gz,{inputs.cohort}/P1_pt.nii.gz",
            f"P2,{inputs.cohort}/P2_ct.nii.gz,{inputs.cohort}/P2_pt.nii.gz"]
    (tmp / "m").mkdir()
    (tmp / "m" / "manifest.csv").write_text("patient_id,ct,pet\n" + "\n".join(rows) + "\n")
    return tmp / "m" / "manifest.csv"


def _dotdot_file(tmp: Path, inputs: Inputs) -> list[str]:
    cohort = _copy(inputs.cohort, tmp / "c")
    shutil.copy(inputs.cohort / "P1_ct.nii.gz", cohort / ".._ct.nii.gz")
    return _preprocess(tmp, cohort)


def _mixed_layouts(tmp: Path, inputs: Inputs) -> list[str]:
    """A HECKTOR 2021 folder that also holds a HECKTOR 2020 patient folder, P3/."""
    cohort = _copy(inputs.cohort, tmp / "c")
    (cohort / "P3").mkdir()
    shutil.copy(inputs.cohort / "P1_ct.nii.gz", cohort / "P3" / "P3_ct.nii.gz")
    return _preprocess(tmp, cohort)


def _predict_one(tmp: Path, inputs: Inputs, *extra: str, preset: Path | None = None,
                 ct: Path | None = None) -> list[str]:
    return ["predict", "--ct", str(ct or inputs.cohort / "P1_ct.nii.gz"),
            "--pet", str(inputs.cohort / "P1_pt.nii.gz"), "-m", str(preset or inputs.preset),
            "-o", str(tmp / "out"), "--no-overlay", "--center", "0,0,0", *extra]


def _predict_cohort(tmp: Path, inputs: Inputs, cohort: Path | None = None) -> list[str]:
    return ["predict", str(cohort or inputs.cohort), "-m", str(inputs.preset),
            "-o", str(tmp / "out"), "--no-overlay"]


def _preprocess(tmp: Path, cohort: Path, *extra: str) -> list[str]:
    return ["preprocess", str(cohort), "-o", str(tmp / "out"), "--spacing", "2",
            "--crop-size", "16", *extra]


def _tampered_preset(tmp: Path, inputs: Inputs, change: Callable[[Path], None]) -> Path:
    """A copy of the tiny preset changed by ``change``, its hnprog.json re-hashed."""
    from hnprog.presets.format import read_metadata, write_metadata

    folder = _copy(inputs.preset, tmp / "preset")
    metadata = read_metadata(folder)
    change(folder)
    write_metadata(folder, metadata)
    return folder


def _listing_outside(tmp: Path, inputs: Inputs) -> list[str]:
    folder = _copy(inputs.preset, tmp / "preset")
    metadata = json.loads((folder / "hnprog.json").read_text())
    metadata["files"]["../../../../etc/hostname"] = "0" * 64
    (folder / "hnprog.json").write_text(json.dumps(metadata))
    return _predict_one(tmp, inputs, preset=folder)


def _symlink_outside(tmp: Path, inputs: Inputs) -> list[str]:
    (tmp / "secret.txt").write_text("not a model card")

    def link(folder: Path) -> None:
        (folder / "README.md").unlink()
        (folder / "README.md").symlink_to(tmp / "secret.txt")

    return _predict_one(tmp, inputs, preset=_tampered_preset(tmp, inputs, link))


def _deep_config(tmp: Path, inputs: Inputs) -> list[str]:
    folder = _tampered_preset(
        tmp, inputs, lambda f: (f / "config.json").write_text("[" * 200_000))
    return _predict_one(tmp, inputs, preset=folder)


def _other_architecture(tmp: Path, inputs: Inputs) -> list[str]:
    from hnprog.testing.presets import make_tiny_preset, tiny_model

    other = make_tiny_preset(tmp / "other", model=tiny_model(1, outputs=("risk",)))
    folder = _tampered_preset(tmp, inputs, lambda f: shutil.copy(other / "model.weights.h5", f))
    return _predict_one(tmp, inputs, preset=folder)


def _short_pet_no_boxes(tmp: Path, inputs: Inputs) -> Path:
    """The synthetic cohort without its box file, its second patient's PET cut to 2 slices."""
    cohort = _copy(inputs.synthetic, tmp / "cohort")
    for box_file in cohort.glob("*bbox*.csv"):
        box_file.unlink()
    pet = sorted(cohort.glob("*_pt.nii.gz"))[1]
    write_image(sitk.ReadImage(str(pet))[:, :, :2], pet)
    return cohort


def _truncated_mha(tmp: Path, inputs: Inputs) -> list[str]:
    sitk.WriteImage(make_ct(), str(tmp / "ct.mha"), False)
    data = (tmp / "ct.mha").read_bytes()
    (tmp / "ct.mha").write_bytes(data[: len(data) // 2])
    return _predict_one(tmp, inputs, ct=tmp / "ct.mha")


def _pet_of(tmp: Path, inputs: Inputs, value: float) -> Path:
    """P1's PET with every voxel set to ``value`` (its geometry kept)."""
    pet = sitk.ReadImage(str(inputs.cohort / "P1_pt.nii.gz")) * 0 + value
    write_image(pet, tmp / "pet.nii.gz")
    return tmp / "pet.nii.gz"


def _predict_with_pet(value: float) -> Make:
    def make(tmp: Path, inputs: Inputs) -> list[str]:
        args = _predict_one(tmp, inputs)
        args[args.index("--pet") + 1] = str(_pet_of(tmp, inputs, value))
        return args
    return make


def _pet_without_geometry(tmp: Path, inputs: Inputs) -> list[str]:
    """P1's PET as a conversion that lost its header writes it: origin 0, 1 mm, identity."""
    pet = sitk.ReadImage(str(inputs.cohort / "P1_pt.nii.gz"))
    pet.SetOrigin((0.0, 0.0, 0.0))
    pet.SetSpacing((1.0, 1.0, 1.0))
    pet.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_image(pet, tmp / "pet.nii.gz")
    args = _predict_one(tmp, inputs)
    args[args.index("--pet") + 1] = str(tmp / "pet.nii.gz")
    return args


def _predict_with_mask(values: Callable[[sitk.Image], sitk.Image]) -> Make:
    def make(tmp: Path, inputs: Inputs) -> list[str]:
        from hnprog.testing.cohorts import make_mask

        ct = sitk.ReadImage(str(inputs.cohort / "P1_ct.nii.gz"))
        write_image(values(make_mask(ct)), tmp / "mask.nii.gz")
        return _predict_one(tmp, inputs, "--mask", str(tmp / "mask.nii.gz"))
    return make


def _mask_moved_by(shift_mm: float) -> Make:
    """P1's mask on a grid moved by ``shift_mm`` along x: what another patient's mask is."""
    def move(mask: sitk.Image) -> sitk.Image:
        moved = sitk.Image(mask)
        moved.SetOrigin([v + (shift_mm if axis == 0 else 0.0)
                         for axis, v in enumerate(mask.GetOrigin())])
        return moved
    return _predict_with_mask(move)


def _radiomics_with_constant_pet(tmp: Path, inputs: Inputs) -> list[str]:
    from hnprog.testing.cohorts import make_mask

    cohort = _copy(inputs.cohort, tmp / "c")
    for pid in ("P1", "P2"):
        ct = sitk.ReadImage(str(cohort / f"{pid}_ct.nii.gz"))
        write_image(make_mask(ct), cohort / f"{pid}_gtvt.nii.gz")
    write_image(_pet_of(tmp, inputs, 0.0) and sitk.ReadImage(str(tmp / "pet.nii.gz")),
                cohort / "P1_pt.nii.gz")
    return ["radiomics", "extract", str(cohort), "--out", str(tmp / "f.csv")]


def _box_csv(content: bytes) -> Make:
    def make(tmp: Path, inputs: Inputs) -> list[str]:
        (tmp / "boxes.csv").write_bytes(content)
        return _preprocess(tmp, inputs.cohort, "--bboxes", str(tmp / "boxes.csv"))

    return make


def _truncated_checkpoint(tmp: Path, inputs: Inputs) -> Callable[[], Any]:
    from hnprog.testing.presets import tiny_model
    from hnprog.training.callbacks import STATE_FILE, RunCheckpoint

    model = tiny_model()
    model.compile(optimizer="adam", loss={"risk": "mse", "segmentation": "mse"})
    (tmp / "checkpoint").mkdir()
    model.save_weights(tmp / "checkpoint" / "epoch-0001.weights.h5")
    weights = tmp / "checkpoint" / "epoch-0001.weights.h5"
    weights.write_bytes(weights.read_bytes()[:500])
    state = {"weights": "epoch-0001.weights.h5", "best_weights": None, "best_epoch": None,
             "best_value": None, "history": [], "seed_states": [], "epochs_completed": 1,
             "fingerprint": {}}
    (tmp / "checkpoint" / STATE_FILE).write_text(json.dumps(state))
    return lambda: RunCheckpoint(tmp / "checkpoint").restore(model)


def _lambda_keras_file(tmp: Path, inputs: Inputs) -> Callable[[], Any]:
    import keras

    # the loader finetune --from uses for .keras files (hnprog.training.finetuning imports it)
    from hnprog.presets.loading import load_keras_file

    image = keras.Input((4, 4, 4, 2), name="image")
    model = keras.Model(image, keras.layers.Lambda(lambda x: x * 2.0)(image))
    model.save(tmp / "m.keras")
    return lambda: load_keras_file(tmp / "m.keras")


def _run_folder(files: dict[str, str], written: Sequence[str] | None = None,
                **flags: bool) -> Make:
    """A run folder holding ``files``; those in ``written`` as hnprog wrote them (listed in
    its .hnprog-files), the others as a user put them there."""
    def make(tmp: Path, inputs: Inputs) -> Callable[[], Any]:
        from hnprog.io import atomic_write, start_run_manifest
        from hnprog.training.fit import prepare_run_folder

        if written is not None:
            start_run_manifest(tmp / "run")
        for name, text in files.items():
            (tmp / "run" / name).parent.mkdir(parents=True, exist_ok=True)
            if name in (written or ()):
                with atomic_write(tmp / "run" / name) as f:
                    f.write(text)
            else:
                (tmp / "run" / name).write_text(text)
        return lambda: prepare_run_folder(tmp / "run", {"epochs": 1}, **flags)

    return make


def _predictions_inside_run(tmp: Path, inputs: Inputs) -> Callable[[], Any]:
    """A training run folder with ``hnprog predict --out run/predictions`` written inside it
    (an output folder of its own, held while it is written), then replaced by --overwrite."""
    from hnprog.io import atomic_write, output_folder, start_run_manifest, write_json
    from hnprog.training.fit import prepare_run_folder

    start_run_manifest(tmp / "run")
    with atomic_write(tmp / "run" / "config.json") as f:
        f.write("{}")
    with output_folder(tmp / "run" / "predictions") as out:
        write_json({"risk": 0.3}, out / "P1" / "report.json")
    return lambda: prepare_run_folder(tmp / "run", {"epochs": 1}, overwrite=True)


def _locked(pid: Callable[[], int]) -> Make:
    def make(tmp: Path, inputs: Inputs) -> list[str]:
        import socket

        (tmp / "out").mkdir()
        (tmp / "out" / LOCK_FILE).write_text(f"{socket.gethostname()} {pid()}\n")
        return _predict_cohort(tmp, inputs)

    return make


def _moved_reference(tmp: Path, inputs: Inputs) -> list[str]:
    """A reference mask of the CT's size and spacing but 200 mm away: it covers no tumour."""
    mask = sitk.ReadImage(str(inputs.cohort / "P1_gtvt.nii.gz"))
    mask.SetOrigin([o + 200.0 for o in mask.GetOrigin()])
    sitk.WriteImage(mask, str(tmp / "moved_gtvt.nii.gz"))
    return _predict_one(tmp, inputs, "--mask", str(tmp / "moved_gtvt.nii.gz"))


def _dice_is_zero(tmp: Path) -> None:
    report = json.loads((tmp / "out" / "report.json").read_text())
    assert report["tumour_volume_ml"], "the tiny model must predict some GTVt for this row"
    assert report["dice_with_reference"] == 0.0


def _report_warns_of_the_mask(tmp: Path) -> None:
    report = json.loads((tmp / "out" / "report.json").read_text())
    assert any("is on neither the CT's grid" in w for w in report["warnings"]), report


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _stale_temp_file(tmp: Path, inputs: Inputs) -> list[str]:
    (tmp / "out" / "P1").mkdir(parents=True)
    (tmp / "out" / "P1" / ".report.json.abcd1234.json").write_text('{"half": ')
    (tmp / "out" / "P1" / ".my-notes.txt").write_text("the user's own hidden file")
    return _predict_cohort(tmp, inputs)


def _other_model_resumed(tmp: Path, inputs: Inputs) -> list[str]:
    (tmp / "out" / "P1").mkdir(parents=True)
    (tmp / "out" / "P1" / "report.json").write_text(json.dumps({"models": ["another-model"]}))
    return _predict_cohort(tmp, inputs)


def _no_space(monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)  # every atomic_write fails as on a full disk


# -- the table ----------------------------------------------------------------------------------

CASES = [
    # 1. patient ids that would name files outside --out
    Case("manifest id ../escaped (preprocess)",
         lambda t, i: _preprocess(t, _manifest(t, i, "../escaped")),
         1, ("manifest.csv, line 2", "not a safe file name", "'../escaped'"),
         absent=("escaped.npz", "out")),
    Case("manifest id that is an absolute path (predict)",
         lambda t, i: _predict_cohort(t, i, _manifest(t, i, str(t / "abs"))),
         1, ("line 2", "not a safe file name"), absent=("abs", "out")),
    Case("layout file named .._ct.nii.gz (id '..')", _dotdot_file,
         1, ("c/.._ct.nii.gz", "names a folder, not a patient"), absent=("out",)),
    # 11. a reference mask on another origin is mapped by position (its Dice was 0.813, then
    # 0); one whose GTVt lies wholly outside the CT cannot be this patient's: refused
    Case("reference mask of the CT's size, 200 mm away", _moved_reference,
         1, ("moved_gtvt.nii.gz", "lies outside the CT", "is it this patient's mask?"),
         absent=("out/report.json", "out/risk.csv")),
    # 9. two layouts in one folder: the second one's patients were silently skipped
    Case("mixed hecktor2021 and hecktor2020 layouts", _mixed_layouts,
         1, ("mixes layouts", "hecktor2021", "hecktor2020", "P3/"), absent=("out",)),
    # 2. presets may not read outside their folder
    Case("preset lists ../../../../etc/hostname", _listing_outside,
         1, ("lists a file outside the preset folder",), absent=("out/report.json",)),
    Case("preset file is a symlink leaving the folder", _symlink_outside,
         1, ("README.md resolves to", "outside the preset folder"), absent=("out/report.json",)),
    # 4. a config.json of 200,000 nested [
    Case("config.json nested 200,000 deep", _deep_config,
         1, ("config.json", "nested deeper than 100 levels"), absent=("out/report.json",)),
    # 5. a .keras file goes through the class allow-list too
    Case("finetune --from a .keras file with a Lambda layer", _lambda_keras_file,
         1, ("m.keras:config.json", "'Lambda'", "refused")),
    # 6. one bad patient (1-3 PET slices, no box file) never stops the cohort
    Case("2-slice PET, no box file (preprocess)",
         lambda t, i: ["preprocess", str(_short_pet_no_boxes(t, i)), "-o", str(t / "out"),
                       "--spacing", "4.5", "--crop-size", "32"],
         0, ("1 of 3 patients failed", "failures.csv"),
         present=("out/failures.csv", "out/cases.csv", "out/preprocess.json"), one_line=False),
    Case("2-slice PET, no box file (predict)",
         lambda t, i: _predict_cohort(t, i, _short_pet_no_boxes(t, i)),
         0, ("1 of 3 patients failed",),
         present=("out/failures.csv", "out/predictions.csv", "out/metrics.json"),
         one_line=False),
    # 10. disk full: one line naming the path, nothing half-written
    Case("disk full while writing", lambda t, i: _preprocess(t, i.cohort),
         1, ("no space left on the device", "out", "the file needs more than", "are free in",
             "The run stopped"), absent=("out/cases.csv", "out/P1.npz"),
         fault=_no_space),
    # 15. one writer per output folder; no resuming with another model
    Case("output folder locked by a live process", _locked(os.getppid),
         1, ("in use by another hnprog run", LOCK_FILE), absent=("out/predictions.csv",)),
    Case("lock left by a killed process is taken over", _locked(_dead_pid),
         0, (), present=("out/predictions.csv",), absent=(f"out/{LOCK_FILE}",), one_line=False),
    Case("resume into another model's folder", _other_model_resumed,
         1, ("holds predictions of other models", "another-model", "--restart"),
         absent=("out/predictions.csv",)),
    # 17. a user's files are never overwritten or deleted
    Case("train -o into a folder of the user's files",
         _run_folder({"history.csv": "the user's own table"}),
         1, ("is not empty", "holds no hnprog run"), present=("run/history.csv",)),
    Case("--overwrite keeps a user's file inside checkpoint/",
         _run_folder({"config.json": "{}", "checkpoint/epoch-0001.weights.h5": "w",
                      "checkpoint/my-notes.txt": "keep me", "checkpoint/history.csv": "mine"},
                     overwrite=True, written=("config.json", "checkpoint/epoch-0001.weights.h5")),
         0, (), present=("run/checkpoint/my-notes.txt", "run/checkpoint/history.csv"),
         absent=("run/checkpoint/epoch-0001.weights.h5", "run/config.json"), one_line=False),
    Case("--overwrite keeps predictions written inside the run folder",
         _predictions_inside_run, 0, (),
         present=("run/predictions/P1/report.json",), absent=("run/config.json",),
         one_line=False),
    Case("--overwrite on a run that does not list the files hnprog wrote",
         _run_folder({"config.json": "{}", "checkpoint/epoch-0001.weights.h5": "w"},
                     overwrite=True),
         1, ("has no list of the files hnprog wrote", "delete the folder yourself"),
         present=("run/config.json", "run/checkpoint/epoch-0001.weights.h5")),
    # 18. temp files of a killed run are removed on resume, the user's hidden files kept
    Case("stale temp file of a killed run", _stale_temp_file,
         0, (), present=("out/P1/report.json", "out/P1/.my-notes.txt"),
         absent=("out/P1/.report.json.abcd1234.json",), one_line=False),
    Case("stale temp file in a training run's checkpoint/ on --resume",
         _run_folder({"config.json": '{"fingerprint": {"epochs": 1}}',
                      "checkpoint/.epoch-0002.weights.h5.abcd1234.weights.h5": "half"},
                     resume=True),
         0, (), present=("run/config.json",),
         absent=("run/checkpoint/.epoch-0002.weights.h5.abcd1234.weights.h5",), one_line=False),
    # 19. one line and the right exit status
    Case("truncated .mha", _truncated_mha,
         1, ("ct.mha", "truncated", "MetaImage header promises"), absent=("out/report.json",)),
    Case("bad --bbox", lambda t, i: _predict_one(t, i)[:-2] + ["--bbox", "a,b,c,d,e,f"],
         2, ("--bbox", "six numbers")),
    # 13.10: the model crops its own cube, so a box of another size is refused, not ignored
    Case("--bbox of another size than the model's cube",
         lambda t, i: _predict_one(t, i)[:-2] + ["--bbox", "-30,30,-30,30,-30,30"],
         2, ("'--bbox'", "60 x 60 x 60 mm", "16 mm cube", "--center 0,0,0"),
         absent=("out",)),
    Case("bad --center", lambda t, i: _predict_one(t, i)[:-1] + ["1,2"],
         2, ("--center", "three numbers x,y,z")),
    Case("--ct without --pet",
         lambda t, i: ["predict", "--ct", str(i.cohort / "P1_ct.nii.gz"), "-m", str(i.preset),
                       "-o", str(t / "out")],
         2, ("needs both --ct and --pet", "--pet is missing"), absent=("out",)),
    Case("box CSV with a UTF-8 byte-order mark",
         _box_csv("\ufeffPatientID,x1,x2,y1,y2,z1,z2\nP1,-16,16,-16,16,-16,16\n"
                  "P2,-16,16,-16,16,-16,16\n".encode()),
         0, (), present=("out/P1.npz", "out/P2.npz"), one_line=False),
    Case("box CSV with ', ' separators",
         _box_csv(b"PatientID, x1, x2, y1, y2, z1, z2\nP1, -16, 16, -16, 16, -16, 16\n"
                  b"P2, -16, 16, -16, 16, -16, 16\n"),
         0, (), present=("out/P1.npz", "out/P2.npz"), one_line=False),
    Case("box CSV with Latin-1 bytes",
         _box_csv("PatientID,x1,x2,y1,y2,z1,z2\nP\xe91,-16,16,-16,16,-16,16\n".encode("latin-1")),
         1, ("boxes.csv, line 2", "not UTF-8", "0xe9"), absent=("out",)),
    Case("preset with weights of another architecture", _other_architecture,
         1, ("Error: preset", "do not fit the architecture"), absent=("out/report.json",)),
    Case("truncated checkpoint on --resume", _truncated_checkpoint,
         1, ("epoch-0001.weights.h5", "cannot be read (truncated or corrupt?)", "--overwrite")),
    # 13. images without signal and masks that are not 0/1 are refused before the forward pass
    Case("all-zero PET (predict)", _predict_with_pet(0.0),
         1, ("P1", "pet.nii.gz", "holds no signal", "every voxel is 0"),
         absent=("out/report.json", "out/risk.csv")),
    Case("constant PET of SUV 5 (predict)", _predict_with_pet(5.0),
         1, ("holds no signal", "every voxel is 5"), absent=("out/report.json",)),
    # 12. a PET that lost its geometry still overlaps the CT here: it is predicted, with a word
    Case("PET with the default geometry (origin 0, 1 mm, identity)", _pet_without_geometry,
         0, ("Note: patient P1", "pet.nii.gz has the default geometry", "check the overlay"),
         present=("out/report.json",), one_line=False),
    Case("empty --mask", _predict_with_mask(lambda m: m * 0),
         1, ("mask.nii.gz is empty", "no voxel is labelled 1"),
         absent=("out/report.json", "out/risk.csv")),
    Case("--mask with labels 0/255", _predict_with_mask(lambda m: m * 255),
         1, ("mask.nii.gz", "unexpected labels {255}"), absent=("out/report.json",)),
    Case("--mask with values 0/0.5", _predict_with_mask(
        lambda m: sitk.Cast(m, sitk.sitkFloat32) * 0.5),
         1, ("unexpected labels {0.5}",), absent=("out/report.json",)),
    Case("all-zero PET (radiomics extract)", _radiomics_with_constant_pet,
         0, ("1 patient x", "1 failed, reasons in"), present=("f.csv", "f_failures.csv"),
         one_line=False,
         check=lambda t: _failure_says(t / "f_failures.csv", "P1", "holds no signal")),
    # a mask of another patient: on neither image's grid (a word), or outside the CT (refused)
    Case("--mask on neither the CT's nor the PET's grid", _mask_moved_by(3.0),
         0, ("Note: patient", "mask.nii.gz is on neither the CT's grid", "this patient's mask"),
         present=("out/report.json",), one_line=False, check=_report_warns_of_the_mask),
    Case("--mask 18 mm away (by position its Dice is 0)", _mask_moved_by(18.0),
         0, ("mask.nii.gz is on neither the CT's grid",), present=("out/report.json",),
         one_line=False, check=_dice_is_zero),
    Case("no network when one is asked",
         lambda t, i: ["download", "hf://org/model", "--endpoint", "http://127.0.0.1:9",
                       "--cache-dir", str(t / "cache")],
         1, ("cannot reach http://127.0.0.1:9", "not in the local Hugging Face cache"),
         env=(("HF_HUB_OFFLINE", None),)),
]


def _failure_says(path: Path, patient_id: str, words: str) -> None:
    import pandas as pd

    failures = pd.read_csv(path).set_index("patient_id")
    assert words in failures.loc[patient_id, "error"], failures


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, synthetic_cohort) -> Inputs:
    from hnprog.testing.presets import make_tiny_preset

    root = tmp_path_factory.mktemp("bad-inputs")
    cohort = write_cohort(root / "cohort", ["P1", "P2"])
    return Inputs(make_tiny_preset(root / "preset"), cohort, synthetic_cohort)


def _run(case: Case, tmp: Path, inputs: Inputs, monkeypatch: pytest.MonkeyPatch
         ) -> tuple[int, str]:
    built = case.make(tmp, inputs)
    for name, value in case.env:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if case.fault is not None:
        case.fault(monkeypatch)
    if callable(built):
        try:
            built()
        except HnprogError as exc:
            return 1, f"Error: {exc}"
        return 0, ""
    result = CliRunner().invoke(main, built)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, inputs: Inputs, tmp_path: Path, monkeypatch) -> None:
    try:
        status, output = _run(case, tmp_path, inputs, monkeypatch)
    finally:
        monkeypatch.undo()
    assert status == case.status, output
    for word in case.words:
        assert word in output, f"{word!r} not in: {output}"
    if case.one_line:
        lines = [line for line in output.strip().splitlines()  # progress bars and notes aside
                 if line.strip() and "patient/s" not in line
                 and not line.startswith(("Note:", "Warning:"))]
        assert len(lines) == 1, output
        assert "Traceback" not in output
    for name in case.present:
        assert (tmp_path / name).exists(), f"{name} missing; output: {output}"
    for name in case.absent:
        assert not (tmp_path / name).exists(), f"{name} exists; output: {output}"
    if case.check is not None:
        case.check(tmp_path)
    leftovers = [p for p in tmp_path.rglob(".*.????????.*") if p.is_file()]
    assert not [p for p in leftovers if "abcd1234" not in p.name], leftovers


# -- sequences that a single row cannot express --------------------------------------------------


def _predict(inputs: Inputs, out: Path, *extra: str, cohort: Path | None = None) -> dict:
    result = CliRunner().invoke(main, ["predict", str(cohort or inputs.cohort), "-m",
                                       str(inputs.preset), "-o", str(out), "--no-overlay",
                                       *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_a_resume_redoes_patients_whose_inputs_or_settings_changed(inputs, tmp_path):
    """Item 14: replaced images or another box source are not answered from old results."""
    cohort = _copy(inputs.cohort, tmp_path / "cohort")
    out = tmp_path / "out"
    assert _predict(inputs, out, cohort=cohort)["n_resumed"] == 0
    assert _predict(inputs, out, cohort=cohort)["n_resumed"] == 2  # nothing changed
    write_image(make_pet(point_value=80.0), cohort / "P1_pt.nii.gz")  # P1's PET replaced
    assert _predict(inputs, out, cohort=cohort)["n_resumed"] == 1
    before = json.loads((out / "P2" / "report.json").read_text())
    (cohort / "bboxes.csv").unlink()  # the box source changes for both: given -> automatic
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("PatientID,x1,x2,y1,y2,z1,z2\nP1,-15,15,-15,15,-15,15\n"
                     "P2,-15,15,-15,15,-15,15\n")
    assert _predict(inputs, out, "--bboxes", str(boxes), cohort=cohort)["n_resumed"] == 0
    after = json.loads((out / "P2" / "report.json").read_text())
    assert before["input_fingerprint"] != after["input_fingerprint"]
    assert after["box"]["mm"]["x1"] == -15.0


def test_metrics_json_holds_null_not_nan(inputs, tmp_path):
    """Item 16: a C-index without an event is null (with the reason), and the file is JSON."""
    cohort = _copy(inputs.cohort, tmp_path / "cohort")
    (cohort / "endpoints.csv").write_text(
        "PatientID,Progression,Progression free survival\nP1,0,100\nP2,0,200\n")
    _predict(inputs, tmp_path / "out", cohort=cohort)
    text = (tmp_path / "out" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert metrics["c_index"] is None
    assert "no comparable pair" in metrics["c_index_null_because"]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.large
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_radiomics_extract_survives_a_killed_worker(inputs, tmp_path):
    """Item 7: `radiomics extract -j 2` with a worker killed (kill -9, out of memory) still
    writes features.csv and features_failures.csv, and says which patients it ran again; no
    BrokenProcessPool traceback.

    Marked large (a subprocess, ~8 s). The worker is killed as soon as it exists, which
    catches every moment: while the patients are still being queued (the pool's ``submit``
    raised BrokenProcessPool), mid-patient, or idle after its last patient (waiting for
    that broken pool could hang); 30 runs in a row passed.
    """
    import signal
    import time

    command = [sys.executable, "-m", "hnprog", "radiomics", "extract", str(inputs.synthetic),
               "-o", str(tmp_path / "features.csv"), "-j", "2", "-q",
               "--cache-dir", str(tmp_path / "cache")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    killed, deadline = None, time.monotonic() + 120
    while killed is None and process.poll() is None and time.monotonic() < deadline:
        # the workers are the children of the pool's fork server, a child of the command
        workers = [w for child in _children(process.pid) for w in _children(child)]
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.01)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the run hung after worker {killed} was killed: {err[-2000:]}")
    assert killed is not None, "the run ended before a worker could be killed"
    assert process.returncode in (0, 1), err
    assert "Traceback" not in err and "BrokenProcessPool" not in err, err
    assert "a worker process died" in err
    assert (tmp_path / "features.csv").is_file()
    assert (tmp_path / "features_failures.csv").is_file()
