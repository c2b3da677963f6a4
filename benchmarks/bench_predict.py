"""Benchmark: one patient end to end against the bare forward pass it contains.

End to end = read the CT and PET NIfTI files, (find the box,) crop and resample onto the
network grid, one forward pass of the model, put the probability map back on the CT grid and
write risk.csv, the probability map, the mask and report.json (and optionally the overlay).
The peer is the forward pass alone on the already preprocessed array (``predictor.predict``,
the same call the pipeline makes), measured in the same run. Goal: end to end <= 1.3 x the
forward pass at 144^3 with the paper's model on the CPU. The forward pass and the end-to-end
settings are timed in turn within each repeat; each call's own forward pass is read from its
report.json (``stage_seconds``), giving a second ratio that the machine's slow spells between
calls cannot bias.

The patient is a full-size synthetic case (CT 256x256x~90 at ~0.98x0.98x3 mm, int16; PET
128x128x~95 at ~4x4x3 mm). Best times are the minimum over ``--repeats`` after a warm-up.
Then a cohort of ``--cohort`` such patients, with overlays and reference masks: the pipeline of
``predict_cohort`` against ``predict_patient`` called for one patient after another.

Usage:
    python benchmarks/bench_predict.py [--repeats 3] [--crop-size 144] [--spacing 1.0] [--cohort 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crop-size", type=int, default=144)
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--cohort", type=int, default=6,
                        help="patients of the cohort comparison (0 skips it)")
    args = parser.parse_args()

    import hnprog  # noqa: F401  (first: turns TensorFlow's oneDNN kernels on)
    import keras

    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.models import build_multitask_unet
    from hnprog.predict import (
        load_predictor,
        predict_cohort,
        predict_patient,
        preprocess_config_from_spec,
    )
    from hnprog.presets import save_to_preset
    from hnprog.transforms import Case, PreprocessConfig, preprocess_case
    from hnprog.io import read_image

    work = Path(tempfile.mkdtemp(prefix="hnprog-bench-predict-"))
    cohort = read_cohort(generate_cohort(work / "data", n_patients=max(1, args.cohort), seed=7))
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
    out = work / "out"
    settings = {
        "end to end, given box, no overlay": dict(box=box, overlay=False),
        "end to end, automatic box, no overlay": dict(overlay=False),
        "end to end, automatic box, with overlay": dict(overlay=True),
    }
    for kwargs in settings.values():  # warm-up (matplotlib, thread pools)
        predict_patient(patient.ct, patient.pet, predictor, out, patient_id="warm-up", **kwargs)

    # Interleaved: each repeat times the bare forward pass, then each end-to-end setting, so
    # a slow spell of the shared machine hits all of them alike.
    forward_times: list[float] = []
    calls: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in settings}
    for _ in range(args.repeats):
        start = time.perf_counter()
        predictor.predict(x)
        forward_times.append(time.perf_counter() - start)
        for name, kwargs in settings.items():
            start = time.perf_counter()
            predict_patient(patient.ct, patient.pet, predictor, out,
                            patient_id=patient.patient_id, **kwargs)
            seconds = time.perf_counter() - start
            stages = json.loads((out / "report.json").read_text())["stage_seconds"]
            calls[name].append((seconds, stages))
    forward = min(forward_times)

    print(f"\nOne patient at {size}^3, {args.spacing} mm, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPUs, {args.repeats} interleaved repeats")
    print(f"CT {read_image(patient.ct).GetSize()}, PET {read_image(patient.pet).GetSize()}\n")
    print("x forward: best end-to-end time over the best bare forward pass. x own forward: median")
    print("over calls of the call's time over the forward pass inside that same call.\n")
    print(f"| {'measurement':<42} | {'best s':>7} | {'median s':>8} | {'x forward':>9} "
          f"| {'x own forward':>13} |")
    print(f"| {'-' * 42} | {'-' * 6}: | {'-' * 7}: | {'-' * 8}: | {'-' * 12}: |")
    print(f"| {'forward pass only (peer)':<42} | {forward:7.3f} | "
          f"{statistics.median(forward_times):8.3f} | {1.0:9.2f} | {1.0:13.2f} |")
    for name, results in calls.items():
        best = min(seconds for seconds, _ in results)
        median = statistics.median(seconds for seconds, _ in results)
        own = statistics.median(seconds / stages["forward"] for seconds, stages in results)
        print(f"| {name:<42} | {best:7.3f} | {median:8.3f} | {best / forward:9.2f} "
              f"| {own:13.2f} |")

    print("\nStages of the calls (median seconds; report.json's stage_seconds):\n")
    stage_names = list(next(iter(calls.values()))[0][1])
    print("| setting | " + " | ".join(stage_names) + " |")
    print("| --- | " + " | ".join("---:" for _ in stage_names) + " |")
    for name, results in calls.items():
        medians = [statistics.median(stages[stage] for _, stages in results)
                   for stage in stage_names]
        print(f"| {name.removeprefix('end to end, ')} | "
              + " | ".join(f"{m:.3f}" for m in medians) + " |")

    if args.cohort:
        bench_cohort(cohort, predictor, work, predict_patient, predict_cohort)


def bench_cohort(cohort, predictor, work: Path, predict_patient, predict_cohort) -> None:
    """A cohort with overlays: predict_cohort's pipeline against predict_patient in a loop."""

    def one_by_one() -> None:
        for patient in cohort.patients:
            pid = patient.patient_id
            predict_patient(patient.ct, patient.pet, predictor, work / "loop" / pid,
                            patient_id=pid, box=cohort.bboxes.get(pid),
                            reference_mask=patient.mask, reference_labels=patient.mask_labels)

    def pipelined() -> None:
        predict_cohort(cohort, predictor, work / "pipeline", resume=False, progress=False)

    times = {"predict_patient, one after another (peer)": [], "predict_cohort, pipelined": []}
    for _ in range(3):  # alternated, best of three
        for name, run in zip(times, (one_by_one, pipelined)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    n = len(cohort.patients)
    peer = min(times["predict_patient, one after another (peer)"])
    print(f"\nA cohort of {n} patients with overlays and reference masks, best of 3:\n")
    print(f"| {'measurement':<42} | {'s / patient':>11} | {'speed-up':>8} |")
    print(f"| {'-' * 42} | {'-' * 10}: | {'-' * 7}: |")
    for name, values in times.items():
        best = min(values)
        print(f"| {name:<42} | {best / n:11.3f} | {peer / best:8.2f} |")


if __name__ == "__main__":
    main()
