"""Model cards: generated from hnprog.json, model-index from the run's metrics, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard

from hnprog.cli import main
from hnprog.errors import InputError
from hnprog.presets import verify_preset
from hnprog.presets.cards import SYNTHETIC_WARNING, card_run, make_model_card, write_card
from hnprog.testing.presets import make_tiny_preset as make_preset


def test_model_index_holds_the_run_metrics(tmp_path):
    folder = make_preset(tmp_path / "p", seed=3,
                         metrics={"test": {"c_index": 0.6789, "dice": 0.5432, "loss": 1.5},
                                  "validation": {"c_index": 0.7}})
    card = ModelCard.load(folder / "README.md")
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("test", "c-index"): 0.6789, ("test", "dice"): 0.5432,
                       ("validation", "c-index"): 0.7}
    assert {r.dataset_type for r in card.data.eval_results} == {"hnprog-synthetic"}
    assert card.data.license == "apache-2.0"
    assert "synthetic-data" in card.data.tags
    text = card.text
    assert SYNTHETIC_WARNING in text
    assert "| test | 0.6789 | 0.5432 | 1.5000 |" in text  # the body table, same numbers
    assert "Research only" in text
    assert '| fold | 4 of 5 (`"fold": 3` in hnprog.json, counted from 0) |' in text
    weights_sha = verify_preset(folder)["files"]["model.weights.h5"]
    assert weights_sha in text


def test_card_of_real_data_weights_has_no_synthetic_label(tmp_path):
    metadata = verify_preset(make_preset(tmp_path / "p", dataset={"name": "HECKTOR 2021",
                                                                  "id": "hecktor-2021"}))
    card = make_model_card(metadata)
    assert "synthetic" not in str(card).lower()
    assert card.data.eval_results[0].dataset_name == "HECKTOR 2021"


def test_card_without_metrics_says_so(tmp_path):
    card = make_model_card(verify_preset(make_preset(tmp_path / "p", metrics=None)))
    assert card.data.eval_results is None
    assert "The run recorded no metrics." in card.text


def test_write_card_updates_the_checksum_and_copies(tmp_path):
    folder = make_preset(tmp_path / "p", write_card=False)
    assert "README.md" not in verify_preset(folder)["files"]
    path = write_card(folder, cards_dir=tmp_path / "cards")
    metadata = verify_preset(folder)  # README.md now listed, and matches
    assert "README.md" in metadata["files"]
    assert (tmp_path / "cards" / "p.md").read_text() == path.read_text()


def test_card_run_finds_fold_presets_and_cli(tmp_path):
    for k in range(2):
        make_preset(tmp_path / "run" / f"fold{k}" / "preset", seed=k, name=f"fam_fold{k}")
    written = card_run(tmp_path / "run", cards_dir=tmp_path / "cards")
    assert [p.parent.parent.name for p in written] == ["fold0", "fold1"]
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == ["fam_fold0.md",
                                                                       "fam_fold1.md"]
    result = CliRunner().invoke(main, ["card", str(tmp_path / "run"), "--cards-dir",
                                       str(tmp_path / "cli_cards")])
    assert result.exit_code == 0, result.output
    assert "2 card(s) written" in result.output
    with pytest.raises(InputError, match="no preset found"):
        card_run(tmp_path / "cards")


def test_card_refuses_a_tampered_preset(tmp_path):
    folder = make_preset(tmp_path / "p")
    metadata = json.loads((folder / "hnprog.json").read_text())
    metadata["files"]["config.json"] = "0" * 64
    (folder / "hnprog.json").write_text(json.dumps(metadata))
    with pytest.raises(InputError, match=r"sha256 mismatch for config\.json"):
        write_card(folder)
