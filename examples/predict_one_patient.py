"""Predict the risk and the tumour (GTVt) contour of one patient from a CT and a PET file.

    python examples/predict_one_patient.py --ct P1_ct.nii.gz --pet P1_pt.nii.gz --out out/P1
    python examples/predict_one_patient.py --tiny      # a synthetic patient, a tiny model

The outputs (risk.csv, gtvt_probability.nii.gz and gtvt_mask.nii.gz on the CT's own grid,
overlay.png, report.json) are what ``hnprog predict`` writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hnprog.demo import DEFAULT_DEMO_MODEL
from hnprog.predict import load_predictor, predict_patient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, help="CT in HU (NIfTI)")
    parser.add_argument("--pet", type=Path, help="PET in SUV (NIfTI)")
    parser.add_argument("--model", default=DEFAULT_DEMO_MODEL,
                        help="preset name, folder or hf:// URI (default: shipped synthetic presets)")
    parser.add_argument("--out", type=Path, default=Path("example-predict"))
    parser.add_argument("--tiny", action="store_true", help="synthetic patient, tiny model")
    args = parser.parse_args()

    model = args.model
    if args.tiny:
        from _tiny import tiny_cohort, tiny_preset

        data = tiny_cohort(args.out / "data", n_patients=1)
        patient_id = next(data.glob("*_ct.nii.gz")).name.removesuffix("_ct.nii.gz")
        args.ct, args.pet = data / f"{patient_id}_ct.nii.gz", data / f"{patient_id}_pt.nii.gz"
        model = tiny_preset(args.out / "tiny-preset")
    if args.ct is None or args.pet is None:
        parser.error("give --ct and --pet (or --tiny)")

    predictor = load_predictor(model)            # checks every file's sha256 first
    result = predict_patient(args.ct, args.pet, predictor, args.out / "prediction",
                             patient_id=args.ct.name.split("_")[0])
    print(f"risk (Cox log-hazard, higher is worse): {result.risk:+.3f}")
    print(f"predicted GTVt volume: {result.tumour_volume_ml:.1f} mL; box: {result.box_source}")
    report = json.loads((result.out_dir / "report.json").read_text())
    print("files:", ", ".join(report["files"].values()), "in", result.out_dir)


if __name__ == "__main__":
    main()
