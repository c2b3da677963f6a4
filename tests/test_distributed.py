"""Tests of cohort runs on Dask distributed: a 2-worker LocalCluster (threads, to stay fast)
gives the same outputs, failures and resume as a local run."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

from hnprog.cli import main  # noqa: E402
from hnprog.data.cohort import read_cohort  # noqa: E402
from hnprog.data.distributed import SCHEDULER_VARIABLE, cohort_executor, scheduler_address  # noqa: E402
from hnprog.data.preprocess import preprocess_cohort  # noqa: E402
from hnprog.errors import InputError  # noqa: E402
from hnprog.predict import load_predictor, predict_cohort  # noqa: E402
from hnprog.predict.cohort import PredictorRecipe  # noqa: E402
from hnprog.transforms import PreprocessConfig  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def broken_cohort(synthetic_cohort, tmp_path_factory):
    """The synthetic cohort (as links) with the second patient's PET corrupt."""
    folder = tmp_path_factory.mktemp("broken")
    second = read_cohort(synthetic_cohort).ids[1]
    for path in synthetic_cohort.iterdir():
        (folder / path.name).symlink_to(path)
    (folder / f"{second}_pt.nii.gz").unlink()
    (folder / f"{second}_pt.nii.gz").write_bytes(b"\x1f\x8b garbage")
    return folder


def test_scheduler_address_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    assert scheduler_address() is None
    with cohort_executor() as executor:
        assert executor is None  # local
    monkeypatch.setenv(SCHEDULER_VARIABLE, "tcp://from-env:8786")
    assert scheduler_address() == "tcp://from-env:8786"
    assert scheduler_address("tcp://given:1") == "tcp://given:1"
    with pytest.raises(InputError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with cohort_executor("tcp://127.0.0.1:9", timeout=1):
            pass


def test_preprocess_on_the_cluster_equals_local_with_failures_and_resume(cluster, broken_cohort,
                                                                         tmp_path):
    cohort = read_cohort(broken_cohort)
    config = PreprocessConfig(spacing=4.5, crop_size=32)
    local = preprocess_cohort(cohort, tmp_path / "local", config)
    with cohort_executor(cluster.scheduler_address) as executor:
        assert executor is not None
        remote = preprocess_cohort(cohort, tmp_path / "dask", config, executor=executor)
    pd.testing.assert_frame_equal(local, remote)
    assert remote["patient_id"].tolist() == [cohort.ids[1]]
    for name in ("failures.csv", "cases.csv", "bboxes.csv"):
        assert (tmp_path / "local" / name).read_text() == (tmp_path / "dask" / name).read_text()
    for pid in (cohort.ids[0], cohort.ids[2]):
        a, b = np.load(tmp_path / "local" / f"{pid}.npz"), np.load(tmp_path / "dask" / f"{pid}.npz")
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_predict_on_the_cluster_equals_local_with_failures_and_resume(cluster, broken_cohort,
                                                                      tmp_path):
    from hnprog.models import build_multitask_unet
    from hnprog.presets import save_to_preset

    for k in range(2):
        model = build_multitask_unet(input_shape=(32, 32, 32, 2), filters=(2, 4, 4, 8, 8),
                                     dense_units=8)
        save_to_preset(model, tmp_path / "folds" / f"fold{k}", fold=k, risk_threshold=0.0,
                       preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                       dataset={"name": "none", "synthetic": True})
    predictor = load_predictor(str(tmp_path / "folds"))
    recipe = PredictorRecipe.of(predictor)
    assert pickle.loads(pickle.dumps(recipe)) == recipe  # what travels to a worker
    cohort = read_cohort(broken_cohort)
    local = predict_cohort(cohort, predictor, tmp_path / "local", overlay=False, progress=False)
    with cohort_executor(cluster.scheduler_address) as executor:
        remote = predict_cohort(cohort, predictor, tmp_path / "dask", overlay=False,
                                progress=False, executor=executor)
        pd.testing.assert_frame_equal(local[0], remote[0], atol=1e-6)
        pd.testing.assert_frame_equal(local[1], remote[1])
        assert remote[1]["patient_id"].tolist() == [cohort.ids[1]]
        first = cohort.ids[0]
        report = json.loads((tmp_path / "dask" / first / "report.json").read_text())
        assert report["models"] == json.loads(
            (tmp_path / "local" / first / "report.json").read_text())["models"]
        assert report["risk"]["fold_sd"] is not None
        assert (tmp_path / "dask" / first / "risk.csv").read_text().splitlines()[0].endswith(
            "risk_fold_sd")
        stamp = (tmp_path / "dask" / first / "report.json").stat().st_mtime_ns
        again = predict_cohort(cohort, predictor, tmp_path / "dask", overlay=False,
                               progress=False, executor=executor)
    assert again[2]["n_resumed"] == 2
    assert (tmp_path / "dask" / first / "report.json").stat().st_mtime_ns == stamp


def test_cli_radiomics_extract_with_scheduler_equals_local(cluster, synthetic_cohort, tmp_path,
                                                           monkeypatch):
    runner = CliRunner()
    local = runner.invoke(main, ["radiomics", "extract", str(synthetic_cohort), "-o",
                                 str(tmp_path / "local" / "features.csv"), "-q"])
    assert local.exit_code == 0, local.output
    monkeypatch.setenv(SCHEDULER_VARIABLE, cluster.scheduler_address)  # as on a cluster node
    remote = runner.invoke(main, ["radiomics", "extract", str(synthetic_cohort), "-o",
                                  str(tmp_path / "dask" / "features.csv"), "-q"])
    assert remote.exit_code == 0, remote.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "features.csv"),
                                  pd.read_csv(tmp_path / "dask" / "features.csv"))
    monkeypatch.setattr("hnprog.data.distributed.CONNECT_TIMEOUT", 1)
    bad = runner.invoke(main, ["preprocess", str(synthetic_cohort), "-o", str(tmp_path / "p"),
                               "--scheduler", "tcp://127.0.0.1:9"])
    assert bad.exit_code == 1 and "cannot reach the Dask scheduler" in bad.output
