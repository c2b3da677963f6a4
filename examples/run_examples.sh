#!/usr/bin/env bash
# Run every example at tiny sizes (CI does, so no example rots). Outputs go to a temporary folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
export TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg
for example in predict_one_patient load_preset_from_hub radiomics_baseline cross_validation finetune_local_cohort; do
  echo "-- examples/$example.py --tiny"
  (cd "$here" && python "$example.py" --tiny --out "$work/$example")
done
rm -rf "$work"
echo "all examples ran"
