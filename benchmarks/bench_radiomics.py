"""Benchmark of the radiomics baseline: feature extraction per patient and model fitting.

Measures, on realistic synthetic patients (full-size CT 1 x 1 x 3 mm and PET 4 x 4 x 3 mm
scans, tumours of 5-60 ml, from ``hnprog.data.synthetic.generate_cohort``):

- extraction wall time with 1 and with 2 worker processes, as seconds and core-seconds per
  patient, and the speed-up (2 jobs vs 1 job, in the same run);
- a resumed run (everything cached) against the fresh run;
- a naive peer that resamples the whole CT and PET to 2 mm before extracting (what hnprog
  avoids by cropping first), as a ratio to hnprog's per-patient time;
- fitting the survival model (:class:`RadiomicsCoxPipeline`) on a paper-sized table
  (153 training / 38 validation patients x 274 features), against one plain Cox fit.

The paper took 13 min for 239 patients on 8 cores (about 26 core-seconds per patient) and 3 s
to train one fold. Usage::

    python benchmarks/bench_radiomics.py --patients 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk


def timed(function, *args, **kwargs) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process, and the result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def naive_whole_scan(patient, spacing=(2.0, 2.0, 2.0)) -> dict[str, float]:
    """Peer: resample the whole CT, PET and mask to 2 mm, then extract the same features."""
    from hnprog.io import read_image
    from hnprog.radiomics.features import pyradiomics_extractors
    from hnprog.radiomics.params import load_params

    ct = read_image(patient.ct)
    pet = read_image(patient.pet)
    mask = read_image(patient.mask, pixel_type=sitk.sitkUInt8)
    size = [int(round(n * s / t)) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing)
    reference.SetOrigin(ct.GetOrigin())
    reference.SetDirection(ct.GetDirection())
    images = {
        "CT": sitk.Resample(ct, reference, sitk.Transform(), sitk.sitkLinear, -1024.0),
        "PET": sitk.Resample(pet, reference, sitk.Transform(), sitk.sitkLinear, 0.0),
    }
    roi = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    features = {}
    for run, extractor in pyradiomics_extractors(load_params()):
        features.update(extractor.execute(images[run["image"]], roi, label=1))
    return features


def paper_sized_table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """239 patients x 274 correlated features, 18% events, two informative directions."""
    from hnprog.radiomics.params import feature_names
    from hnprog.survival import make_survival_y

    rng = np.random.default_rng(seed)
    names = feature_names()
    latent = rng.normal(size=(239, 12))
    X = latent @ rng.normal(size=(12, len(names))) + 0.5 * rng.normal(size=(239, len(names)))
    risk = latent[:, 0] - 0.5 * latent[:, 1]
    event_time = rng.exponential(np.exp(-risk)) * 2000
    censor = rng.uniform(300, 2500, size=239)
    event = event_time < censor
    keep = rng.random(239) < 0.18 / max(event.mean(), 1e-9)  # thin events to about 18%
    event &= keep
    time = np.where(event, event_time, np.minimum(censor, event_time + censor))
    y = make_survival_y(event=event, time=time)
    return pd.DataFrame(X, columns=names), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16, help="synthetic patients")
    parser.add_argument("--data", type=Path, default=None, help="existing cohort folder")
    parser.add_argument("--naive", type=int, default=2, help="patients for the naive peer")
    args = parser.parse_args()

    from hnprog.data.cohort import read_cohort
    from hnprog.data.synthetic import generate_cohort
    from hnprog.radiomics.baseline import RadiomicsCoxPipeline
    from hnprog.radiomics.cohort import extract_cohort_features
    from hnprog.splits import holdout_split

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data or generate_cohort(tmp / "data", n_patients=args.patients, seed=0)
        patients = [p for p in read_cohort(data) if p.mask is not None]
        n = len(patients)
        runs = {}
        for jobs in (1, 2):
            wall, cpu, table = timed(
                extract_cohort_features, patients, tmp / f"f{jobs}.csv", n_jobs=jobs,
                cache_dir=tmp / f"cache{jobs}", progress=False,
            )
            runs[jobs] = wall
            if jobs == 1:
                cpu_per_patient = cpu / n  # in-process: the true core-seconds, robust to load
            rows.append((f"extract, {jobs} job(s), {n} patients", wall, wall / n, jobs * wall / n))
        wall, _, _ = timed(
            extract_cohort_features, patients, tmp / "f1b.csv", n_jobs=1, cache_dir=tmp / "cache1",
            progress=False,
        )
        rows.append((f"extract, resumed from cache, {n} patients", wall, wall / n, wall / n))
        naive = patients[: args.naive]
        wall, _, _ = timed(lambda: [naive_whole_scan(p) for p in naive])
        rows.append((f"naive peer: whole-scan resampling, {len(naive)} patients", wall,
                     wall / len(naive), wall / len(naive)))

        X, y = paper_sized_table()
        train, val = holdout_split(y["event"], val_fraction=0.2, seed=0)
        train, val = train[: int(0.8 * len(train))], val  # about 153 / 38 as in one paper fold
        fit_wall, _, model = timed(
            RadiomicsCoxPipeline().fit, X.iloc[train], y[train], X_val=X.iloc[val], y_val=y[val]
        )
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        selected = X.iloc[train][model.selected_features_]
        z = (selected - selected.mean()) / selected.std(ddof=0)
        cox_wall, _, _ = timed(CoxPHSurvivalAnalysis(ties="efron").fit, z.to_numpy(), y[train])

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cores: {os.cpu_count()}, load average before the report: {load}, patients: {n}\n")
    print("| measurement | wall s | s per patient | core-s per patient |")
    print("| --- | --- | --- | --- |")
    for name, wall, per_patient, core in rows:
        print(f"| {name} | {wall:.2f} | {per_patient:.3f} | {core:.3f} |")
    per_patient_1 = runs[1] / n
    print()
    print("| ratio | value |")
    print("| --- | --- |")
    print(f"| speed-up 2 jobs vs 1 job | {runs[1] / runs[2]:.2f}x |")
    print(f"| parallel efficiency (speed-up / 2) | {runs[1] / runs[2] / 2:.2f} |")
    print(f"| naive whole-scan peer / hnprog, per patient | {rows[3][2] / per_patient_1:.1f}x |")
    print(f"| resumed / fresh (1 job) | {rows[2][1] / runs[1]:.3f} |")
    print(f"| CPU s per patient, 1 job (process time) | {cpu_per_patient:.3f} |")
    print(f"| paper 26 core-s per patient / hnprog (1 job, wall) | {26.0 / per_patient_1:.0f}x |")
    print(f"| fit RadiomicsCoxPipeline (s), 153 train / 38 val x 274 | {fit_wall:.2f} |")
    print(f"| fit pipeline / one plain Cox fit on the selected features | "
          f"{fit_wall / cox_wall:.0f}x |")


if __name__ == "__main__":
    main()
