"""Training's input check (issue #13 items 11-12, #17 item 8): ``--endpoints``/``--bboxes``
on the training commands, every patient checked before training, ``--skip-bad``.

The runs are the tiny ones of tests/test_cv.py: 8 generated patients at a quarter of the real
image size, 9 mm voxels on a 16^3 crop, filters (2, 4, 4, 8, 8), 1 epoch, batch 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.errors import InputError
from hnprog.training import cross_validate, train_on_cohort

from test_cv import TINY_RUN

TINY_OPTIONS = ["--epochs", "1", "--batch-size", "2", "--spacing", "9", "--crop-size", "16",
                "--filters", "2,4,4,8,8", "--seed", "0"]


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    from hnprog.data.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("data"), n_patients=8, seed=0,
                           image_scale=0.25, censoring=0.5, n_centres=2)


@pytest.fixture
def bad_cohort(tmp_path, tiny_cohort) -> tuple[Path, list[str]]:
    """A copy of the tiny cohort with a 0-byte CT and a truncated PET."""
    data = Path(shutil.copytree(tiny_cohort, tmp_path / "bad"))
    cts = sorted(data.glob("*_ct.nii.gz"))
    empty, truncated = cts[1].name.split("_")[0], cts[4].name.split("_")[0]
    (data / f"{empty}_ct.nii.gz").write_bytes(b"")
    pet = data / f"{truncated}_pt.nii.gz"
    pet.write_bytes(pet.read_bytes()[: pet.stat().st_size // 2])
    return data, [empty, truncated]


def test_training_help_names_the_files_found_in_data():
    for command in ("train", "cv", "finetune"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        for expected in ("--endpoints FILE", "endpoints.csv in DATA", "*endpoint*.csv",
                         "--bboxes FILE", "bboxes.csv or bbox.csv in DATA", "*bbox*.csv",
                         "--skip-bad"):
            assert expected in text, (command, expected)


def test_train_reads_an_endpoint_file_kept_elsewhere(tmp_path, tiny_cohort):
    data = Path(shutil.copytree(tiny_cohort, tmp_path / "data"))
    elsewhere = tmp_path / "tables"
    elsewhere.mkdir()
    (data / "endpoints.csv").rename(elsewhere / "survival.csv")
    out = tmp_path / "run"
    refused = CliRunner().invoke(main, ["train", str(data), "-o", str(out), *TINY_OPTIONS])
    assert refused.exit_code != 0
    assert "--endpoints FILE" in refused.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["train", str(data), "-o", str(out), *TINY_OPTIONS,
                                       "--endpoints", str(elsewhere / "survival.csv")])
    assert result.exit_code == 0, result.output
    assert (out / "preset").is_dir()
    assert not (out / "failures.csv").exists()  # written only with --skip-bad


def test_library_runs_refuse_a_read_cohort_with_endpoint_paths(tmp_path, tiny_cohort):
    from hnprog.data.cohort import read_cohort

    with pytest.raises(InputError, match="already-read Cohort"):
        train_on_cohort(read_cohort(tiny_cohort), tmp_path / "run", config=TINY_RUN,
                        endpoints=tiny_cohort / "endpoints.csv")


def test_bad_patients_are_all_named_before_anything_is_written(tmp_path, bad_cohort):
    data, bad = bad_cohort
    out = tmp_path / "run"
    with pytest.raises(InputError) as caught:
        train_on_cohort(data, out, config=TINY_RUN, verbose=0, progress=False)
    message = str(caught.value)
    assert all(patient in message for patient in bad), message
    assert "2 of 8 patients" in message and "--skip-bad" in message
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(InputError, match="2 of 8 patients"):
        cross_validate(data, tmp_path / "cv", config=TINY_RUN, tasks=["multitask"],
                       verbose=0, progress=False)
    assert not (tmp_path / "cv").exists() or not any((tmp_path / "cv").iterdir())


def test_skip_bad_lists_them_in_failures_csv_and_trains(tmp_path, bad_cohort):
    data, bad = bad_cohort
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(data), "-o", str(out), *TINY_OPTIONS,
                                       "--skip-bad"])
    assert result.exit_code == 0, result.output
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures.columns) == ["patient_id", "error"]
    assert sorted(failures["patient_id"]) == sorted(bad)
    assert failures["error"].str.len().min() > 0
    assert (out / "preset").is_dir()
    import json

    split = json.loads((out / "split.json").read_text())
    assert not set(bad) & set(split["train"] + split["val"])
    assert len(split["train"] + split["val"]) == 6


def test_skip_bad_still_refuses_too_few_patients(tmp_path, bad_cohort):
    data, _ = bad_cohort
    with pytest.raises(InputError, match="batch_size is larger than the training set"):
        train_on_cohort(data, tmp_path / "run", config=TINY_RUN.replace(batch_size=4),
                        skip_bad=True, verbose=0, progress=False)
    assert not (tmp_path / "run").exists()
