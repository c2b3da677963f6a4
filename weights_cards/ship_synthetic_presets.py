"""Turn the multi-task folds of a synthetic-cohort ``hnprog cv`` run into the presets that
hnprog ships (``hnprog/pretrained/``), register them with their checksums
(``hnprog/presets/registry.json``) and write their cards here.

The exact recipe of the shipped ``unet3d_multitask_synthetic_petct`` family:

    hnprog synth exp/data --patients 120 --seed 2026 --censoring 0.7 --jobs 2
    hnprog cv exp/data --out exp/cv --spacing 4.5 --crop-size 32 --filters 4,8,16,32,64 \\
        --epochs 30 --batch-size 8 --folds 3 --seed 0
    python weights_cards/ship_synthetic_presets.py exp/cv

Every number in the cards comes from the run's own ``hnprog.json`` files.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from hnprog.io import write_json
from hnprog.presets import REGISTRY_PATH, from_preset, save_to_preset, sha256_file, write_card

FAMILY = "unet3d_multitask_synthetic_petct"
PACKAGE = Path(__file__).resolve().parents[1] / "hnprog"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv_dir", type=Path, help="the hnprog cv output folder")
    args = parser.parse_args()

    registry = json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.is_file() else {}
    with open(args.cv_dir / "predictions.csv", newline="") as f:
        n_patients = len({row["patient_id"] for row in csv.DictReader(f)})
    registry = {k: v for k, v in registry.items() if not k.startswith(FAMILY)}
    for run in sorted((args.cv_dir / "multitask").glob("fold-*")):
        fold = int(run.name.split("-")[1])
        name = f"{FAMILY}_fold{fold}"
        source = from_preset(run / "preset")
        meta = source.metadata
        target = PACKAGE / "pretrained" / name
        shutil.rmtree(target, ignore_errors=True)
        save_to_preset(
            source.model, target, preprocessing=meta["preprocessing"], name=name,
            description=("Multi-task 3D UNet (GTVt segmentation + Cox risk), small (4-64 "
                         "filters, 32^3 at 4.5 mm), trained on the hnprog SYNTHETIC cohort: "
                         "for trying the tool, never for patients."),
            task=meta["task"], fold=meta["fold"], n_folds=meta["n_folds"],
            split_seed=meta["split_seed"], risk_threshold=meta["outputs"]["risk"]["threshold"],
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
        print(f"{name}: {meta['metrics']}")
    write_json(registry, REGISTRY_PATH)


if __name__ == "__main__":
    main()
