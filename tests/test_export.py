"""Tests of the exported runtimes (OpenVINO, ONNX Runtime), bf16, test-time mirroring and the
risk's spread across folds: tiny UNets (Conv3DTranspose, batch norm) at 16³ and 32³."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from hnprog.cli import main  # noqa: E402
from hnprog.errors import InputError  # noqa: E402
from hnprog.presets import FoldEnsemble, from_preset, sha256_file  # noqa: E402
from hnprog.presets import exported as export_module  # noqa: E402
from hnprog.presets.export import export_runtime  # noqa: E402
from hnprog.presets.exported import ExportedPreset, choose_runtime  # noqa: E402
from hnprog.presets.tta import MirrorTTA  # noqa: E402
from hnprog.testing.presets import make_tiny_preset, tiny_images, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    """Two tiny UNet fold presets with risk thresholds, and their export to both formats."""
    root = tmp_path_factory.mktemp("folds")
    sources = [make_tiny_preset(root / "src" / f"fold{k}", seed=k, model=tiny_model(k, unet="batch"),
                                risk_threshold=0.1 * (k + 1)) for k in range(2)]
    exported = export_runtime(root / "src", root / "exported", formats=["openvino", "onnx"])
    return sources, exported


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_exported_outputs_equal_keras_within_1e_4(folds, runtime):
    sources, exported = folds
    x = tiny_images(3, seed=1)
    keras_out = from_preset(sources[0]).predict(x)
    predictor = from_preset(exported[0], runtime=runtime)
    assert isinstance(predictor, ExportedPreset) and predictor.runtime == runtime
    out = predictor.predict(x, batch_size=2)
    assert set(out) == set(keras_out) == {"risk", "segmentation"}
    for key in keras_out:
        assert out[key].shape == keras_out[key].shape and out[key].dtype == np.float32
        np.testing.assert_allclose(out[key], keras_out[key], atol=1e-4)


def test_exported_folder_carries_the_record_and_checksums_of_every_file(folds):
    sources, exported = folds
    original = json.loads((sources[0] / "hnprog.json").read_text())
    record = json.loads((exported[0] / "hnprog.json").read_text())
    assert [p.name for p in exported] == ["fold0", "fold1"]
    for key in ("preprocessing", "outputs", "dataset", "metrics", "input", "name"):
        assert record[key] == original[key]
    assert record["dataset"]["synthetic"] is True
    assert record["outputs"]["risk"]["threshold"] == pytest.approx(0.1)
    for name in ("config.json", "model.weights.h5", "model.xml", "model.bin", "model.onnx"):
        assert record["files"][name] == sha256_file(exported[0] / name)
    assert record["export"]["formats"] == ["openvino", "onnx"]
    differences = record["export"]["max_abs_difference"]
    assert max(max(v.values()) for v in differences.values()) < 1e-4
    # Keras still loads the exported folder, with the same weights
    x = tiny_images(1)
    np.testing.assert_array_equal(from_preset(exported[0]).predict(x)["risk"],
                                  from_preset(sources[0]).predict(x)["risk"])


def test_a_modified_exported_file_is_refused(folds, tmp_path):
    import shutil

    copy = shutil.copytree(folds[1][0], tmp_path / "copy")
    with open(copy / "model.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(InputError, match="sha256 mismatch for model.bin"):
        from_preset(copy, runtime="openvino")


def test_fold_ensemble_of_exports_and_the_spread_of_the_risk(folds):
    sources, exported = folds
    x = tiny_images(2, seed=2)
    auto = from_preset(exported[0].parent, runtime="auto")
    assert len({getattr(member, "runtime", "keras") for member in auto}) == 1  # one for all
    ensemble = from_preset(exported[0].parent, runtime="openvino")
    assert isinstance(ensemble, FoldEnsemble)
    assert all(isinstance(m, ExportedPreset) for m in ensemble)
    out = ensemble.predict(x)
    keras_risks = [from_preset(s).predict(x)["risk"] for s in sources]
    np.testing.assert_allclose(out["risk"], np.mean(keras_risks, axis=0), atol=1e-4)
    # the spread is taken relative to each fold's threshold (0.1, 0.2): Cox risks are defined
    # up to a constant per fold
    centred = [keras_risks[0] - 0.1, keras_risks[1] - 0.2]
    expected = np.abs(centred[0] - centred[1]) / np.sqrt(2)  # sample SD of two values
    np.testing.assert_allclose(out["risk_fold_sd"], expected, atol=1e-4)
    assert out["risk_fold_sd"].shape == (2, 1)


def test_runtime_choice_and_its_refusals(folds, monkeypatch, tmp_path):
    from hnprog.cpu import machine_signature

    sources, exported = folds
    metadata = json.loads((exported[0] / "hnprog.json").read_text())
    plain = json.loads((sources[0] / "hnprog.json").read_text())
    record = metadata["export"]
    # the export timed one forward pass on every runtime, on this machine
    assert set(record["seconds_per_forward"]) == {"keras", "openvino", "onnx"}
    assert all(s > 0 for s in record["seconds_per_forward"].values())
    assert record["measured_on"] == machine_signature()

    def timed(where=None, **seconds):
        signature = {**record["measured_on"], **(where or {})}
        return {**metadata, "export": {**record, "seconds_per_forward": seconds,
                                       "measured_on": signature}}

    assert choose_runtime(timed(keras=1.0, openvino=0.8, onnx=2.0)) == "openvino"
    assert choose_runtime(timed(keras=1.0, openvino=1.2, onnx=0.7)) == "onnx"  # the fastest
    assert choose_runtime(timed(keras=1.0, openvino=0.97)) == "keras"  # within 5%: noise
    assert choose_runtime(timed(keras=1.0, openvino=1.3)) == "keras"
    # measured on another machine, or never: Keras (fastest on both CPUs benchmarked)
    assert choose_runtime(timed({"cpu": "another CPU"}, keras=1.0, openvino=0.5)) == "keras"
    assert choose_runtime(timed({"logical_cpus": 64}, keras=1.0, openvino=0.5)) == "keras"
    assert choose_runtime(timed({"onednn": False}, keras=1.0, openvino=0.5)) == "keras"
    assert choose_runtime({**metadata, "export": {"formats": ["openvino"]}}) == "keras"
    assert choose_runtime(plain) == "keras"
    assert choose_runtime(timed(keras=1.0, openvino=0.5), "keras") == "keras"
    assert choose_runtime(metadata, "onnx") == "onnx"
    # a fold ensemble runs on one runtime: the median of the folds' measurements
    folds_timed = [timed(keras=1.0, openvino=0.5), timed(keras=1.0, openvino=1.4),
                   timed(keras=1.0, openvino=1.1), timed({"cpu": "x"}, keras=9.0)]
    assert export_module.measured_seconds(folds_timed) == {"keras": 1.0, "openvino": 1.1}
    assert choose_runtime(metadata, measured={"keras": 1.0, "openvino": 0.5}) == "openvino"
    monkeypatch.setattr(export_module, "runtime_installed", lambda r: r != "openvino")
    assert choose_runtime(timed(keras=1.0, openvino=0.5)) == "keras"  # not installed
    with pytest.raises(InputError, match=r'pip install "hnprog\[openvino\]"'):
        choose_runtime(metadata, "openvino")
    monkeypatch.undo()
    with pytest.raises(InputError, match="has no onnx export.*hnprog export"):
        from_preset(sources[0], runtime="onnx")
    with pytest.raises(InputError, match="runtime must be"):
        choose_runtime(metadata, "tensorrt")
    monkeypatch.setattr(export_module, "cpu_vector_extensions", lambda: ["AVX2", "AMX-BF16"])
    with pytest.raises(InputError, match="bf16 inference runs on OpenVINO only"):
        choose_runtime(metadata, "onnx", "bf16")
    assert choose_runtime(metadata, "auto", "bf16") == "openvino"
    monkeypatch.setattr(export_module, "cpu_vector_extensions", lambda: ["SSE4.2", "AVX2", "FMA"])
    with pytest.raises(InputError, match="bf16 inference needs a CPU with AVX-512 BF16 or AMX-BF16"):
        from_preset(exported[0], runtime="auto", precision="bf16")
    with pytest.raises(InputError, match="not empty"):
        export_runtime(sources[0], exported[0])
    with pytest.raises(InputError, match="formats must be among"):
        export_runtime(sources[0], tmp_path / "x", formats=["tflite"])


def test_bf16_on_a_cpu_that_has_it_stays_close_to_fp32(folds):
    if not export_module.bf16_supported():
        pytest.skip("this CPU has no AVX-512 BF16 / AMX-BF16")
    x = tiny_images(2, seed=3)
    fp32 = from_preset(folds[1][0], runtime="openvino").predict(x)
    bf16 = from_preset(folds[1][0], runtime="openvino", precision="bf16")
    assert bf16.precision == "bf16"
    out = bf16.predict(x)
    # bf16 keeps 8 bits of mantissa: differences of a few 1e-3 relative, never fp32-exact
    np.testing.assert_allclose(out["segmentation"], fp32["segmentation"], atol=0.1)
    assert np.abs(out["risk"] - fp32["risk"]).max() < 0.1


def test_mirror_tta_averages_the_image_and_its_left_right_mirror(folds):
    preset = from_preset(folds[0][0])
    x = tiny_images(2, seed=4)
    plain, mirrored = preset.predict(x), preset.predict(x[:, :, :, ::-1].copy())
    out = MirrorTTA(preset).predict(x)
    np.testing.assert_allclose(out["risk"], (plain["risk"] + mirrored["risk"]) / 2, atol=1e-6)
    np.testing.assert_allclose(
        out["segmentation"],
        (plain["segmentation"] + mirrored["segmentation"][:, :, :, ::-1]) / 2, atol=1e-6)
    # a mirrored image gives the mirrored TTA segmentation and the same risk
    flipped = MirrorTTA(preset).predict(x[:, :, :, ::-1].copy())
    np.testing.assert_allclose(flipped["risk"], out["risk"], atol=1e-5)
    np.testing.assert_allclose(flipped["segmentation"], out["segmentation"][:, :, :, ::-1],
                               atol=1e-5)
    assert MirrorTTA(preset).preprocessing == preset.preprocessing


def test_cli_export_then_predict_with_each_runtime(synthetic_cohort, tmp_path):
    from hnprog.data.cohort import read_cohort
    from hnprog.models import build_multitask_unet
    from hnprog.presets import save_to_preset
    from hnprog.transforms import PreprocessConfig

    model = build_multitask_unet(input_shape=(32, 32, 32, 2), filters=(2, 4, 4, 8, 8),
                                 dense_units=8)
    source = save_to_preset(model, tmp_path / "src", preprocessing=PreprocessConfig(
        spacing=4.5, crop_size=32), dataset={"name": "none", "synthetic": True})
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(source), "-f", "openvino", "-f", "onnx",
                                  "-o", str(tmp_path / "exp")])
    assert result.exit_code == 0, result.output
    assert "largest difference to Keras" in result.output
    patient = read_cohort(synthetic_cohort).patients[0]
    risks = {}
    for runtime in ("keras", "auto", "openvino", "onnx"):
        out = tmp_path / runtime
        args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m",
                str(tmp_path / "exp"), "-o", str(out), "--no-overlay", "--runtime", runtime]
        result = runner.invoke(main, args + (["--tta"] if runtime == "onnx" else []))
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        risks[runtime] = report["risk"]["log_hazard"]
        measured = json.loads((tmp_path / "exp" / "hnprog.json").read_text())["export"]
        fastest = export_module.auto_order(measured["seconds_per_forward"])[0]
        chosen = fastest if runtime == "auto" else runtime
        assert report["inference"] == {"runtime": chosen, "precision": "fp32",
                                       "tta": runtime == "onnx"}
        assert report["risk"]["fold_sd"] is None
    assert risks["openvino"] == pytest.approx(risks["keras"], abs=1e-4)
    assert risks["auto"] == pytest.approx(risks["keras"], abs=1e-4)
    result = runner.invoke(main, ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet),
                                  "-m", str(source), "-o", str(tmp_path / "x"),
                                  "--runtime", "openvino"])
    assert result.exit_code == 1 and "has no openvino export" in result.output


def test_cli_predict_decides_the_runtime_before_keras_and_says_which(folds, synthetic_cohort,
                                                                     tmp_path, monkeypatch):
    from hnprog.data.cohort import read_cohort

    patient = read_cohort(synthetic_cohort).patients[0]
    args = ["predict", "--ct", str(patient.ct), "--pet", str(patient.pet), "-m",
            str(folds[1][0].parent), "--no-overlay"]
    monkeypatch.setattr(export_module, "cpu_vector_extensions", lambda: ["AVX2", "FMA"])
    monkeypatch.setattr("hnprog.predict.load_predictor", None)  # must not be reached
    result = CliRunner().invoke(main, args + ["-o", str(tmp_path / "bf16"), "--precision",
                                              "bf16"])
    assert result.exit_code == 1
    assert "bf16 inference needs a CPU with AVX-512 BF16 or AMX-BF16" in result.output
    assert not (tmp_path / "bf16").exists()
    monkeypatch.undo()
    result = CliRunner().invoke(main, args + ["-o", str(tmp_path / "auto")])
    assert result.exit_code == 0, result.output
    chosen = json.loads((tmp_path / "auto" / "report.json").read_text())["inference"]["runtime"]
    assert f"runtime: {chosen} (--runtime auto: " in result.output
