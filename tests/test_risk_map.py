"""Risk activation maps (Grad-CAM of the risk output over the encoder levels)."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from scipy import ndimage

from hnprog.errors import InputError
from hnprog.models.risk_map import risk_activation_map
from hnprog.models.unet import build_multitask_unet

SIZE, SPACING = 32, 4.0  # a 128 mm cube at 4 mm


class TumourDrivenPatients(keras.utils.PyDataset):
    """In-memory 32^3 patients whose hazard grows with the tumour's radius.

    The tumour is a sphere (radius 2-5 voxels) bright on CT and PET; a same-size bone-like
    distractor (bright on CT only, 10 voxels away) has nothing to do with the outcome.
    """

    def __init__(self, n: int, seed: int, batch_size: int = 8):
        super().__init__()
        rng = np.random.default_rng(seed)
        grid = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1).astype(float)
        radius = rng.uniform(2, 5, n)
        centre = rng.uniform(9, 23, (n, 3))
        self.mask = (np.linalg.norm(grid[None] - centre[:, None, None, None], axis=-1)
                     <= radius[:, None, None, None]).astype("float32")
        other = np.where(centre < 16, centre + 10, centre - 10) + rng.uniform(-1, 1, (n, 3))
        bone = (np.linalg.norm(grid[None] - other[:, None, None, None], axis=-1) <= 4)
        self.bone = bone.astype("float32")
        ct = 0.5 * self.mask + 1.5 * bone
        pet = 2.0 * self.mask
        noise = rng.normal(0, 0.1, (n, SIZE, SIZE, SIZE, 2))
        self.image = (np.stack([ct, pet], -1) + noise).astype("float32")
        time = rng.exponential(1000 / np.exp(2 * (radius - 3.5)))
        self.y = np.stack([time, rng.uniform(size=n) < 0.7], 1).astype("float32")
        self.n, self.batch_size, self.seed, self.order = n, batch_size, seed, np.arange(n)

    def set_epoch(self, epoch: int) -> None:
        self.order = np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return ({"image": self.image[idx]},
                {"segmentation": self.mask[idx][..., None], "risk": self.y[idx]})


def mass_near_tumour(maps: np.ndarray, masks: np.ndarray, mm: float = 10.0) -> np.ndarray:
    """Share of each map's mass within ``mm`` of the GTVt (Euclidean distance transform)."""
    shares = []
    for risk_map, mask in zip(maps, masks):
        distance = ndimage.distance_transform_edt(mask == 0, sampling=SPACING)
        shares.append(risk_map[distance <= mm].sum() / risk_map.sum())
    return np.asarray(shares)


@pytest.mark.backend_independent
@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
def test_map_shape_is_the_network_grid_non_negative_and_bad_inputs_are_refused(method):
    keras.utils.set_random_seed(0)
    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4), dropout=0.0, dense_units=3)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 16, 2)).astype("float32")
    maps = risk_activation_map(model, x, method=method)
    assert maps.shape == (2, 16, 16, 16) and maps.dtype == np.float32 and (maps >= 0).all()
    np.testing.assert_allclose(risk_activation_map(model, x[0], method=method), maps[0],
                               rtol=1e-4, atol=1e-7)
    with pytest.raises(InputError, match="shape"):
        risk_activation_map(model, x[:, :8] if method == "gradcam" else x[..., :1],
                            method=method)
    segmentation_only = build_multitask_unet((16, 16, 16, 2), task="segmentation",
                                             filters=(2, 4))
    with pytest.raises(InputError, match="risk"):
        risk_activation_map(segmentation_only, x, method=method)
    with pytest.raises(InputError, match="method must be one of"):
        risk_activation_map(model, x, method="lime")


class RiskOfARegion:
    """A predictor whose risk is the mean PET in a fixed region: its occlusion map has a
    closed form."""

    region = (slice(3, 9), slice(5, 11), slice(0, 4))

    def predict(self, x, batch_size=1):
        return {"risk": x[:, *self.region, 1].astype(np.float64).mean(axis=(1, 2, 3))[:, None]}


