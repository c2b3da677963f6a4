"""bf16 against fp32 for the paper's UNet at the paper's grid (144^3 at 1 mm), on synthetic
patients: does opt-in bf16 inference keep the masks and the risks?

The shipped presets segment on a 32^3 grid of 4.5 mm voxels, where a synthetic tumour is
12-284 voxels and one voxel flipped at the 0.5 threshold costs up to 0.04 of Dice
(``bench_runtime.py`` part 2). A user's model is the paper's: 144^3 at 1 mm, where the same
tumours are 1,500-45,000 voxels. No such model is shipped (training it takes a GPU), so this
script trains one briefly on the CPU:

1. ``--train`` synthetic patients (seed 21) are preprocessed at 144^3 / 1 mm (their
   ``bboxes.csv`` boxes) and the paper's multi-task UNet (default ``build_multitask_unet``,
   fully convolutional) is trained on random ``--crop``^3 crops (most with tumour), with the
   paper's loss ``CoxLoss + DiceLoss``, batch 2, Adam with a cosine decay from 1e-3,
   ``--steps`` steps.
2. The weights go into a 144^3 model, saved as a preset and exported to OpenVINO
   (``hnprog.export_runtime``).
3. ``--patients`` held-out synthetic patients (seed 11, automatic box as in ``predict``) are
   predicted in fp32 and in bf16. Printed: the Dice of each against the true GTVt (how good
   the briefly trained model is), the Dice of the bf16 masks against the fp32 masks on the
   network grid and on the CT grid (the written ``gtvt_mask.nii.gz``), the Pearson
   correlation of the risks, and the two forward times.

Usage (from the repository root; about 25 min on 2 AMX cores)::

    python benchmarks/bench_bf16_paper.py [--steps 2000] [--train 24] [--patients 20] \\
        [--keep DIR]
    python benchmarks/bench_bf16_paper.py --model DIR/exp   # compare a kept model again
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2 * float((a & b).sum()) / total


def tumour_crops(cases: list, crop: int, rng: np.random.Generator, batch: int):
    """A batch of ``crop``^3 crops: the first around a random tumour voxel, the others
    around a tumour voxel or anywhere (1/2 each), so that the model also sees tumour-free
    regions (brain, bladder-free neck, air) as it will in a whole 144^3 grid."""
    images, masks, targets = [], [], []
    for n, k in enumerate(rng.choice(len(cases), size=batch, replace=False)):
        image, mask, time_days, event = cases[k]
        if n == 0 or rng.random() < 0.5:
            inside = np.argwhere(mask > 0)
            centre = inside[rng.integers(len(inside))]
        else:
            centre = rng.integers(0, mask.shape)
        start = [int(np.clip(c - rng.integers(crop // 4, 3 * crop // 4), 0, s - crop))
                 for c, s in zip(centre, mask.shape)]
        window = tuple(slice(s, s + crop) for s in start)
        images.append(image[window])
        masks.append(mask[window][..., None].astype("float32"))
        targets.append([time_days, event])
    return ({"image": np.stack(images)},
            {"risk": np.asarray(targets, "float32"), "segmentation": np.stack(masks)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--train", type=int, default=24)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--keep", help="folder to keep the trained preset and its export in")
    parser.add_argument("--model", help="an exported preset folder this script kept (--keep): "
                                        "compare it again without training")
    args = parser.parse_args()

    from hnprog.cpu import cpu_name, cpu_vector_extensions
    from hnprog.presets.exported import bf16_supported
    from hnprog.transforms import PreprocessConfig

    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"vector extensions: {', '.join(cpu_vector_extensions()) or 'unknown'}")
    if not bf16_supported():
        sys.exit("this CPU has no AVX-512 BF16 / AMX-BF16: nothing to compare")
    scratch = tempfile.mkdtemp(prefix="bench-bf16-paper-")
    config = PreprocessConfig()  # the paper's 144^3 at 1 mm
    exported = args.model or train_and_export(args, scratch, config, args.keep or scratch)
    compare(args, scratch, config, exported)


def train_and_export(args: argparse.Namespace, scratch: str, config, keep: str) -> str:
    """Train the paper's UNet briefly on synthetic crops; its OpenVINO export's folder."""
    import keras

    import hnprog
    from hnprog.data.cohort import read_cohort
    from hnprog.data.preprocess import preprocess_patient
    from hnprog.data.synthetic import generate_cohort
    from hnprog.presets import export_runtime, save_to_preset

    started = time.perf_counter()
    training = read_cohort(generate_cohort(scratch + "/train", n_patients=args.train, seed=21,
                                           n_jobs=2))
    cases = []
    for patient in training.patients:
        case = preprocess_patient(patient, training.bboxes.get(patient.patient_id), config)
        row = training.endpoints.loc[patient.patient_id]
        cases.append((case.image, case.mask, float(row["time"]), float(row["event"])))
    print(f"{args.train} training patients generated and preprocessed: "
          f"{time.perf_counter() - started:.0f} s")

    keras.utils.set_random_seed(0)
    model = hnprog.build_multitask_unet(input_shape=(None, None, None, 2), seed=0)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=args.steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss={"risk": hnprog.CoxLoss(), "segmentation": hnprog.DiceLoss()},
                  loss_weights={"risk": 1.0, "segmentation": 1.0})
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = tumour_crops(cases, args.crop, rng, batch=2)
        losses = model.train_on_batch(x, y, return_dict=True)
        if step % 250 == 0 or step == args.steps:
            print(f"step {step}: segmentation loss {losses['segmentation_loss']:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    full = hnprog.build_multitask_unet(input_shape=(144, 144, 144, 2), seed=0)
    full.set_weights(model.get_weights())
    save_to_preset(full, keep + "/src", preprocessing=config)
    export_runtime(keep + "/src", keep + "/exp", formats=["openvino"])
    return keep + "/exp"


def compare(args: argparse.Namespace, scratch: str, config, exported: str) -> None:
    """Predict the held-out patients in fp32 and bf16 and print the table."""
    import SimpleITK as sitk

    import hnprog
    from _timing import best_of
    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.metrics import surface_distances
    from hnprog.predict.patient import PredictionJob, load_patient
    from hnprog.transforms import invert_to_reference

    held_out = read_cohort(generate_cohort(scratch + "/test", n_patients=args.patients,
                                           seed=11, n_jobs=2))
    loaded = [load_patient(PredictionJob(p, scratch), config) for p in held_out.patients]
    fp32 = hnprog.from_preset(exported, runtime="openvino")
    bf16 = hnprog.from_preset(exported, runtime="openvino", precision="bf16")
    a_risk, b_risk, network, ct_grid, truth32, truth16, sizes = [], [], [], [], [], [], []
    surfaces = []
    for source, patient in zip(held_out.patients, loaded):
        a, b = fp32.predict(patient.image), bf16.predict(patient.image)
        a_risk.append(float(a["risk"][0, 0]))
        b_risk.append(float(b["risk"][0, 0]))
        m32, m16 = a["segmentation"][0, ..., 0] >= 0.5, b["segmentation"][0, ..., 0] >= 0.5
        network.append(dice(m32, m16))
        distances = surface_distances(m32, m16)  # the network grid: 1 mm voxels
        surfaces.append((distances["hd95_mm"], distances["mean_mm"], distances["max_mm"]))
        sizes.append(int(m32.sum()))
        on_ct = [sitk.GetArrayFromImage(invert_to_reference(
            out["segmentation"][0, ..., 0], patient.grid, patient.ct_image)) >= 0.5
            for out in (a, b)]
        ct_grid.append(dice(*on_ct))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(source.mask))) > 0
        truth32.append(dice(on_ct[0], truth))
        truth16.append(dice(on_ct[1], truth))
    x = loaded[0].image
    t32 = best_of(3, lambda: fp32.predict(x), warmup=True)
    t16 = best_of(3, lambda: bf16.predict(x), warmup=True)

    trained = (f"the kept model {args.model}" if args.model else
               f"trained {args.steps} steps of {args.crop}³ crops on {args.train} synthetic "
               "patients")
    print(f"\nthe paper's UNet at 144³ / 1 mm, {trained}; {args.patients} held-out synthetic "
          "patients, OpenVINO\n")
    print("| | fp32 | bf16 |")
    print("| --- | ---: | ---: |")
    print(f"| forward 144³, s (best of 3) | {t32:.2f} | {t16:.2f} |")
    print(f"| Dice against the true GTVt, CT grid (mean) | {np.mean(truth32):.3f} | "
          f"{np.mean(truth16):.3f} |")
    print(f"\nfp32 masks: {min(sizes)}-{max(sizes)} voxels (median {int(np.median(sizes))})")
    print(f"bf16 masks against fp32 masks, network grid: min {min(network):.4f}, "
          f"mean {np.mean(network):.4f}")
    print(f"bf16 masks against fp32 masks, CT grid (gtvt_mask.nii.gz): min {min(ct_grid):.4f}, "
          f"mean {np.mean(ct_grid):.4f}")
    hd95, mean_distance, largest = np.asarray(surfaces).T
    print(f"bf16 against fp32 mask surfaces, network grid (1 mm): 95th-percentile Hausdorff "
          f"median {np.median(hd95):.2f} mm, max {hd95.max():.2f} mm; mean surface distance "
          f"max {mean_distance.max():.2f} mm; largest distance {largest.max():.1f} mm")
    print(f"risk: Pearson r = {np.corrcoef(a_risk, b_risk)[0, 1]:.5f}, largest difference "
          f"{np.abs(np.subtract(a_risk, b_risk)).max():.4f}")


if __name__ == "__main__":
    main()
