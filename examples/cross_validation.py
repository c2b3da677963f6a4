"""Cross-validate the paper's three deep settings on a cohort: multi-task (1,1), deep
radiomics (1,0) and segmentation only (0,1), with a table in the format of the paper's
Tables 1-2, Kaplan-Meier plots and one preset per fold.

    python examples/cross_validation.py DATA --out cv --epochs 60          # the paper, on a GPU
    python examples/cross_validation.py DATA --out cv --cpu --epochs 10    # 2 mm, 64^3 on a CPU
    python examples/cross_validation.py --tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hnprog import PreprocessConfig, TrainingConfig, cross_validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="cohort folder with masks and endpoints")
    parser.add_argument("--out", type=Path, default=Path("example-cv"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--cpu", action="store_true", help="2 mm voxels, 64^3 input")
    parser.add_argument("--tiny", action="store_true", help="small synthetic cohort, tiny model")
    args = parser.parse_args()

    if args.tiny:
        from _tiny import tiny_cohort

        data = tiny_cohort(args.out / "data", n_patients=12)
        config = TrainingConfig(epochs=1, batch_size=2, filters=(2, 2, 4, 4, 8), n_folds=2,
                                preprocessing=PreprocessConfig(spacing=9.0, crop_size=16))
        tasks = ("multitask",)
    else:
        if args.data is None:
            parser.error("give DATA (or --tiny)")
        data = args.data
        config = (TrainingConfig.cpu(epochs=args.epochs) if args.cpu
                  else TrainingConfig(epochs=args.epochs))
        tasks = ("multitask", "radiomics", "segmentation")
    result = cross_validate(data, args.out / "run", config=config, tasks=tasks,
                            overwrite=True, verbose=0)
    print(Path(result.files["markdown"]).read_text())
    print("presets:", *sorted((args.out / "run").glob("*/fold-*/preset")), sep="\n  ")


if __name__ == "__main__":
    main()
