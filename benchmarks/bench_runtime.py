"""Inference runtimes on this CPU, in one run: TensorFlow with oneDNN off and on, OpenVINO
(fp32 and bf16) and ONNX Runtime, for the paper's UNet at 144^3; and bf16 against fp32 on
synthetic patients.

1. Forward pass of one 144^3 patient through the paper's UNet (1.55 M parameters, random
   weights): TensorFlow with ``TF_ENABLE_ONEDNN_OPTS=0`` and ``=1`` (each in its own
   subprocess, as the variable is read when TensorFlow starts), then the same weights
   exported with ``hnprog.export_runtime`` and run by OpenVINO (fp32; bf16 where the CPU has
   it) and ONNX Runtime, with GFLOP/s and the fraction of the machine's fp32 peak (see
   ``bench_onednn.cpu_peak_gflops``), and the largest output difference to Keras.
2. bf16 quality: the shipped synthetic fold presets (32^3), exported to OpenVINO, predict
   ``--patients`` synthetic patients in fp32 and in bf16; the Pearson correlation of the
   risks and the Dice of the bf16 masks against the fp32 masks (probability >= 0.5).

Usage (from the repository root)::

    python benchmarks/bench_runtime.py [--repeats 3] [--patients 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))

CHILD = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, "benchmarks")
import numpy as np
from _timing import best_of
from bench_core import count_flops
import hnprog

repeats, exported = int(sys.argv[1]), sys.argv[2] == "1"
model = hnprog.build_multitask_unet(input_shape=(144, 144, 144, 2))
x = np.random.default_rng(0).normal(size=(1, 144, 144, 144, 2)).astype("float32")
result = {"gflop": count_flops(model) / 1e9}
start = time.perf_counter()
reference = model.predict_on_batch({"image": x})
result["first_call_s"] = time.perf_counter() - start
result["keras_s"] = best_of(repeats, lambda: model.predict_on_batch({"image": x}))
if exported:
    from hnprog.presets import export_runtime, from_preset, save_to_preset
    from hnprog.presets.exported import bf16_supported
    from hnprog.transforms import PreprocessConfig
    folder = tempfile.mkdtemp(prefix="bench-runtime-")
    save_to_preset(model, folder + "/src", preprocessing=PreprocessConfig(crop_size=144))
    start = time.perf_counter()
    export_runtime(folder + "/src", folder + "/exp", formats=["openvino", "onnx"])
    result["export_s"] = time.perf_counter() - start
    settings = [("openvino", "fp32"), ("onnx", "fp32")]
    if bf16_supported():
        settings.insert(1, ("openvino", "bf16"))
    for runtime, precision in settings:
        predictor = from_preset(folder + "/exp", runtime=runtime, precision=precision)
        out = predictor.predict(x)
        key = f"{runtime}_{precision}"
        result[key + "_s"] = best_of(repeats, lambda: predictor.predict(x))
        result[key + "_diff"] = max(float(np.abs(out[k] - reference[k]).max()) for k in out)
print(json.dumps(result))
"""


