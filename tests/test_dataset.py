"""The crop cache, the censoring-balanced sampler and the Keras PyDataset."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from hnprog.testing.cohorts import BOX, CONFIG, make_ct, write_cohort

import hnprog.data.dataset as dataset_module
from hnprog.data.cohort import read_cohort
from hnprog.data.dataset import CaseCache, CohortDataset, MemoryCache, censoring_balanced_indices
from hnprog.errors import InputError
from hnprog.io import write_image
from hnprog.transforms import preprocess_case

IDS = [f"CHGJ{i:03d}" for i in range(6)]
EVENTS = [1, 0, 0, 0, 0, 1]


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), IDS, events=EVENTS)


@pytest.mark.parametrize(
    "n_events, n_censored, fraction", [(28, 125, 0.5), (3, 7, 0.5), (5, 5, 0.3), (9, 2, 0.5)]
)
def test_balanced_sampler_reaches_fraction_with_even_repeats(n_events, n_censored, fraction):
    event = np.array([True] * n_events + [False] * n_censored)
    order = censoring_balanced_indices(event, fraction, seed=1, epoch=0)
    share = event[order].mean()
    assert abs(share - fraction) <= 1 / len(order) + 1e-9
    counts = np.bincount(order, minlength=event.size)
    assert counts.min() >= 1  # nobody is dropped
    for group in (event, ~event):
        assert counts[group].max() - counts[group].min() <= 1  # repeats as even as possible
    if n_events == 28:
        assert len(order) == 250


def test_balanced_sampler_is_seeded_per_epoch():
    event = np.array([True] * 3 + [False] * 10)
    first = censoring_balanced_indices(event, seed=0, epoch=0)
    np.testing.assert_array_equal(first, censoring_balanced_indices(event, seed=0, epoch=0))
    assert not np.array_equal(first, censoring_balanced_indices(event, seed=0, epoch=1))


def test_balanced_sampler_rejects_impossible_requests():
    with pytest.raises(InputError, match="both must be > 0"):
        censoring_balanced_indices([False, False])
    with pytest.raises(
        InputError, match=r"event_fraction must be in \(0, 1\). Received: event_fraction=1.0"
    ):
        censoring_balanced_indices([True, False], 1.0)


def test_cache_hit_skips_nifti_and_changed_inputs_invalidate(cohort_dir, tmp_path, monkeypatch):
    cohort = read_cohort(cohort_dir)
    patient = cohort[IDS[0]]
    cache = CaseCache(tmp_path, CONFIG)
    calls = []
    real_load = dataset_module.load_case
    monkeypatch.setattr(
        dataset_module, "load_case", lambda *a, **k: calls.append(1) or real_load(*a, **k)
    )
    first = cache.load(patient, BOX)
    second = cache.load(patient, BOX)
    assert len(calls) == 1 and len(list(tmp_path.glob(f"{IDS[0]}-*.npz"))) == 1
    for key in ("ct", "pet", "mask"):
        assert second.images[key].GetOrigin() == first.images[key].GetOrigin()
        assert second.images[key].GetDirection() == first.images[key].GetDirection()
    # another parameter -> another key
    assert CaseCache(tmp_path, CONFIG.__class__(spacing=1.0, crop_size=16)).key(
        patient, BOX
    ) != cache.key(patient, BOX)
    assert cache.key(patient, None) != cache.key(patient, BOX)
    # a changed input file -> a new key; the stale file is removed
    old = cache.path(patient, BOX)
    write_image(make_ct(point_value=500.0), patient.ct)
    os.utime(patient.ct, ns=(1, 1))
    assert cache.path(patient, BOX) != old
    cache.load(patient, BOX)
    assert len(calls) == 2 and not old.exists()
    assert len(list(tmp_path.glob(f"{IDS[0]}-*.npz"))) == 1


def test_cached_crop_gives_same_sample_as_nifti(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    patient = cohort[IDS[1]]
    from hnprog.data.preprocess import load_case

    cache = CaseCache(tmp_path, CONFIG)
    cache.load(patient, BOX)
    for seed in (0, 1, 2):
        cached = preprocess_case(cache.load(patient, BOX), CONFIG, rng=np.random.default_rng(seed))
        direct = preprocess_case(load_case(patient, BOX), CONFIG, rng=np.random.default_rng(seed))
        np.testing.assert_allclose(cached.image, direct.image, atol=1e-6)
        np.testing.assert_array_equal(cached.mask, direct.mask)


def test_cache_fill_reports_failures(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    cohort.bboxes = {**cohort.bboxes, IDS[2]: BOX.from_center((0, 0, 900), 32)}
    failures = CaseCache(tmp_path, CONFIG).fill(cohort)
    assert failures["patient_id"].tolist() == [IDS[2]]
    assert "lies outside the CT image" in failures["error"][0]


def test_dataset_batches_have_contract_shapes(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    data = CohortDataset(cohort, IDS[:5], config=CONFIG, batch_size=2, cache_dir=tmp_path)
    assert len(data) == 3
    x, y = data[0]
    assert set(x) == {"image"} and set(y) == {"segmentation", "risk"}
    assert x["image"].shape == (2, 16, 16, 16, 2) and x["image"].dtype == np.float32
    assert y["segmentation"].shape == (2, 16, 16, 16, 1) and y["segmentation"].dtype == np.float32
    assert set(np.unique(y["segmentation"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(
        y["risk"], np.array([[100.0, 1.0], [200.0, 0.0]], dtype=np.float32)
    )
    assert data[2][0]["image"].shape[0] == 1  # last, partial batch
    with pytest.raises(IndexError):
        data[3]


def test_dataset_balanced_augmented_epochs_are_reproducible(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    kwargs = dict(
        config=CONFIG, batch_size=4, augment=True, event_fraction=0.5, cache_dir=tmp_path, seed=3
    )
    a, b = CohortDataset(cohort, **kwargs), CohortDataset(cohort, **kwargs)
    assert len(a.order) == 8 and a.targets[a.order, 1].mean() == 0.5
    np.testing.assert_array_equal(a[1][0]["image"], b[1][0]["image"])
    first_order = a.order.copy()
    a.on_epoch_end()
    assert a.epoch == 1 and not np.array_equal(a.order, first_order)


def test_dataset_set_epoch_gives_that_epoch_and_stops_self_advancing(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    kwargs = dict(
        config=CONFIG, batch_size=4, augment=True, event_fraction=0.5, cache_dir=tmp_path, seed=3
    )
    straight, resumed = CohortDataset(cohort, **kwargs), CohortDataset(cohort, **kwargs)
    for _ in range(2):
        straight.on_epoch_end()
    resumed.set_epoch(2)  # a resumed run jumps straight to epoch 2
    assert resumed.epoch == straight.epoch == 2
    np.testing.assert_array_equal(resumed.order, straight.order)
    np.testing.assert_array_equal(resumed[1][0]["image"], straight[1][0]["image"])
    resumed.on_epoch_end()  # the caller now sets every epoch
    assert resumed.epoch == 2
    with pytest.raises(InputError, match="epoch must be an integer >= 0"):
        resumed.set_epoch(-1)


def test_memory_cache_gives_the_same_batches_and_skips_the_disk(cohort_dir, tmp_path, monkeypatch):
    cohort = read_cohort(cohort_dir)
    for augment in (True, False):
        kwargs = dict(config=CONFIG, batch_size=3, augment=augment, cache_dir=tmp_path, seed=5)
        cached, plain = CohortDataset(cohort, **kwargs), CohortDataset(
            cohort, memory_cache_mb=0, **kwargs)
        first = cached[0]
        assert len(cached.memory) == 3 and len(plain.memory) == 0
        reads = []
        monkeypatch.setattr(CaseCache, "load", lambda *a, **k: reads.append(a) or None)
        again = cached[0]  # from memory: the disk cache is not touched
        assert reads == []
        monkeypatch.undo()
        for batch in (first, again):
            np.testing.assert_array_equal(batch[0]["image"], plain[0][0]["image"])
            np.testing.assert_array_equal(batch[1]["segmentation"], plain[0][1]["segmentation"])
    with pytest.raises(InputError, match="memory_cache_mb must be >= 0"):
        CohortDataset(cohort, config=CONFIG, memory_cache_mb=-1)


def test_memory_cache_evicts_least_recently_used_within_budget():
    class Entry:  # duck-types PreprocessedCase for the size
        def __init__(self, nbytes):
            self.image, self.mask = np.zeros(nbytes, np.uint8), None

    cache = MemoryCache(max_bytes=250)
    made = []

    def get(key, nbytes=100):
        return cache.get(key, lambda: made.append(key) or Entry(nbytes))

    get("a"), get("b"), get("a"), get("c")  # "b" is the least recently used: dropped
    assert made == ["a", "b", "c"] and cache.nbytes == 200 and len(cache) == 2
    get("a")
    get("b")
    assert made == ["a", "b", "c", "b"]
    get("huge", nbytes=1000)  # larger than the budget: returned, never kept
    assert "huge" not in cache._entries and cache.nbytes <= 250


def test_dataset_rejects_missing_targets(cohort_dir):
    cohort = read_cohort(cohort_dir)
    with pytest.raises(InputError, match="outputs must be among"):
        CohortDataset(cohort, config=CONFIG, outputs=("survival",))
    cohort.endpoints = None
    with pytest.raises(InputError, match="has no endpoints"):
        CohortDataset(cohort, config=CONFIG)
    only_seg = CohortDataset(cohort, config=CONFIG, outputs=("segmentation",))
    assert set(only_seg[0][1]) == {"segmentation"}


def tiny_model() -> keras.Model:
    image = keras.Input((16, 16, 16, 2), name="image")
    segmentation = keras.layers.Conv3D(
        1, 3, padding="same", activation="sigmoid", name="segmentation"
    )(image)
    pooled = keras.layers.GlobalAveragePooling3D()(image)
    risk = keras.layers.Dense(1, name="risk")(pooled)
    return keras.Model({"image": image}, {"segmentation": segmentation, "risk": risk})


def risk_plumbing_loss(y_true, y_pred):
    # checks the (time, event) target reaches the loss with shape (N, 2)
    return keras.ops.mean(keras.ops.square(y_pred[:, 0] - y_true[:, 0] / 1000.0 - y_true[:, 1]))


@pytest.mark.backend_independent
def test_model_fit_on_dataset_with_workers(cohort_dir, tmp_path):
    cohort = read_cohort(cohort_dir)
    data = CohortDataset(
        cohort,
        config=CONFIG,
        batch_size=3,
        augment=True,
        event_fraction=0.5,
        cache_dir=tmp_path,
        workers=2,
    )
    model = tiny_model()
    model.compile(
        optimizer="adam", loss={"segmentation": "binary_crossentropy", "risk": risk_plumbing_loss}
    )
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert data.epoch >= 1


def test_synthetic_cohort_end_to_end_with_automatic_boxes(synthetic_cohort, tmp_path):
    cohort = read_cohort(synthetic_cohort)
    assert cohort.layout == "hecktor2021" and len(cohort) == 3
    cohort.bboxes = {cohort.ids[0]: cohort.bboxes[cohort.ids[0]]}  # others: automatic PET box
    config = CONFIG.__class__.cpu(crop_size=32)
    data = CohortDataset(cohort, config=config, batch_size=3, cache_dir=tmp_path / "cache")
    x, y = data[0]
    assert x["image"].shape == (3, 32, 32, 32, 2) and np.isfinite(x["image"]).all()
    assert (y["segmentation"].reshape(3, -1).sum(axis=1) > 0).all()  # every tumour is in view
    np.testing.assert_array_equal(y["risk"], data.targets)
