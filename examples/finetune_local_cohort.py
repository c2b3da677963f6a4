"""Fine-tune a pretrained multi-task preset on your own cohort, keeping its preprocessing.

    python examples/finetune_local_cohort.py DATA --out runs/finetuned --epochs 20
    python examples/finetune_local_cohort.py --tiny

DATA is a HECKTOR-layout folder or a CSV manifest with CT, PET, GTVt masks and endpoints.
The encoder is frozen and the learning rate lowered, as is usual with few patients; the
result is a preset folder (``OUT/preset``) that ``hnprog predict`` loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hnprog import TrainingConfig, finetune
from hnprog.demo import DEFAULT_DEMO_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="cohort folder or manifest")
    parser.add_argument("--model", default=DEFAULT_DEMO_MODEL, help="preset to start from")
    parser.add_argument("--out", type=Path, default=Path("example-finetune"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="synthetic cohort, tiny model")
    args = parser.parse_args()

    model, data, epochs, batch = args.model, args.data, args.epochs, 10
    if args.tiny:
        from _tiny import tiny_cohort, tiny_preset

        data = tiny_cohort(args.out / "data")
        model = str(tiny_preset(args.out / "tiny-preset"))
        epochs, batch = 1, 2
    if data is None:
        parser.error("give DATA (or --tiny)")

    config = TrainingConfig(epochs=epochs, batch_size=batch, learning_rate=1e-4)
    result = finetune(data, args.out / "run", source=model, config=config, freeze=True,
                      overwrite=True, verbose=0)
    print(f"kept epoch {result.best_epoch}; validation history: {result.history[-1]}")
    print(f"fine-tuned preset: {Path(result.out_dir) / 'preset'}")


if __name__ == "__main__":
    main()
