"""The paper's handcrafted radiomics baseline on a cohort: 274 PyRadiomics features inside the
GTVt, then cross-validated selection + Cox model (C-index per fold, mean +- standard error).

    python examples/radiomics_baseline.py DATA --out radiomics --jobs 2
    python examples/radiomics_baseline.py --tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hnprog import extract_cohort_features, read_cohort, run_radiomics_cv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="cohort folder with masks and endpoints")
    parser.add_argument("--out", type=Path, default=Path("example-radiomics"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="small synthetic cohort")
    args = parser.parse_args()

    data, folds = args.data, args.folds
    if args.tiny:
        from _tiny import tiny_cohort

        data, folds = tiny_cohort(args.out / "data", n_patients=20), 2
    if data is None:
        parser.error("give DATA (or --tiny)")

    cohort = read_cohort(data)
    features = extract_cohort_features(
        cohort.patients, args.out / "features.csv", n_jobs=args.jobs
    )
    print(f"{features.shape[1]} features for {features.shape[0]} patients")
    result = run_radiomics_cv(features, cohort.endpoints, args.out / "cv", n_folds=folds,
                              drop_constant=True)
    print((args.out / "cv" / "results.md").read_text())


if __name__ == "__main__":
    main()
