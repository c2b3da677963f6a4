"""Turn the multi-task folds of a synthetic-cohort ``hnprog cv`` run into the presets that
hnprog ships (``hnprog/pretrained/``), register them with their checksums
(``hnprog/presets/registry.json``) and write their cards here.

The exact recipe of the shipped ``unet3d_multitask_synthetic_petct`` family:

    hnprog synth exp/data --patients 120 --seed 2026 --censoring 0.7 --jobs 2
    hnprog cv exp/data --out exp/cv --spacing 4.5 --crop-size 32 --filters 4,8,16,32,64 \\
        --epochs 30 --batch-size 8 --folds 3 --seed 0
    python weights_cards/ship_synthetic_presets.py exp/cv

Every number in the cards comes from the run's own ``hnprog.json`` files, the survival
baseline (Breslow, of each fold's training patients) included.

The presets shipped before ``hnprog cv`` recorded a baseline got theirs without retraining:

    python weights_cards/ship_synthetic_presets.py --baseline-from exp/data

regenerates each fold's split of the cohort (the run's seed and fold count), checks that the
shipped weights reproduce the test C-index and Dice their ``hnprog.json`` records exactly (so
the cohort and the split are the run's), and records the baseline of the fold's training
patients, as ``hnprog cv`` does. The weights are unchanged.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hnprog.io import write_json
from hnprog.presets import REGISTRY_PATH, from_preset, save_to_preset, sha256_file, write_card

FAMILY = "unet3d_multitask_synthetic_petct"
PACKAGE = Path(__file__).resolve().parents[1] / "hnprog"
DESCRIPTION = ("Multi-task 3D UNet (GTVt segmentation + Cox risk), small (4-64 filters, 32^3 at "
               "4.5 mm), trained on the hnprog SYNTHETIC cohort: for trying the tool, never for "
               "patients.")


def ship(source: Any, fold: int, n_patients: int, registry: dict[str, Any], *,
         baseline: dict[str, Any] | None, clinical_model: dict[str, Any] | None) -> None:
    """Write fold ``fold`` (1-based) of the family from a loaded preset, card and register it."""
    name = f"{FAMILY}_fold{fold}"
    meta = source.metadata
    target = PACKAGE / "pretrained" / name
    shutil.rmtree(target, ignore_errors=True)
    save_to_preset(
        source.model, target, preprocessing=meta["preprocessing"], name=name,
        description=DESCRIPTION, task=meta["task"], fold=meta["fold"], n_folds=meta["n_folds"],
        split_seed=meta["split_seed"], risk_threshold=meta["outputs"]["risk"]["threshold"],
        baseline=baseline, clinical_model=clinical_model,
        dataset={**meta["dataset"],
                 "name": f"hnprog synthetic cohort ({n_patients} patients, seed 2026)",
                 "id": f"hnprog-synthetic-{n_patients}", "synthetic": True},
        training=meta["training"], metrics=meta["metrics"],
    )
    write_card(target, cards_dir=Path(__file__).parent)
    files = sorted(p.name for p in target.iterdir())
    registry[name] = {
        "description": f"Fold {fold} of {FAMILY}: synthetic-data weights for trying hnprog, "
                       "never for patients.",
        "path": f"pretrained/{name}",
        "sha256": {f: sha256_file(target / f) for f in files},
    }
    print(f"{name}: {meta['metrics']}, baseline: {baseline is not None}")


def from_cv_run(cv_dir: Path, registry: dict[str, Any]) -> None:
    """Ship the multi-task folds of a ``hnprog cv`` run, with the baselines it recorded."""
    with open(cv_dir / "predictions.csv", newline="") as f:
        n_patients = len({row["patient_id"] for row in csv.DictReader(f)})
    for run in sorted((cv_dir / "multitask").glob("fold-*")):
        source = from_preset(run / "preset")
        risk = source.metadata["outputs"]["risk"]
        ship(source, int(run.name.split("-")[1]), n_patients, registry,
             baseline=risk.get("baseline"), clinical_model=risk.get("clinical"))


def baselines_from_cohort(data: Path, registry: dict[str, Any]) -> None:
    """Record the Breslow baseline of each shipped fold's training patients, recomputed on
    the regenerated cohort after checking that its test metrics reproduce exactly."""
    from hnprog.metrics import concordance_index
    from hnprog.splits import make_splits
    from hnprog.training.config import TrainingConfig
    from hnprog.training.runs import (baseline_of, cohort_datasets, patient_centres,
                                      predict_dataset, read_cohort_with_endpoints,
                                      training_risks)

    cohort = read_cohort_with_endpoints(data)
    y = cohort.survival_y()
    known = patient_centres(cohort, None)
    centres = [known[i] for i in cohort.ids]
    groups = centres if all(c is not None for c in centres) else None  # as hnprog cv groups
    ids = np.asarray(cohort.ids)
    with tempfile.TemporaryDirectory() as cache:
        for fold in (1, 2, 3):
            source = from_preset(PACKAGE / "pretrained" / f"{FAMILY}_fold{fold}")
            meta = source.metadata
            config = TrainingConfig.from_dict(meta["training"])
            split = make_splits(y["event"], n_folds=config.n_folds,
                                val_fraction=config.val_fraction, seed=config.seed,
                                groups=groups)[meta["fold"]]
            _, test = cohort_datasets(cohort, ids[split.train], ids[split.test], config,
                                      cache_dir=cache, train=False)
            risk, dice = predict_dataset(source.model, test)
            found = {"c_index": float(concordance_index(
                         event=y["event"][split.test], time=y["time"][split.test], risk=risk)),
                     "dice": float(np.mean(dice))}
            recorded = meta["metrics"]["test"]
            if any(abs(found[k] - recorded[k]) > 1e-9 for k in found):
                sys.exit(f"fold {fold}: test metrics {found} differ from the recorded "
                         f"{recorded}: {data} is not the cohort (or split) it was trained on")
            own = training_risks(source.model, cohort, ids[split.train], config,
                                 cache_dir=cache)
            ship(source, fold, meta["dataset"]["n_patients"], registry,
                 baseline=baseline_of(cohort, ids[split.train], own),
                 clinical_model=meta["outputs"]["risk"].get("clinical"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("cv_dir", type=Path, nargs="?", help="the hnprog cv output folder")
    source.add_argument("--baseline-from", type=Path, metavar="DATA",
                        help="add survival baselines to the shipped presets from this "
                             "regenerated cohort (see above)")
    args = parser.parse_args()

    registry = json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.is_file() else {}
    registry = {k: v for k, v in registry.items() if not k.startswith(FAMILY)}
    if args.baseline_from is not None:
        baselines_from_cohort(args.baseline_from, registry)
    else:
        from_cv_run(args.cv_dir, registry)
    write_json(registry, REGISTRY_PATH)


if __name__ == "__main__":
    main()
