"""Benchmark: one patient end to end against the bare forward pass it contains.

End to end = read the CT and PET NIfTI files, (find the box,) crop and resample onto the
network grid, one forward pass of the model, put the probability map back on the CT grid and
write risk.csv, the probability map, the mask and report.json (and optionally the overlay).
The peer is the forward pass alone on the already preprocessed array (``predictor.predict``,
the same call the pipeline makes), measured in the same run. Goal: end to end <= 1.3 x the
forward pass at 144^3 with the paper's model on the CPU.

The patient is a full-size synthetic case (CT 256x256x~90 at ~0.98x0.98x3 mm, int16; PET
128x128x~95 at ~4x4x3 mm). Times are the minimum over ``--repeats`` runs after a warm-up.

Usage:
    python benchmarks/bench_predict.py [--repeats 3] [--crop-size 144] [--spacing 1.0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from _timing import best_of  # noqa: E402  (benchmarks/ is on sys.path when run)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crop-size", type=int, default=144)
    parser.add_argument("--spacing", type=float, default=1.0)
    args = parser.parse_args()

    import keras

    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.models import build_multitask_unet
    from hnprog.predict import load_predictor, predict_patient, preprocess_config_from_spec
    from hnprog.presets import save_to_preset
    from hnprog.transforms import Case, PreprocessConfig, preprocess_case
    from hnprog.io import read_image

    work = Path(tempfile.mkdtemp(prefix="hnprog-bench-predict-"))
    cohort = read_cohort(generate_cohort(work / "data", n_patients=1, seed=7))
    patient = cohort.patients[0]
    box = cohort.bboxes[patient.patient_id]
    size = args.crop_size
    config = PreprocessConfig(spacing=args.spacing, crop_size=size)
    model = build_multitask_unet(input_shape=(size, size, size, 2))
    save_to_preset(model, work / "preset", preprocessing=config, dataset={"name": "random init"})
    predictor = load_predictor(work / "preset")

    case = preprocess_case(Case({"ct": read_image(patient.ct), "pet": read_image(patient.pet)},
                                box=box), preprocess_config_from_spec(predictor.preprocessing))
    x = case.image[None]
    predictor.predict(x)  # warm-up: builds the predict function
    forward = best_of(args.repeats, lambda: predictor.predict(x))

    def end_to_end(**kwargs):
        out = work / "out"
        return lambda: predict_patient(patient.ct, patient.pet, predictor, out,
                                       patient_id=patient.patient_id, **kwargs)

    end_to_end(box=box, overlay=False)()  # warm-up
    rows = [
        ("forward pass only (peer)", forward),
        ("end to end, given box, no overlay", best_of(args.repeats, end_to_end(box=box, overlay=False))),
        ("end to end, automatic box, no overlay", best_of(args.repeats, end_to_end(overlay=False))),
        ("end to end, automatic box, with overlay", best_of(args.repeats, end_to_end(overlay=True))),
    ]
    print(f"\nOne patient at {size}^3, {args.spacing} mm, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}")
    print(f"CT {read_image(patient.ct).GetSize()}, PET {read_image(patient.pet).GetSize()}\n")
    print(f"| {'measurement':<42} | {'seconds':>8} | {'x forward':>9} |")
    print(f"| {'-' * 42} | {'-' * 8}: | {'-' * 9}: |")
    for name, seconds in rows:
        print(f"| {name:<42} | {seconds:8.3f} | {seconds / forward:9.2f} |")


if __name__ == "__main__":
    main()
