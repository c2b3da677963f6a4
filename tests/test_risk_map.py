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
def test_map_shape_is_the_network_grid_non_negative_and_bad_inputs_are_refused():
    keras.utils.set_random_seed(0)
    model = build_multitask_unet((16, 16, 16, 2), filters=(2, 4), dropout=0.0, dense_units=3)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 16, 2)).astype("float32")
    maps = risk_activation_map(model, x)
    assert maps.shape == (2, 16, 16, 16) and maps.dtype == np.float32 and (maps >= 0).all()
    np.testing.assert_allclose(risk_activation_map(model, x[0]), maps[0], rtol=1e-5, atol=1e-9)
    with pytest.raises(InputError, match="shape"):
        risk_activation_map(model, x[:, :8])
    segmentation_only = build_multitask_unet((16, 16, 16, 2), task="segmentation",
                                             filters=(2, 4))
    with pytest.raises(InputError, match="risk branch"):
        risk_activation_map(segmentation_only, x)


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
    """Measured (TensorFlow, 2 CPU cores, about 20 s): within 10 mm of the GTVt lie 0.20 of
    the map's mass trained (0.06 untrained; the 10 mm shell is 2.4% of the cube), 0.44
    within 20 mm, and 0.48 of the two shallower levels' map (levels=(1, 2)). Not most of the
    mass: the deepest level carries most of the risk on 16 mm voxels (docs/results.md)."""
    from hnprog.training import TrainingConfig, train_model
    from hnprog.training.fit import build_model
    from hnprog.transforms import PreprocessConfig

    config = TrainingConfig(epochs=5, batch_size=8, filters=(4, 8, 16), learning_rate=3e-3,
                            dropout=0.0, preprocessing=PreprocessConfig(spacing=SPACING,
                                                                        crop_size=SIZE),
                            run_eagerly=keras.backend.backend() == "tensorflow")
    test = TumourDrivenPatients(16, seed=3)
    untrained = mass_near_tumour(risk_activation_map(build_model(config), test.image), test.mask)
    result = train_model(TumourDrivenPatients(32, seed=1), TumourDrivenPatients(16, seed=2),
                         tmp_path, config=config, verbose=0, export=False)
    maps = risk_activation_map(result.model, test.image)
    trained = mass_near_tumour(maps, test.mask)
    shallow = mass_near_tumour(risk_activation_map(result.model, test.image, levels=(1, 2)),
                               test.mask)
    shell = np.mean([(ndimage.distance_transform_edt(m == 0, sampling=SPACING) <= 10).mean()
                     for m in test.mask])
    print(f"share within 10 mm of the GTVt: trained {trained.mean():.2f}, untrained "
          f"{untrained.mean():.2f}, levels 1-2 {shallow.mean():.2f}, within 20 mm "
          f"{mass_near_tumour(maps, test.mask, 20.0).mean():.2f}; shell volume {shell:.3f}")
    assert trained.mean() > 5 * shell and trained.mean() > 2 * untrained.mean()
    assert shallow.mean() > 0.4


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
    predict_patient(patient.ct, patient.pet, load_predictor(tmp_path / "preset"), tmp_path / "q")
    assert not (tmp_path / "q" / "risk_map.nii.gz").exists()
