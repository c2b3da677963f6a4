"""The cohort runner locally and on Dask distributed, in one run: ``radiomics extract`` of a
synthetic cohort with 1 and 2 local worker processes and on a 2-worker
``dask.distributed.LocalCluster`` (worker processes, one thread each).

Each setting starts from an empty feature cache, so every patient is extracted; the feature
tables must be equal. The ratios to the 1-process run are what to read: on a real cluster the
workers are other machines and the speed-up grows with them, while here the two workers share
this machine's cores.

Usage (from the repository root)::

    python benchmarks/bench_distributed.py [--patients 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()

    import pandas as pd
    from distributed import LocalCluster

    from hnprog.cpu import cpu_name
    from hnprog.data.cohort import read_cohort
    from hnprog.data.distributed import cohort_executor
    from hnprog.data.synthetic import generate_cohort
    from hnprog.radiomics.cohort import extract_cohort_features

    scratch = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    cohort = read_cohort(generate_cohort(scratch / "data", n_patients=args.patients, seed=5,
                                         n_jobs=2))
    print(f"CPU: {cpu_name()}; {os.cpu_count()} logical CPUs; load average before "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}; {len(cohort)} synthetic patients "
          "(full-size scans)\n")

    def extract(name: str, **options) -> tuple[float, pd.DataFrame]:
        start = time.perf_counter()
        table = extract_cohort_features(cohort, scratch / name / "features.csv",
                                        progress=False, **options)
        return time.perf_counter() - start, table

    results = {"1 local process": extract("one", n_jobs=1),
               "2 local processes": extract("two", n_jobs=2)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        start = time.perf_counter()
        with cohort_executor(cluster.scheduler_address) as executor:
            seconds, table = extract("dask", executor=executor)
        results["Dask LocalCluster, 2 workers"] = (seconds, table)
        started = time.perf_counter() - start - seconds
    base_seconds, base_table = results["1 local process"]
    print("| radiomics extract | wall s | s per patient | speed-up vs 1 process "
          "| same features |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, (seconds, table) in results.items():
        same = table.equals(base_table)
        print(f"| {name} | {seconds:.1f} | {seconds / len(cohort):.2f} | "
              f"{base_seconds / seconds:.2f}x | {'yes' if same else 'NO'} |")
    print(f"\n(connecting the client to the cluster took {started:.1f} s more; the cluster "
          "itself starts before the clock)")


if __name__ == "__main__":
    main()