def test_occlusion_map_is_the_risk_drop_of_each_block_closed_form():
    """Blocks of 4 voxels (16 / 4), the (up to) 8 whose occlusion lowers the risk most cut
    in 2; the background fill is the median, 0 here; a voxel holds its block's drop / its
    voxels. The risk is additive, so the map's mass is the risk itself."""
    image = np.zeros((16, 16, 16, 2), np.float32)
    image[..., 1][RiskOfARegion.region] = np.arange(6 * 6 * 4).reshape(6, 6, 4) + 1.0
    maps = risk_activation_map(RiskOfARegion(), image)
    region_voxels = 6 * 6 * 4
    expected = np.zeros((16, 16, 16))
    drops = {}
    for z in range(0, 16, 4):
        for y in range(0, 16, 4):
            for x in range(0, 16, 4):
                block = np.zeros((16, 16, 16), bool)
                block[z:z + 4, y:y + 4, x:x + 4] = True
                drops[z, y, x] = image[..., 1][block].sum() / region_voxels
    refined = sorted(drops, key=lambda k: -drops[k])[:8]
    assert sum(d > 0 for d in drops.values()) == 6  # the region meets 6 blocks: all refined
    for (z, y, x), drop in drops.items():
        if (z, y, x) not in refined:
            expected[z:z + 4, y:y + 4, x:x + 4] = drop / 64
            continue
        for dz in (0, 2):
            for dy in (0, 2):
                for dx in (0, 2):
                    sub = (slice(z + dz, z + dz + 2), slice(y + dy, y + dy + 2),
                           slice(x + dx, x + dx + 2))
                    expected[sub] = image[..., 1][sub].sum() / region_voxels / 8
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-9)
    assert maps.sum() == pytest.approx(image[..., 1].sum() / region_voxels, rel=1e-5)


@pytest.mark.backend_independent
def test_head_gradient_matches_finite_differences():
    from hnprog.models.risk_map import _head_gradient

    keras.utils.set_random_seed(1)
    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4), dropout=0.0, dense_units=5)
    pooled = np.random.default_rng(1).uniform(0, 2, (1, 6))
    head = keras.Sequential([model.get_layer("risk_dense"), model.get_layer("risk")])
    eps = 1e-3
    numeric = [
        (float(head(pooled + eps * np.eye(6)[k])[0, 0])
         - float(head(pooled - eps * np.eye(6)[k])[0, 0])) / (2 * eps)
        for k in range(6)
    ]
    np.testing.assert_allclose(_head_gradient(model, pooled)[0], numeric, atol=2e-3)


@pytest.mark.large
def test_a_trained_tiny_model_points_its_map_at_the_tumour(tmp_path):
    """Measured (TensorFlow, 2 CPU cores, about 40 s): within 10 mm of the GTVt lie 0.91 of
    the occlusion map's mass trained (0.52 untrained, which also reacts to any bright
    object; the 10 mm shell is 2.4% of the cube), and 0.05 within 10 mm of the CT-only
    distractor that has nothing to do with the outcome. Grad-CAM: 0.20 trained (0.06
    untrained), 0.48 for its two shallower levels (``levels=(1, 2)``): the deepest level
    carries most of the risk on 16 mm voxels (docs/results.md)."""
    from hnprog.training import TrainingConfig, train_model
    from hnprog.training.fit import build_model
    from hnprog.transforms import PreprocessConfig

    config = TrainingConfig(epochs=5, batch_size=8, filters=(4, 8, 16), learning_rate=3e-3,
                            dropout=0.0, preprocessing=PreprocessConfig(spacing=SPACING,
                                                                        crop_size=SIZE),
                            run_eagerly=keras.backend.backend() == "tensorflow")
    test = TumourDrivenPatients(16, seed=3)
    untrained_model = build_model(config)
    result = train_model(TumourDrivenPatients(32, seed=1), TumourDrivenPatients(16, seed=2),
                         tmp_path, config=config, verbose=0, export=False)
    shares = {}
    for method in ("occlusion", "gradcam"):
        trained = risk_activation_map(result.model, test.image, method=method)
        untrained = risk_activation_map(untrained_model, test.image, method=method)
        shares[method] = (mass_near_tumour(trained, test.mask).mean(),
                          mass_near_tumour(untrained, test.mask).mean(),
                          mass_near_tumour(trained, test.bone).mean())
    shallow = mass_near_tumour(risk_activation_map(result.model, test.image, method="gradcam",
                                                   levels=(1, 2)), test.mask).mean()
    shell = np.mean([(ndimage.distance_transform_edt(m == 0, sampling=SPACING) <= 10).mean()
                     for m in test.mask])
    print({k: [round(float(v), 2) for v in values] for k, values in shares.items()},
          f"gradcam levels 1-2 {shallow:.2f}, shell {shell:.3f}")
    occlusion, gradcam = shares["occlusion"], shares["gradcam"]
    assert occlusion[0] > 0.5  # most of the mass within 10 mm of the GTVt
    assert occlusion[0] > occlusion[1] + 0.2 and occlusion[2] < 0.2  # learnt, not salience
    assert gradcam[0] > 5 * shell and gradcam[0] > 2 * gradcam[1] and shallow > 0.4


