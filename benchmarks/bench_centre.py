"""Centre invariance on the synthetic cohort with a centre effect: leave-one-centre-out.

Generates a cohort whose centres differ in CT/PET calibration and PET resolution and whose
case mix (tumour volume, hence outcome) depends on the centre
(``generate_cohort(centre_effect=1)``), then cross-validates the multi-task model with one
centre held out per fold (``cross_validate(split="centre")``) in three settings:

- ``fixed``: the paper's loss, ``1 * Cox + 1 * Dice``;
- ``uncertainty``: the same tasks weighted by learnt log-variances (Kendall et al., 2018);
- ``adversarial``: fixed weights plus the gradient-reversal centre branch
  (``adversarial_centres=WEIGHT``).

For each setting it prints the test C-index on the held-out centres (mean over folds and
pooled) and how well the training centres can be told apart from the model's pooled
encoder features: the balanced accuracy of a logistic regression, 3-fold cross-validated
over each fold's training patients (chance = 1 / number of training centres). Everything in
one run, so the rows compare like with like; the CPU budget makes the numbers noisy.

Usage::

    python benchmarks/bench_centre.py --patients 48 --epochs 10 --out /tmp/bench-centre
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np


def pooled_features(model, dataset) -> np.ndarray:
    import keras

    encoder = keras.Model(model.inputs, model.get_layer("risk_concat").output)
    return np.concatenate([np.asarray(encoder.predict_on_batch(dataset[i][0]))
                           for i in range(len(dataset))])


def centre_balanced_accuracy(features: np.ndarray, centres: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    predicted = cross_val_predict(classifier, features, centres, cv=folds)
    return float(balanced_accuracy_score(centres, predicted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=48)
    parser.add_argument("--centres", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--weight", type=float, default=0.3, help="adversarial weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench-centre")
    args = parser.parse_args()

    import keras

    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.metrics import concordance_index
    from hnprog.presets import from_preset
    from hnprog.splits import make_splits
    from hnprog.training import TrainingConfig, cross_validate
    from hnprog.training.runs import cohort_datasets, patient_centres
    from hnprog.transforms import PreprocessConfig

    out = Path(args.out)
    data = generate_cohort(out / "data", n_patients=args.patients, seed=args.seed,
                           image_scale=0.5, censoring=0.5, n_centres=args.centres,
                           centre_effect=1.0)
    cohort = read_cohort(data)
    centres = patient_centres(cohort)
    ids = np.asarray(cohort.ids)
    y = cohort.survival_y()
    base = TrainingConfig(epochs=args.epochs, batch_size=4, filters=(4, 8, 16, 32),
                          learning_rate=3e-3, val_fraction=0.25, seed=args.seed,
                          preprocessing=PreprocessConfig(spacing=4.5, crop_size=32),
                          run_eagerly=keras.backend.backend() == "tensorflow")
    settings = {"fixed": base, "uncertainty": base.replace(loss_weighting="uncertainty"),
                "adversarial": base.replace(adversarial_centres=args.weight)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        splits = make_splits(y["event"], split="centre", val_fraction=base.val_fraction,
                             seed=base.seed, groups=[centres[i] for i in cohort.ids])
    rows = []
    for name, config in settings.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = cross_validate(data, out / name, config=config, tasks=["multitask"],
                                    split="centre", cache_dir=out / "cache", overwrite=True,
                                    verbose=0)
        accuracies = []
        for fold in splits:
            model = from_preset(out / name / "multitask" / f"fold-{fold.fold + 1}" /
                                "preset").model
            train_ids = ids[np.concatenate([fold.train, fold.val])]
            _, dataset = cohort_datasets(cohort, train_ids, train_ids, config,
                                         cache_dir=out / "cache", train=False)
            labels = np.asarray([centres[i] for i in train_ids])
            accuracies.append(centre_balanced_accuracy(pooled_features(model, dataset),
                                                       labels, args.seed))
        predictions = result.predictions
        pooled = concordance_index(event=predictions["event"].to_numpy(),
                                   time=predictions["time"].to_numpy(),
                                   risk=predictions["risk"].to_numpy())
        per_centre = dict(zip(result.per_fold["test_centre"], result.per_fold["c_index"]))
        rows.append((name, float(np.nanmean(result.per_fold["c_index"])), pooled,
                     float(np.mean(accuracies)), per_centre, float(np.nanmean(
                         result.per_fold["dice"]))))
    chance = 1.0 / (args.centres - 1)
    print(f"{args.patients} patients, {args.centres} centres (centre_effect=1), "
          f"{args.epochs} epochs, 32^3 at 4.5 mm; centre chance level {chance:.2f}")
    print("| setting | test C-index (mean over held-out centres) | pooled test C-index | "
          "test Dice | centre balanced accuracy from pooled features | per centre |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, mean, pooled, accuracy, per_centre, dice in rows:
        detail = ", ".join(f"{k} {v:.2f}" for k, v in per_centre.items())
        print(f"| {name} | {mean:.3f} | {pooled:.3f} | {dice:.3f} | {accuracy:.2f} | {detail} |")


if __name__ == "__main__":
    main()