def forward_table(repeats: int) -> None:
    from bench_onednn import cpu_peak_gflops

    runs = {}
    for value in ("0", "1"):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", CHILD, str(repeats), value], env=env,
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        runs[value] = json.loads(done.stdout.strip().splitlines()[-1])
    peak, how = cpu_peak_gflops(None)
    gflop = runs["1"]["gflop"]
    rows = [("TensorFlow, oneDNN off", runs["0"]["keras_s"], None),
            ("TensorFlow, oneDNN on (hnprog's default)", runs["1"]["keras_s"], None)]
    for key, label in (("openvino_fp32", "OpenVINO fp32"), ("openvino_bf16", "OpenVINO bf16"),
                       ("onnx_fp32", "ONNX Runtime fp32")):
        if key + "_s" in runs["1"]:
            rows.append((label, runs["1"][key + "_s"], runs["1"][key + "_diff"]))
    onednn = runs["1"]["keras_s"]
    print(f"fp32 peak: {peak:.0f} GFLOP/s ({how}); {gflop:.1f} GFLOP per 144^3 forward pass")
    print(f"export to OpenVINO + ONNX (with its parity check): {runs['1']['export_s']:.1f} s; "
          f"first Keras call (tracing) {runs['1']['first_call_s']:.2f} s\n")
    print("| runtime | forward 144³ s | GFLOP/s | % of fp32 peak | vs TF oneDNN on "
          "| max abs diff to Keras |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, seconds, diff in rows:
        print(f"| {label} | {seconds:.2f} | {gflop / seconds:.0f} | "
              f"{100 * gflop / seconds / peak:.0f}% | {seconds / onednn:.2f}x | "
              f"{'' if diff is None else f'{diff:.1e}'} |")


def bf16_quality(n_patients: int) -> None:
    import tempfile

    import numpy as np

    import hnprog
    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.predict.patient import PredictionJob, load_patient, preprocess_config_from_spec
    from hnprog.presets.exported import bf16_supported

    if not bf16_supported():
        print("\nbf16: this CPU has no AVX-512 BF16 / AMX-BF16; hnprog refuses --precision bf16")
        return
    scratch = tempfile.mkdtemp(prefix="bench-bf16-")
    hnprog.export_runtime("unet3d_multitask_synthetic_petct", scratch + "/exp",
                         formats=["openvino"])
    cohort = read_cohort(generate_cohort(scratch + "/data", n_patients=n_patients, seed=11,
                                         n_jobs=2))
    import SimpleITK as sitk

    from hnprog.presets.format import read_metadata
    from hnprog.transforms import invert_to_reference

    first = sorted(Path(scratch, "exp").iterdir())[0]
    config = preprocess_config_from_spec(read_metadata(first)["preprocessing"])
    loaded = [load_patient(PredictionJob(p, scratch), config) for p in cohort.patients]
    x = np.concatenate([patient.image for patient in loaded])
    fp32 = hnprog.from_preset(scratch + "/exp", runtime="openvino")
    bf16 = hnprog.from_preset(scratch + "/exp", runtime="openvino", precision="bf16")
    a, b = fp32.predict(x), bf16.predict(x)
    correlation = float(np.corrcoef(a["risk"][:, 0], b["risk"][:, 0])[0, 1])

    def dice(m32: np.ndarray, m16: np.ndarray) -> float:
        total = m32.sum() + m16.sum()
        return 1.0 if total == 0 else 2 * float((m32 & m16).sum()) / total

    # on the network grid (32^3 at 4.5 mm), and on the CT grid: the gtvt_mask.nii.gz a user
    # gets, the probability map put back on the CT and thresholded at 0.5
    network = [dice(m32, m16) for m32, m16 in zip(a["segmentation"] >= 0.5,
                                                   b["segmentation"] >= 0.5)]
    ct_grid = []
    for k, patient in enumerate(loaded):
        masks = [sitk.GetArrayFromImage(invert_to_reference(  # a copy: the image is temporary
            out["segmentation"][k, ..., 0], patient.grid, patient.ct_image)) >= 0.5
            for out in (a, b)]
        ct_grid.append(dice(*masks))
    print(f"\nbf16 against fp32 (OpenVINO, the shipped 3-fold synthetic ensemble, {n_patients} "
          f"synthetic patients at 32³): risk Pearson r = {correlation:.4f}, largest risk "
          f"difference {np.abs(a['risk'] - b['risk']).max():.3f}")
    print(f"mask Dice on the network grid: min {min(network):.4f}, mean {np.mean(network):.4f}; "
          f"on the CT grid (the written gtvt_mask.nii.gz): min {min(ct_grid):.4f}, mean "
          f"{np.mean(ct_grid):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--bf16-only", action="store_true",
                        help="Only the bf16 quality part (no forward-pass table).")
    args = parser.parse_args()
    from hnprog.cpu import cpu_name, cpu_vector_extensions

    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"vector extensions: {', '.join(cpu_vector_extensions()) or 'unknown'}")
    if not args.bf16_only:
        forward_table(args.repeats)
    bf16_quality(args.patients)


if __name__ == "__main__":
    main()