def test_predict_writes_the_risk_map_on_the_ct_grid_and_draws_it(synthetic_cohort, tmp_path):
    import SimpleITK as sitk

    from hnprog.data.cohort import read_cohort
    from hnprog.predict import load_predictor, predict_patient
    from hnprog.presets import save_to_preset
    from hnprog.transforms import PreprocessConfig

    model = build_multitask_unet((32, 32, 32, 2), filters=(2, 4, 4, 8, 8), dense_units=8)
    save_to_preset(model, tmp_path / "preset",
                   preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                   dataset={"name": "none", "synthetic": True})
    patient = read_cohort(synthetic_cohort).patients[0]
    predict_patient(patient.ct, patient.pet, load_predictor(tmp_path / "preset"), tmp_path / "p",
                    risk_map=True)
    ct = sitk.ReadImage(str(patient.ct))
    risk_map = sitk.ReadImage(str(tmp_path / "p" / "risk_map.nii.gz"))
    assert risk_map.GetSize() == ct.GetSize() and risk_map.GetOrigin() == ct.GetOrigin()
    values = sitk.GetArrayViewFromImage(risk_map)
    assert (values >= 0).all() and values.max() > 0
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["files"]["risk_map"] == "risk_map.nii.gz"
    assert report["risk_map"] == {"file": "risk_map.nii.gz", "method": "occlusion"}
    predict_patient(patient.ct, patient.pet, load_predictor(tmp_path / "preset"), tmp_path / "q")
    assert not (tmp_path / "q" / "risk_map.nii.gz").exists()


def test_a_cohort_run_redoes_patients_whose_map_method_changed(synthetic_cohort, tmp_path):
    from hnprog.data.cohort import read_cohort
    from hnprog.predict import load_predictor, predict_cohort
    from hnprog.presets import save_to_preset
    from hnprog.transforms import PreprocessConfig

    model = build_multitask_unet((32, 32, 32, 2), filters=(2, 4, 4, 8, 8), dense_units=8)
    save_to_preset(model, tmp_path / "preset",
                   preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                   dataset={"name": "none", "synthetic": True})
    cohort = read_cohort(synthetic_cohort).subset(read_cohort(synthetic_cohort).ids[:1])
    predictor = load_predictor(tmp_path / "preset")
    out = tmp_path / "out"
    kwargs = dict(overlay=False, progress=False)
    predict_cohort(cohort, predictor, out, risk_map="gradcam", **kwargs)
    _, _, metrics = predict_cohort(cohort, predictor, out, risk_map="gradcam", **kwargs)
    assert metrics["n_resumed"] == 1
    _, _, metrics = predict_cohort(cohort, predictor, out, risk_map=True, **kwargs)
    assert metrics["n_resumed"] == 0
    report = json.loads((out / cohort.ids[0] / "report.json").read_text())
    assert report["risk_map"]["method"] == "occlusion"
    with pytest.raises(InputError, match="risk_map must be True, False or one of"):
        predict_cohort(cohort, predictor, out, risk_map="lime", **kwargs)
