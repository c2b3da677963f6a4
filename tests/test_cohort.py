"""Reading cohorts (HECKTOR 2020/2021/2022 layouts, CSV manifest), endpoints and centres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hnprog.data.bbox import write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.data.cohort import centre_from_id, read_cohort, read_endpoints
from hnprog.errors import InputError

IDS = ["CHGJ007", "CHUM013", "CHUS004"]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_endpoints_2021(path: Path, rows: list[tuple]) -> Path:
    lines = ["PatientID,Progression,Progression free survival"]  # the real HECKTOR 2021 names
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def cohort_2021(tmp_path: Path) -> Path:
    for pid in IDS:
        touch(tmp_path / f"{pid}_ct.nii.gz")
        touch(tmp_path / f"{pid}_pt.nii.gz")
        touch(tmp_path / f"{pid}_gtvt.nii.gz")
    write_endpoints_2021(
        tmp_path / "endpoints.csv", [(IDS[0], 1, 400), (IDS[1], 0, 1500.5), (IDS[2], 0, 900)]
    )
    write_bboxes({IDS[0]: BoundingBox.from_center((0, 0, 0), 144.0)}, tmp_path / "bboxes.csv")
    return tmp_path


def test_reads_hecktor2021_flat_layout_with_endpoints_and_boxes(cohort_2021):
    cohort = read_cohort(cohort_2021)
    assert cohort.layout == "hecktor2021" and len(cohort) == 3 and cohort.ids == IDS
    patient = cohort["CHGJ007"]
    assert patient.ct == cohort_2021 / "CHGJ007_ct.nii.gz"
    assert patient.pet == cohort_2021 / "CHGJ007_pt.nii.gz"
    assert patient.mask == cohort_2021 / "CHGJ007_gtvt.nii.gz"
    assert patient.centre == "CHGJ" and cohort.centres == ["CHGJ", "CHUM", "CHUS"]
    assert list(cohort.bboxes) == ["CHGJ007"]
    y = cohort.survival_y()
    assert y["event"].tolist() == [True, False, False]
    assert y["time"].tolist() == [400.0, 1500.5, 900.0]
    assert [p.patient_id for p in cohort] == IDS
    assert cohort.subset(["CHUS004"]).ids == ["CHUS004"]


def test_reads_hecktor2020_layout(tmp_path):
    for pid in IDS:
        touch(tmp_path / pid / f"{pid}_ct.nii.gz")
        touch(tmp_path / pid / f"{pid}_pt.nii.gz")
        touch(tmp_path / pid / f"{pid}_ct_gtvt.nii.gz")
    cohort = read_cohort(tmp_path)
    assert cohort.layout == "hecktor2020" and cohort.ids == IDS
    assert cohort["CHUM013"].mask == tmp_path / "CHUM013" / "CHUM013_ct_gtvt.nii.gz"
    assert cohort.endpoints is None


def test_reads_hecktor2022_layout_with_relapse_columns(tmp_path):
    ids = ["CHUM-001", "MDA-012"]
    for pid in ids:
        touch(tmp_path / "imagesTr" / f"{pid}__CT.nii.gz")
        touch(tmp_path / "imagesTr" / f"{pid}__PT.nii.gz")
        touch(tmp_path / "labelsTr" / f"{pid}.nii.gz")
    (tmp_path / "hecktor2022_endpoint_training.csv").write_text(
        "PatientID,Relapse,RFS\nCHUM-001,1,300\nMDA-012,0,2000\n"
    )
    cohort = read_cohort(tmp_path)
    assert cohort.layout == "hecktor2022" and cohort.ids == ids
    assert cohort["MDA-012"].centre == "MDA"
    assert cohort["MDA-012"].mask_labels == (0, 1, 2)
    assert cohort["CHUM-001"].ct == tmp_path / "imagesTr" / "CHUM-001__CT.nii.gz"
    assert cohort.survival_y()["event"].tolist() == [True, False]


def test_reads_manifest_with_relative_paths_and_centre(tmp_path):
    touch(tmp_path / "scans" / "a_ct.nii")
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "patient_id,ct,pet,mask,centre\n"
        "p1,scans/a_ct.nii,scans/a_pet.nii,,Geneva\n"
        "CHGJ010,scans/b_ct.nii,scans/b_pet.nii,scans/b_mask.nii,\n"
    )
    cohort = read_cohort(manifest)
    assert cohort.layout == "manifest" and cohort.ids == ["p1", "CHGJ010"]
    assert cohort["p1"].ct == tmp_path / "scans" / "a_ct.nii" and cohort["p1"].mask is None
    assert cohort["p1"].centre == "Geneva" and cohort["CHGJ010"].centre == "CHGJ"
    assert cohort["CHGJ010"].mask == tmp_path / "scans" / "b_mask.nii"


def test_missing_modality_keeps_patient_with_missing_path(tmp_path):
    touch(tmp_path / "CHGJ007_ct.nii.gz")
    touch(tmp_path / "CHGJ008_ct.nii.gz")
    touch(tmp_path / "CHGJ008_pt.nii.gz")
    cohort = read_cohort(tmp_path)
    assert cohort.ids == ["CHGJ007", "CHGJ008"]
    assert not cohort["CHGJ007"].pet.exists()  # reported when preprocessed


def test_explicit_endpoints_and_boxes_override_discovery(cohort_2021, tmp_path_factory):
    other = tmp_path_factory.mktemp("other") / "ep.csv"
    other.write_text("id,status,days\nCHGJ007,0,10\nCHUM013,1,20\nCHUS004,1,30\n")
    cohort = read_cohort(
        cohort_2021,
        endpoints=other,
        bboxes={},
        id_column="id",
        event_column="status",
        time_column="days",
    )
    assert cohort.survival_y(["CHUS004", "CHGJ007"])["time"].tolist() == [30.0, 10.0]
    assert cohort.bboxes == {}


@pytest.mark.parametrize(
    "pid, expected",
    [
        ("CHGJ007", "CHGJ"),
        ("chum013", "CHUM"),
        ("MDA-012", "MDA"),
        ("HGJ_1", "HGJ"),
        ("patient", None),
        ("007", None),
    ],
)
def test_centre_from_id(pid, expected):
    assert centre_from_id(pid) == expected


def test_read_endpoints_2021_default_columns(tmp_path):
    path = write_endpoints_2021(tmp_path / "e.csv", [("A1", 1, 10.5), ("B2", "0", 20)])
    table = read_endpoints(path)
    assert table.index.tolist() == ["A1", "B2"]
    assert table["event"].dtype == bool and table["time"].dtype == float
    assert table.loc["A1"].tolist() == [True, 10.5]


@pytest.mark.parametrize(
    "rows, match",
    [
        ([("A1", 1, "")], r"line 2 \(patient A1\): time is missing"),
        ([("A1", 1, 5), ("B2", 0, "-3")], r"line 3 \(patient B2\): time is negative"),
        ([("A1", 2, 5)], r"patient A1\): event must be 0 or 1. Received: Progression='2'"),
        ([("A1", "", 5)], "event must be 0 or 1"),
        ([("A1", 1, "abc")], "time is missing or not a number. Received: 'abc'"),
        ([("A1", 1, 5), ("A1", 0, 6)], "patient listed twice"),
    ],
    ids=["missing_time", "negative_time", "event_2", "missing_event", "text_time", "duplicate"],
)
def test_bad_endpoint_rows_name_file_line_and_patient(tmp_path, rows, match):
    path = write_endpoints_2021(tmp_path / "e.csv", rows)
    with pytest.raises(InputError, match=match) as info:
        read_endpoints(path)
    assert str(path) in str(info.value)


def test_endpoints_with_unknown_columns_say_how_to_name_them(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("who,died,when\nA,1,3\n")
    with pytest.raises(InputError, match="cannot find the id, event and time columns.*id_column="):
        read_endpoints(path)
    with pytest.raises(InputError, match=r"missing columns \['nope'\]"):
        read_endpoints(path, id_column="who", event_column="died", time_column="nope")


def test_survival_y_errors_without_endpoint_rows(cohort_2021, tmp_path):
    write_endpoints_2021(tmp_path / "few.csv", [("CHGJ007", 1, 5)])
    cohort = read_cohort(cohort_2021, endpoints=tmp_path / "few.csv")
    with pytest.raises(InputError, match="2 patients have no endpoint row"):
        cohort.survival_y()
    cohort.endpoints = None
    with pytest.raises(InputError, match="has no endpoints"):
        cohort.survival_y()


def test_survival_y_matches_sksurv_structure(cohort_2021):
    from sksurv.util import Surv

    cohort = read_cohort(cohort_2021)
    table = pd.read_csv(cohort_2021 / "endpoints.csv")
    expected = Surv.from_arrays(
        table["Progression"].astype(bool), table["Progression free survival"]
    )
    y = cohort.survival_y()
    np.testing.assert_array_equal(y["event"], expected["event"])
    np.testing.assert_array_equal(y["time"], expected["time"])


def test_bad_cohort_paths_and_layouts(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_cohort(tmp_path / "nothing")
    with pytest.raises(InputError, match="no known layout found"):
        read_cohort(tmp_path)
    with pytest.raises(InputError, match="unknown layout.*Received: layout='hecktor2019'"):
        read_cohort(tmp_path, layout="hecktor2019")
    with pytest.raises(InputError, match="no patients found"):
        read_cohort(tmp_path, layout="hecktor2021")
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,ct\np1,a.nii\n")
    with pytest.raises(InputError, match=r"missing columns \['pet'\]"):
        read_cohort(manifest)


def test_endpoints_with_the_days_suffix_of_earlier_versions_still_read(tmp_path):
    path = tmp_path / "endpoints.csv"
    path.write_text("PatientID,Progression,Progression free survival (days)\nCHGJ001,1,10\n")
    table = read_endpoints(path)
    assert table.loc["CHGJ001"].to_dict() == {"event": True, "time": 10.0}


@pytest.mark.parametrize("images", ["imagesTr", "imagesTs", "."])
def test_reads_nnunet_layout_channel_0_ct_channel_1_pet(tmp_path, images):
    ids = ["CHUM-001", "MDA-012"]
    folder = tmp_path / images
    labels = {"imagesTr": "labelsTr", "imagesTs": "labelsTs", ".": "."}[images]
    for pid in ids:
        touch(folder / f"{pid}_0000.nii.gz")
        touch(folder / f"{pid}_0001.nii.gz")
    touch(tmp_path / labels / "MDA-012.nii.gz")
    cohort = read_cohort(tmp_path)
    assert cohort.layout == "nnunet" and cohort.ids == ids
    assert cohort["CHUM-001"].ct == folder / "CHUM-001_0000.nii.gz"
    assert cohort["CHUM-001"].pet == folder / "CHUM-001_0001.nii.gz"
    assert cohort["CHUM-001"].mask is None
    assert cohort["MDA-012"].mask == tmp_path / labels / "MDA-012.nii.gz"
    assert cohort["MDA-012"].mask_labels == (0, 1, 2) and cohort["MDA-012"].centre == "MDA"
    assert read_cohort(tmp_path, layout="nnunet").ids == ids


def test_nnunet_and_hecktor2021_files_in_one_folder_are_refused(tmp_path):
    touch(tmp_path / "A1_0000.nii.gz")
    touch(tmp_path / "A1_0001.nii.gz")
    touch(tmp_path / "B2_ct.nii.gz")
    touch(tmp_path / "B2_pt.nii.gz")
    with pytest.raises(InputError, match=r"mixes layouts: nnunet .*A1_0000.* and hecktor2021"):
        read_cohort(tmp_path)


def test_synthetic_cohort_renamed_to_nnunet_loads_the_same_case(synthetic_cohort, tmp_path):
    from hnprog.data.loading import load_case

    hecktor = read_cohort(synthetic_cohort)
    patient = hecktor.patients[0]
    pid = patient.patient_id
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr" / f"{pid}_0000.nii.gz").symlink_to(patient.ct)
    (tmp_path / "imagesTr" / f"{pid}_0001.nii.gz").symlink_to(patient.pet)
    (tmp_path / "labelsTr" / f"{pid}.nii.gz").symlink_to(patient.mask)
    nnunet = read_cohort(tmp_path, bboxes=hecktor.bboxes)
    a, b = load_case(patient, hecktor.bboxes.get(pid)), load_case(nnunet[pid], nnunet.bboxes.get(pid))
    for key in ("ct", "pet", "mask"):
        np.testing.assert_array_equal(
            sitk_array(a.images[key]), sitk_array(b.images[key]), err_msg=key)


def sitk_array(image):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image)


def test_nnunet_channel_order_comes_from_dataset_json(tmp_path):
    for channel in ("0000", "0001", "0002"):
        touch(tmp_path / "imagesTr" / f"P1_{channel}.nii.gz")
    (tmp_path / "dataset.json").write_text(
        '{"channel_names": {"0": "PET", "1": "MRI", "2": "CT"}, "labels": {"background": 0}}')
    cohort = read_cohort(tmp_path)
    assert cohort["P1"].pet.name == "P1_0000.nii.gz" and cohort["P1"].ct.name == "P1_0002.nii.gz"
    (tmp_path / "dataset.json").write_text('{"modality": {"0": "T1", "1": "T2"}}')
    with pytest.raises(InputError, match=r"dataset.json: its channels .* do not name a CT and a PET"):
        read_cohort(tmp_path)


@pytest.mark.parametrize("dataset_json", [None, '{"labels": {"background": 0}}'])
def test_nnunet_channels_beyond_two_need_a_dataset_json(tmp_path, dataset_json):
    """_0000 = CT and _0001 = PET is a guess once a third channel exists: refused, not guessed."""
    for channel in ("0000", "0001", "0002"):
        touch(tmp_path / "imagesTr" / f"P1_{channel}.nii.gz")
    if dataset_json is not None:
        (tmp_path / "dataset.json").write_text(dataset_json)
    verb = "names" if dataset_json is None else "does not name"
    with pytest.raises(InputError, match=rf"channels \['_0000', '_0001', '_0002'\] \(e.g. "
                       rf"P1_0002.nii.gz\) and .*dataset.json {verb} them.*channel_names"):
        read_cohort(tmp_path)
