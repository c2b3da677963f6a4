"""Fold ensembles: mean risk and mean probability map, member checks, loading from presets."""

from __future__ import annotations

import numpy as np
import pytest

from hnprog.errors import InputError
from hnprog.presets import FoldEnsemble, Preset, from_preset
from hnprog.testing.presets import make_tiny_preset as make_preset
from hnprog.testing.presets import tiny_images as images
from hnprog.testing.presets import tiny_model


@pytest.mark.backend_independent
def test_predict_is_the_mean_of_the_members():
    models = [tiny_model(seed) for seed in range(3)]
    ensemble = FoldEnsemble(models)
    x = images(2)
    got = ensemble.predict(x)
    singles = [m.predict(x, verbose=0) for m in models]
    for key, shape in (("risk", (2, 1)), ("segmentation", (2, 16, 16, 16, 1))):
        expected = np.mean([s[key] for s in singles], axis=0)
        assert got[key].shape == shape and got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], expected, rtol=1e-5, atol=1e-6)
    # the members really differ, so the mean is not one of them
    assert not np.allclose(singles[0]["risk"], singles[1]["risk"])
    np.testing.assert_allclose(ensemble.predict({"image": x})["risk"], got["risk"], rtol=1e-6)


def test_from_preset_on_a_list_and_on_a_folder_of_folds(tmp_path):
    for k in range(2):
        make_preset(tmp_path / "run" / f"fold{k}", seed=k)
    listed = from_preset([tmp_path / "run" / "fold0", tmp_path / "run" / "fold1"])
    discovered = from_preset(tmp_path / "run")
    for ensemble in (listed, discovered):
        assert isinstance(ensemble, FoldEnsemble) and len(ensemble) == 2
        assert [m.metadata["fold"] for m in ensemble] == [0, 1]
        assert ensemble.preprocessing == listed.members[0].preprocessing
        assert ensemble.outputs == ["risk", "segmentation"]
    x = images(1)
    np.testing.assert_allclose(discovered.predict(x)["risk"], listed.predict(x)["risk"],
                               rtol=1e-6)
    assert "fold0" in repr(listed)


def test_members_must_agree(tmp_path):
    with pytest.raises(InputError, match="at least one member"):
        FoldEnsemble([])
    with pytest.raises(InputError, match="disagree on their outputs"):
        FoldEnsemble([tiny_model(0), tiny_model(1, outputs=("risk",))])
    a = Preset(tiny_model(0), {"preprocessing": {"spacing": [1, 1, 1]}}, source="a")
    b = Preset(tiny_model(1), {"preprocessing": {"spacing": [2, 2, 2]}}, source="b")
    with pytest.raises(InputError, match="different preprocessing"):
        FoldEnsemble([a, b])
    with pytest.raises(InputError, match="at least one preset"):
        from_preset([])


def test_predict_checks_the_shape():
    ensemble = FoldEnsemble([tiny_model(0)])
    with pytest.raises(InputError, match=r"x\.shape=\(16, 16, 16, 2\)"):
        ensemble.predict(np.zeros((16, 16, 16, 2), "float32"))
