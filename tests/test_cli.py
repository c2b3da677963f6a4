"""Tests of the command-line surface: help texts, examples, defaults and small CLI behaviours."""

from __future__ import annotations

import json
import re
import shlex

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.data.cohort import patient_id_from_path
from hnprog.presets import list_families, list_presets


def _commands(group: click.Group = main, prefix: tuple[str, ...] = ()):
    """Every leaf command with its path of names, e.g. (("radiomics", "cv"), command)."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def _examples(command: click.Command) -> list[list[str]]:
    """The example command lines of a help text, continuation lines joined, as argv lists."""
    text = (command.help or "").split("Example", 1)
    if len(text) < 2:
        return []
    joined = re.sub(r"\\\n\s*", " ", text[1])
    lines = [line.strip() for line in joined.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(("hnprog ", "KERAS_"))
            and "hnprog " in line]


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_option_has_help_text():
    for path, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"hnprog {' '.join(path)} {param.opts[0]} has no help"


def test_help_examples_use_real_commands_options_and_presets():
    registered = set(list_presets()) | set(list_families())
    seen = 0
    for path, command in _commands():
        for argv in _examples(command):
            argv = argv[argv.index("hnprog") + 1:] if "hnprog" in argv else argv
            assert tuple(argv[: len(path)]) == path, (path, argv)
            options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            args = argv[len(path):]
            for token in args:
                if token.startswith("-") and not re.fullmatch(r"-[\d.,-]+", token):
                    assert token in options, f"hnprog {' '.join(path)}: unknown {token}"
            names = [v for f, v in zip(args, args[1:]) if f in ("-m", "--model", "--from")]
            if path == ("download",):
                names.append(args[0])
            for value in names:
                if not re.search(r"[/:.]", value):  # not a folder, file or hf:// URI
                    assert value in registered, f"{value} in hnprog {' '.join(path)} --help"
            seen += 1
    assert seen >= 15


def test_predict_help_points_at_the_shipped_family_and_any_image_format():
    text = _help("predict")
    assert "hnprog-demo/preset" not in text
    assert "-m unet3d_multitask_synthetic_petct" in text
    assert text.count("NIfTI or any format SimpleITK reads") == 2
    assert "CHGJ007_ct.nii.gz -> CHGJ007" in text
    assert "hnprog predict --ct" in _help()  # the start-here list names predict
    assert "each tests on 1/FOLDS" in _help("radiomics", "cv")


@pytest.mark.parametrize(("path", "expected"), [
    ("CHGJ007_ct.nii.gz", "CHGJ007"),
    ("/data/hecktor2022/imagesTr/CHUM-001__CT.nii.gz", "CHUM-001"),
    ("/data/nnunet/imagesTs/CHUM-001_0000.nii.gz", "CHUM-001"),
    ("P1_CT.nii", "P1"),
    ("scan.nrrd", "scan"),
    ("P1_pt_ct.mha", "P1_pt"),
    ("CHGJ007_ctx.nii.gz", "CHGJ007_ctx"),
    ("_ct.nii.gz", "patient"),
])
def test_default_patient_id_is_the_ct_file_name(path, expected):
    assert patient_id_from_path(path) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("cohort/P1/CT.nii.gz", "P1"),
    ("cohort/P2/ct_image.nii.gz", "P2"),
    ("/data/P3/image.nrrd", "P3"),
    ("/data/P4/_ct.nii.gz", "P4"),
    ("CT.nii.gz", "CT"),  # no folder to name it after
])
def test_a_generic_ct_name_takes_the_folder_name(path, expected):
    assert patient_id_from_path(path) == expected


def test_the_old_cli_name_of_the_patient_id_warns():
    from hnprog import cli

    with pytest.warns(DeprecationWarning, match="patient_id_from_path"):
        assert cli.patient_id_from_ct("CHGJ007_ct.nii.gz") == "CHGJ007"


def test_finetune_shows_and_uses_its_own_defaults(monkeypatch, tmp_path):
    from hnprog import training

    text = _help("finetune")
    assert "Epochs.  [default: 20]" in text and "[default: 1e-4]" in text
    assert "--filters" not in text and "--mixed-precision" not in text
    assert "Only for a model that records no preprocessing" in text
    train = _help("train")
    assert "Epochs.  [default: 60]" in train and "[default: 1e-3]" in train
    assert "--filters" in train and "--mixed-precision" in train

    seen = {}

    def fake_finetune(data, out_dir, *, source, config, **kwargs):
        seen["config"] = config
        return type("Result", (), {"best_epoch": 1})()

    monkeypatch.setattr(training, "finetune", fake_finetune)
    data = tmp_path / "data"
    data.mkdir()
    args = ["finetune", str(data), "--from", "m.keras", "-o", str(tmp_path / "ft")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (seen["config"].epochs, seen["config"].learning_rate) == (20, 1e-4)
    result = CliRunner().invoke(main, [*args, "--epochs", "3", "--lr", "0.01"])
    assert (seen["config"].epochs, seen["config"].learning_rate) == (3, 0.01)


def test_presets_list_names_the_families():
    result = CliRunner().invoke(main, ["presets", "list"])
    assert result.exit_code == 0, result.output
    assert "loads all its folds and averages them" in result.output
    assert "  unet3d_multitask_synthetic_petct  (fold1, fold2, fold3)" in result.output
    assert "  unet3d_multitask_synthetic_petct_fold2\n" in result.output


# -- hnprog predict: patient ids, resumed cohorts -------------------------------------------------


@pytest.fixture(scope="module")
def cohort_root(tmp_path_factory):
    from hnprog.data.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort"), n_patients=2, seed=5,
                           image_scale=0.5)


@pytest.fixture(scope="module")
def one_pair(cohort_root):
    from hnprog.data.cohort import read_cohort

    return read_cohort(cohort_root).patients[0]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    from hnprog.models import build_multitask_unet
    from hnprog.presets import save_to_preset
    from hnprog.transforms import PreprocessConfig

    model = build_multitask_unet(input_shape=(32, 32, 32, 2), filters=(2, 4, 4, 8, 8),
                                 dense_units=8)
    folder = tmp_path_factory.mktemp("preset") / "tiny"
    save_to_preset(model, folder, preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                   dataset={"name": "none", "synthetic": True})
    return folder


def test_predict_names_the_patient_after_the_ct_file(one_pair, tiny_preset, tmp_path):
    pid = one_pair.patient_id
    assert one_pair.ct.name == f"{pid}_ct.nii.gz"
    base = ["predict", "--ct", str(one_pair.ct), "-m", str(tiny_preset), "--no-overlay"]
    result = CliRunner().invoke(main, [*base, "--pet", str(one_pair.pet), "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{pid}: risk (log-hazard)")
    assert pd.read_csv(tmp_path / "a" / "risk.csv").loc[0, "patient_id"] == pid

    broken = tmp_path / "broken_pt.nii.gz"
    broken.write_bytes(b"\x1f\x8b garbage")
    result = CliRunner().invoke(main, [*base, "--pet", str(broken), "-o", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert f"patient {pid}: PET file" in result.output and "patient patient" not in result.output

    result = CliRunner().invoke(main, [*base, "--pet", str(one_pair.pet), "-o",
                                       str(tmp_path / "c"), "--patient-id", "P7"])
    assert result.exit_code == 0 and result.stdout.startswith("P7: risk")


def test_rerun_of_a_cohort_says_how_many_were_already_done(cohort_root, tiny_preset, tmp_path):
    args = ["predict", str(cohort_root), "-m", str(tiny_preset), "-o", str(tmp_path),
            "--no-overlay"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert f"2 patients predicted into {tmp_path}" in first.output
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "0 patients predicted now, 2 already done by an earlier run" in second.output
    assert json.loads((tmp_path / "metrics.json").read_text())["n_resumed"] == 2


@pytest.mark.parametrize(("args", "command"), [
    (["--bogus"], "hnprog"),  # an option of hnprog itself, found before any command runs
    (["predikt"], "hnprog"),
    (["presets", "--bogus"], "hnprog presets"),
    (["predict", "--bogus"], "hnprog predict"),
])
def test_command_line_mistakes_are_one_error_line_with_status_2(args, command):
    result = CliRunner().invoke(main, args, prog_name="hnprog")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert f"(see '{command} --help')" in result.output


# -- defaults come from the library; --help starts no backend ----------------------------------


def _param(path: tuple[str, ...], name: str) -> click.Parameter:
    command = dict(_commands())[path]
    return next(p for p in command.params if p.name == name)


def test_training_and_grid_help_shows_the_library_defaults():
    import dataclasses

    from hnprog.cli.options import shown_default
    from hnprog.training.config import FINETUNE_DEFAULTS, TrainingConfig
    from hnprog.transforms import PreprocessConfig

    paper = TrainingConfig()
    fields = {f.name: getattr(paper, f.name) for f in dataclasses.fields(TrainingConfig)}
    for path, defaults in ((("train",), fields), (("cv",), fields),
                           (("finetune",), {**fields, **FINETUNE_DEFAULTS})):
        for name in ("epochs", "batch_size", "learning_rate", "w_rad", "w_seg", "seed", "n_jobs"):
            assert f"[default: {shown_default(defaults[name])}]" in _param(path, name).help, name
    assert "[default: 8,16,32,64,128, the paper's]" in _param(("train",), "filters").help
    paper, cpu = PreprocessConfig(), PreprocessConfig.cpu()
    for path in (("preprocess",), ("train",), ("cv",), ("finetune",)):
        for name in ("spacing", "crop_size"):
            shown = f"{getattr(paper, name)}; {getattr(cpu, name)} with --cpu]"
            assert shown in _param(path, name).help, (path, name)


def test_other_defaults_are_read_from_the_library_function_the_command_calls():
    import importlib
    import inspect

    from hnprog.cli.options import LibraryDefault, shown_default

    seen = set()
    for path, command in _commands():
        ctx = click.Context(command, info_name=path[-1])
        for param in command.params:
            if not isinstance(param.default, LibraryDefault):
                continue
            module, _, name = param.default.target.partition(":")
            function = getattr(importlib.import_module(module), name)
            expected = inspect.signature(function).parameters[param.default.keyword].default
            assert param.get_default(ctx) == expected, (path, param.name)
            assert f"default: {shown_default(expected)}" in param.get_help_record(ctx)[1]
            seen.add(path)
    assert seen >= {("synth",), ("preprocess",), ("cv",), ("card",), ("demo",),
                    ("radiomics", "extract"), ("radiomics", "cv")}
    synth = main.commands["synth"].make_context("synth", ["out"])
    assert (synth.params["patients"], synth.params["n_jobs"]) == (20, 1)
    demo = main.commands["demo"].make_context("demo", [])
    assert (demo.params["out_dir"], demo.params["patients"], demo.params["n_jobs"]) == (
        "hnprog-demo", 24, 2)


def test_layouts_are_the_librarys_and_checked_by_the_parser(tmp_path):
    from hnprog.data.cohort import LAYOUTS

    assert tuple(_param(("preprocess",), "layout").type.choices) == LAYOUTS
    result = CliRunner().invoke(main, ["preprocess", str(tmp_path), "-o", str(tmp_path / "o"),
                                       "--layout", "hecktor2019"])
    assert result.exit_code == 2 and "'hecktor2019' is not one of" in result.output


@pytest.mark.parametrize(("box", "message"), [
    ("1,2,3", "six numbers"),
    ("10,0,0,1,0,1", "x2 must be greater than x1"),
])
def test_a_bad_bbox_is_a_usage_error_naming_it(tmp_path, box, message):
    image = tmp_path / "P1_ct.nii.gz"
    image.write_bytes(b"")
    result = CliRunner().invoke(main, ["predict", "--ct", str(image), "--pet", str(image), "-m",
                                       "x", "-o", str(tmp_path / "o"), "--bbox", box])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--bbox'" in result.output and message in result.output


def test_help_imports_no_deep_learning_backend():
    """``hnprog --help`` and every ``COMMAND --help`` answer without Keras or TensorFlow."""
    paths = [[], *([*path] for path, _ in _commands())]
    assert _backends_loaded_by(
        f"for path in {paths!r}:\n"
        "    result = CliRunner().invoke(main, [*path, '--help'])\n"
        "    assert result.exit_code == 0, (path, result.output)\n") == []


def _backends_loaded_by(loop: str) -> list[str]:
    """Run CLI invocations (``loop``: Python lines using ``CliRunner``, ``main``) in a fresh
    interpreter; the deep-learning and radiomics modules they imported."""
    import ast
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom hnprog.cli import main\n"
            + loop + "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', "
            "'radiomics') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


def test_bad_images_of_one_patient_fail_before_keras_starts(tmp_path, synthetic_cohort):
    """A 0-byte CT, or CT and PET swapped, is refused naming the file before Keras is
    imported (which takes 14-22 s on a laptop), and nothing is written."""
    from hnprog.data.cohort import read_cohort

    patient = read_cohort(synthetic_cohort).patients[0]
    empty = tmp_path / "P1_ct.nii.gz"
    empty.write_bytes(b"")
    cases = [([str(empty), str(patient.pet)], f"{empty}"),
             ([str(patient.pet), str(patient.ct)], "are the CT and PET swapped?")]
    assert _backends_loaded_by(
        f"for (ct, pet), words in {cases!r}:\n"
        "    result = CliRunner().invoke(main, ['predict', '--ct', ct, '--pet', pet, '-m',\n"
        f"        'unet3d_multitask_synthetic_petct', '-o', {str(tmp_path / 'out')!r}])\n"
        "    assert result.exit_code == 1 and words in result.output, result.output\n") == []
    assert not (tmp_path / "out").exists()


def test_training_settings_and_folder_errors_come_before_keras_starts(tmp_path,
                                                                       synthetic_cohort):
    """train, cv and finetune refuse a bad setting or a folder of the user's files in one line
    before Keras is imported (5 s of TensorFlow start-up), and write nothing."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    data = str(synthetic_cohort)
    new = str(tmp_path / "new")
    cases = [  # a folder's error is 1; a setting's is a usage error (2) in the options' names
        (["train", data, "-o", str(mine)], 1, "holds no hnprog run (config.json)"),
        (["cv", data, "-o", str(mine)], 1, "holds no hnprog run (cv.json)"),
        (["finetune", data, "--from", "unet3d_multitask_synthetic_petct_fold1", "-o",
          str(mine)], 1, "holds no hnprog run (config.json)"),
        (["train", data, "-o", new, "--batch-size", "0"], 2, "'--batch-size': 0 is not in"),
        (["train", data, "-o", new, "--resume", "--overwrite"], 2,
         "give either --resume or --overwrite, not both"),
        (["cv", data, "-o", new, "--folds", "1"], 2, "--folds must be at least 2"),
        (["train", data, "-o", new, "--w-rad", "0", "--w-seg", "0"], 2,
         "Received: --w-rad=0.0, --w-seg=0.0"),
    ]
    assert _backends_loaded_by(
        f"for args, status, words in {cases!r}:\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == status and words in result.output, result.output\n"
        ) == []
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "new").exists()


def test_hnprog_warnings_are_one_line_notes(capsys):
    """A run's note ("--overwrite kept 2 files ...") is one ``Note:`` line, without Python's
    file name and source line."""
    import warnings

    import hnprog.training.fit as fit
    from hnprog.cli import show_deprecations

    show_deprecations()
    warnings.showwarning("--overwrite kept 2 files", UserWarning, fit.__file__, 484)
    assert capsys.readouterr().err == "Note: --overwrite kept 2 files\n"
