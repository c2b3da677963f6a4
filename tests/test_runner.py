"""The one cohort runner: failure rows, the failures file, resume, processes, pipelines."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from dataclasses import dataclass

import pandas as pd
import pytest

from hnprog.data.runner import WORKER_DIED, run_cohort, write_failures
from hnprog.errors import InputError, PatientError


@dataclass(frozen=True)
class Job:
    patient_id: str
    value: int


JOBS = [Job(f"P{i}", i) for i in range(6)]


def square_or_fail(job: Job) -> int:
    """Module level, so that worker processes can run it."""
    if job.value == 2:
        raise PatientError(job.patient_id, "CT file x.nii.gz: file not found")
    if job.value == 4:
        raise ZeroDivisionError("division by zero")
    return job.value**2


def die_on_three(job: Job) -> int:
    if job.value == 3:
        os._exit(1)  # a worker killed mid-patient (out of memory, kill -9)
    return job.value


def test_results_and_failures_come_back_in_cohort_order(tmp_path):
    run = run_cohort(JOBS, square_or_fail, progress=False, failures_file=tmp_path / "f.csv")
    assert run.results == {"P0": 0, "P1": 1, "P3": 9, "P5": 25}
    assert run.failures == {"P2": "CT file x.nii.gz: file not found",
                            "P4": "ZeroDivisionError: division by zero"}
    table = pd.read_csv(tmp_path / "f.csv")
    assert list(table.columns) == ["patient_id", "error"]
    assert table["patient_id"].tolist() == ["P2", "P4"]


def test_the_failures_file_has_a_header_when_nothing_failed(tmp_path):
    run_cohort(JOBS[:2], square_or_fail, progress=False, failures_file=tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_text().strip() == "patient_id,error"
    write_failures({}, tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_text() == (tmp_path / "f.csv").read_text()


def test_resume_skips_patients_with_an_earlier_result():
    calls = []
    run = run_cohort(JOBS, lambda job: calls.append(job.patient_id) or job.value,
                     resume=lambda job: -1 if job.value < 3 else None, progress=False)
    assert calls == ["P3", "P4", "P5"]
    assert run.resumed == ["P0", "P1", "P2"]
    assert list(run.results.values()) == [-1, -1, -1, 3, 4, 5]


def test_worker_processes_give_the_serial_answer():
    serial = run_cohort(JOBS, square_or_fail, progress=False)
    parallel = run_cohort(JOBS, square_or_fail, n_jobs=2, progress=False)
    assert parallel.results == serial.results and parallel.failures == serial.failures


def test_a_killed_worker_fails_only_its_patient():
    run = run_cohort(JOBS, die_on_three, n_jobs=2, progress=False)
    assert run.failures == {"P3": WORKER_DIED}
    assert list(run.results) == ["P0", "P1", "P2", "P4", "P5"]


def test_a_given_executor_is_used_and_left_open():
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        run = run_cohort(JOBS, square_or_fail, executor=executor, progress=False)
        assert executor.submit(lambda: 1).result() == 1  # still usable
    assert run.results == {"P0": 0, "P1": 1, "P3": 9, "P5": 25}


def test_pipeline_steps_overlap_keep_order_and_bound_memory():
    in_flight, peak, lock = set(), [0], threading.Lock()

    def load(job):
        with lock:
            in_flight.add(job.patient_id)
            peak[0] = max(peak[0], len(in_flight))
        if job.value == 1:
            with lock:
                in_flight.discard(job.patient_id)
            raise PatientError(job.patient_id, "unreadable")
        return job

    def model(job):
        time.sleep(0.01)
        return job, job.value * 10

    def write(pair):
        job, value = pair
        with lock:
            in_flight.discard(job.patient_id)
        if job.value == 5:
            raise OSError("disk full")
        return value

    run = run_cohort(JOBS, [load, model, write], progress=False)
    assert run.results == {"P0": 0, "P2": 20, "P3": 30, "P4": 40}
    assert run.failures == {"P1": "unreadable", "P5": "OSError: disk full"}
    assert peak[0] <= 3  # one patient per step at most


def test_patient_errors_cross_process_boundaries():
    import pickle

    error = pickle.loads(pickle.dumps(PatientError("P7", "mask file m.nii.gz: empty")))
    assert (error.patient_id, error.reason) == ("P7", "mask file m.nii.gz: empty")
    assert str(error) == "patient P7: mask file m.nii.gz: empty"


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_jobs=0), "n_jobs must be a positive integer"),
    (dict(n_jobs=2, work=[square_or_fail, square_or_fail]), "pipeline of several steps"),
])
def test_bad_arguments(kwargs, words):
    work = kwargs.pop("work", square_or_fail)
    with pytest.raises(InputError, match=words):
        run_cohort(JOBS, work, progress=False, **kwargs)


def test_repeated_ids_are_refused():
    with pytest.raises(InputError, match="repeated ids: \\['P0'\\]"):
        run_cohort([JOBS[0], JOBS[0]], square_or_fail, progress=False)


def fill_disk_on_two(job: Job, folder: str) -> int:
    """Writes the patient's file; the third patient's write meets a full disk."""
    import errno

    from hnprog.io import atomic_write

    with atomic_write(os.path.join(folder, f"{job.patient_id}.txt")) as f:
        f.write("x" * 3000)
        if job.value == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
    return job.value


@pytest.mark.parametrize("mode", ["serial", "processes", "pipeline"])
def test_a_full_disk_stops_the_run_naming_the_file_and_the_space(tmp_path, mode):
    import functools

    from hnprog.errors import DiskFullError

    work = functools.partial(fill_disk_on_two, folder=str(tmp_path))
    kwargs = {"serial": {}, "processes": {"n_jobs": 2},
              "pipeline": {}}[mode]
    if mode == "pipeline":
        work = [lambda job: job, work]
    with pytest.raises(DiskFullError) as error:
        run_cohort(JOBS, work, progress=False, failures_file=tmp_path / "failures.csv",
                   **kwargs)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'P2.txt'}: no space left on the device: the file "
                              "needs more than 3.0 kB (what was written when the disk filled)")
    assert f"are free in {tmp_path}" in message and "\n" not in message
    assert "of 6 patients are done" in message
    assert error.value.needed_bytes == 3000
    assert not (tmp_path / "P2.txt").exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files
    if mode != "processes":  # patients queued after the full disk were never started
        assert not (tmp_path / "P5.txt").exists()
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures["patient_id"].tolist() == ["P2"]


def test_a_pool_that_breaks_while_patients_are_queued_fails_only_the_unqueued():
    from concurrent.futures.process import BrokenProcessPool

    class BreaksOnP3(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn, job, *args, **kwargs):
            if job.patient_id == "P3":
                raise BrokenProcessPool("A child process terminated abruptly")
            return super().submit(fn, job, *args, **kwargs)

    with BreaksOnP3(2) as executor:
        run = run_cohort(JOBS, lambda job: job.value, executor=executor, progress=False)
    assert run.failures == {"P3": WORKER_DIED}
    assert list(run.results) == ["P0", "P1", "P2", "P4", "P5"]


def test_progress_in_a_log_file_is_plain_lines(monkeypatch):
    """A batch job's log (stderr not a terminal) gets whole ASCII lines, no carriage-return
    redraws; the first and the last state are always there."""
    import io
    import sys

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    run_cohort(JOBS, square_or_fail, desc="predict")
    text = log.getvalue()
    assert "\r" not in text and text.isascii()
    lines = text.splitlines()
    assert lines[0].startswith("predict:   0%") and "0/6" in lines[0]
    assert lines[-1].startswith("predict: 100%") and "6/6" in lines[-1] and "P5" in lines[-1]
