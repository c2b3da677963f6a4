"""Tests of hnprog demo on a tiny preset and small synthetic scans."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hnprog.cli import main
from hnprog.demo import run_demo
from hnprog.errors import InputError
from hnprog.models import build_multitask_unet
from hnprog.presets import save_to_preset
from hnprog.transforms import PreprocessConfig


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    model = build_multitask_unet(input_shape=(16, 16, 16, 2), filters=(2, 2, 4, 4, 8), dense_units=4)
    folder = tmp_path_factory.mktemp("preset") / "tiny"
    return save_to_preset(model, folder, preprocessing=PreprocessConfig(spacing=9.0, crop_size=16),
                          dataset={"name": "none", "synthetic": True}, risk_threshold=0.0)


def test_demo_writes_summary_plot_and_overlays(tiny_preset, tmp_path):
    lines = []
    summary = run_demo(tmp_path, n_patients=5, seed=3, model=str(tiny_preset), n_jobs=1,
                       image_scale=0.5, echo=lines.append)
    assert summary["patients"] == 5
    assert 0.0 <= summary["oracle_c_index"] <= 1.0
    assert (tmp_path / "kaplan_meier.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "summary.json").read_text())["model"] == str(tiny_preset)
    assert len(list((tmp_path / "predictions").glob("*/overlay.png"))) == 5
    assert any("oracle" in line for line in lines)


def test_demo_refuses_tiny_cohorts(tmp_path):
    with pytest.raises(InputError, match="at least 4 patients"):
        run_demo(tmp_path, n_patients=2)


def test_demo_cli_help_reads_like_documentation():
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "oracle C-index" in result.output and "Examples:" in result.output
