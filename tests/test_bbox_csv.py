"""Tests of BoundingBox and the HECKTOR bbox.csv format."""

from __future__ import annotations

import pytest

from hnprog.data.bbox import read_bboxes, write_bboxes
from hnprog.geometry import BoundingBox
from hnprog.errors import InputError


def test_round_trip_through_csv(tmp_path):
    boxes = {"CHGJ007": BoundingBox(-72.5, 71.5, -100.0, 44.0, 10.0, 154.0)}
    write_bboxes(boxes, tmp_path / "bbox.csv")
    assert read_bboxes(tmp_path / "bbox.csv") == boxes


def test_from_center_size_and_contains():
    box = BoundingBox.from_center((1.0, 2.0, 3.0), (10.0, 20.0, 30.0))
    assert box.size == (10.0, 20.0, 30.0)
    assert box.center == (1.0, 2.0, 3.0)
    assert box.contains((6.0, 2.0, 3.0)) and not box.contains((6.1, 2.0, 3.0))


def test_inverted_bounds_are_rejected():
    with pytest.raises(InputError, match="y2 must be greater than y1"):
        BoundingBox(0, 1, 5, 5, 0, 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("PatientID,x1,x2\nA,0,1\n", "missing columns"),
        ("PatientID,x1,x2,y1,y2,z1,z2\nA,0,1,0,one,0,1\n", "line 2 \\(patient A\\): bounds must be numbers"),
        ("PatientID,x1,x2,y1,y2,z1,z2\nA,0,1,0,1,0,1\nA,0,1,0,1,0,1\n", "line 3 .*listed twice"),
        ("PatientID,x1,x2,y1,y2,z1,z2\nA,0,1,0,1,3,1\n", "z2 must be greater"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, text, match):
    path = tmp_path / "bbox.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_bboxes(path)
