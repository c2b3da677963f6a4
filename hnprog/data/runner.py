"""THE cohort runner: one loop over patients for every cohort command.

:func:`run_cohort` owns what every cohort run needs, so that ``preprocess``, ``predict``,
``radiomics extract`` and the training cache are thin callers of it:

- a progress bar (tqdm, on stderr; :func:`progress_bar`, plain lines when stderr is a log
  file, not a terminal);
- one failure row per patient whose work raised, with the reason, instead of a stopped run;
  only a full disk stops the run (every later patient would fail the same way);
- the single writer of ``failures.csv`` (columns ``patient_id,error``; header only when all
  succeeded), :func:`write_failures`;
- resume: a caller's ``resume`` function returns a patient's earlier result, and that patient
  is not run again;
- parallelism, spelled ``n_jobs`` everywhere: worker processes for one-step work, or a
  pipeline of steps that overlap across patients (read the next patient while the model runs
  on this one and the previous one's outputs are written);
- a pluggable executor: anything with the :class:`concurrent.futures.Executor` interface, such
  as a process pool or a Dask ``Client.get_executor()``.

Results and failures always come back in cohort order, whatever order the work finished in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from hnprog.errors import DiskFullError, HnprogError, InputError, PatientError
from hnprog.io import atomic_write

__all__ = [
    "FAILURES_FILE",
    "FAILURE_COLUMNS",
    "CohortRun",
    "failure_reason",
    "progress_bar",
    "run_cohort",
    "write_failures",
]

FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ("patient_id", "error")
WORKER_DIED = ("the worker process died while working on this patient (killed, or out of "
               "memory?)")

logger = logging.getLogger(__name__)


class HasPatientId(Protocol):
    """Anything the runner can loop over: a :class:`~hnprog.data.cohort.Patient` or a job."""

    patient_id: str


@dataclass
class CohortRun:
    """What :func:`run_cohort` did.

    Args:
        results: dict of patient id to the work's result, in cohort order; the patients that
            succeeded now or in an earlier run.
        failures: dict of patient id to the reason it failed, in cohort order.
        resumed: list of str. The ids whose result came from an earlier run.
        seconds: float. Wall time of the run.
    """

    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failure_table(self) -> pd.DataFrame:
        """The failures as a table with columns ``patient_id, error``."""
        return pd.DataFrame(list(self.failures.items()), columns=list(FAILURE_COLUMNS))


def failure_reason(exc: BaseException) -> str:
    """The text of a failure row: the reason of a PatientError (without the patient's name,
    which has its own column), the message of any other hnprog error, else the exception's
    type and message."""
    if isinstance(exc, PatientError):
        return exc.reason
    if isinstance(exc, HnprogError):
        return str(exc)
    if isinstance(exc, BrokenProcessPool):
        return WORKER_DIED
    return f"{type(exc).__name__}: {exc}"


def write_failures(failures: Mapping[str, str] | pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``failures.csv`` (columns ``patient_id,error``) atomically; header only if empty.

    Args:
        failures: dict of patient id to reason, or a table with those two columns.
        path: str or PathLike. The file.
    """
    table = failures if isinstance(failures, pd.DataFrame) else pd.DataFrame(
        list(failures.items()), columns=list(FAILURE_COLUMNS))
    with atomic_write(path, newline="") as f:
        table.loc[:, list(FAILURE_COLUMNS)].to_csv(f, index=False)


# When stderr is not a terminal (a batch job's log, nohup, a pipe) the bar is written as one
# plain line per update, at most every this many seconds, instead of "\r" redraws.
LOG_PROGRESS_SECONDS = 30.0


class _LogLines:
    """A file for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Any = None, *, total: int | None = None, desc: str = "patients",
                 unit: str = "patient", initial: int = 0, disable: bool = False) -> Any:
    """hnprog's one progress bar: tqdm on stderr, redrawn in place on a terminal, and one
    plain ASCII line at most every 30 s (and at the end) in a log file, so that a cluster
    job's log reads ``predict: 40%|####      | 8/20 [...]`` line by line.

    Args:
        iterable: optional. What to iterate over, as ``tqdm(iterable)``. Defaults to None.
        total: int, optional. The number of items. Defaults to ``len(iterable)``.
        desc: str. The label. Defaults to ``"patients"``.
        unit: str. The unit. Defaults to ``"patient"``.
        initial: int. Items already done (a resumed run). Defaults to 0.
        disable: bool. Show nothing. Defaults to False.

    Returns:
        tqdm.tqdm.
    """
    from tqdm.auto import tqdm

    stream = sys.stderr
    options: dict[str, Any] = dict(total=total, desc=desc, unit=unit, initial=initial,
                                   disable=disable)
    if not (hasattr(stream, "isatty") and stream.isatty()):
        options.update(file=_LogLines(stream), mininterval=LOG_PROGRESS_SECONDS,
                       maxinterval=LOG_PROGRESS_SECONDS, ascii=True, ncols=80)
    return tqdm(iterable, **options)


def run_cohort(
    patients: Sequence[HasPatientId],
    work: Callable[[Any], Any] | Sequence[Callable[[Any], Any]],
    *,
    n_jobs: int = 1,
    executor: concurrent.futures.Executor | None = None,
    resume: Callable[[Any], Any | None] | None = None,
    progress: bool = True,
    desc: str = "patients",
    failures_file: str | os.PathLike | None = None,
) -> CohortRun:
    """Run ``work`` on every patient; one patient's failure never stops the others.

    Args:
        patients: sequence of objects with a unique ``patient_id`` (Patient records, or the
            caller's own job records).
        work: a function ``patient -> result``, or a sequence of steps ``patient -> a``,
            ``a -> b``, ..., whose last output is the result. Steps run as a pipeline, each in
            its own thread, so patient ``i + 1``'s first step runs while patient ``i`` is in the
            second; at most ``len(steps)`` patients are in flight. A one-step ``work`` with
            ``n_jobs > 1`` (or an ``executor``) runs in worker processes instead, so it must be
            picklable (a module-level function or a ``functools.partial`` of one).
        n_jobs: int. Worker processes for one-step work. Defaults to 1 (in this process).
        executor: concurrent.futures.Executor, optional. Where one-step work runs instead of
            a local process pool (e.g. ``dask.distributed.Client(...).get_executor()``); the
            caller owns it. Defaults to None.
        resume: function ``patient -> result or None``, optional. An earlier run's result for
            the patient, or None to run it. Defaults to None (run everyone).
        progress: bool. Show a progress bar. Defaults to True.
        desc: str. The progress bar's label. Defaults to ``"patients"``.
        failures_file: str or PathLike, optional. Where to write ``failures.csv`` at the end
            (:func:`write_failures`). Defaults to None (not written).

    Returns:
        CohortRun with the results and failures in cohort order.

    Raises:
        InputError: if a patient id repeats, ``n_jobs`` is not a positive integer, or several
            steps are combined with ``n_jobs > 1`` or an executor.
        DiskFullError: when a patient's work fills the disk: the run stops there (queued
            patients are not started), writes ``failures.csv`` if it still can, and names
            the file, the space it needs and the patients done and left.

    Example:
        >>> run = run_cohort(cohort.patients, load_case, failures_file="out/failures.csv")
        ... # doctest: +SKIP
        >>> run.results["SYN000"].box, dict(run.failures)  # doctest: +SKIP
    """
    start = time.perf_counter()
    steps = list(work) if isinstance(work, Sequence) else [work]
    if not steps:
        raise InputError("run_cohort needs at least one step of work")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise InputError(f"n_jobs must be a positive integer. Received: n_jobs={n_jobs!r}")
    if len(steps) > 1 and (n_jobs > 1 or executor is not None):
        raise InputError("a pipeline of several steps runs in threads: give n_jobs=1 and no "
                         "executor, or a single step")
    order = [p.patient_id for p in patients]
    repeated = sorted({pid for pid in order if order.count(pid) > 1}) if len(
        set(order)) != len(order) else []
    if repeated:
        raise InputError(f"patient ids must be unique. Received repeated ids: {repeated}")

    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    resumed: list[str] = []
    todo = []
    for patient in patients:
        earlier = resume(patient) if resume is not None else None
        if earlier is not None:
            results[patient.patient_id] = earlier
            resumed.append(patient.patient_id)
        else:
            todo.append(patient)

    disk_full: list[DiskFullError] = []
    with progress_bar(total=len(order), initial=len(resumed), desc=desc,
                      disable=not progress) as bar:

        def finish(patient: HasPatientId, future: concurrent.futures.Future) -> None:
            try:
                results[patient.patient_id] = future.result()
            except DiskFullError as exc:
                failures[patient.patient_id] = failure_reason(exc)
                disk_full.append(exc)
                raise _RunStopped from None
            except Exception as exc:  # noqa: BLE001 - one patient's failure is a row
                failures[patient.patient_id] = failure_reason(exc)
                if not isinstance(exc, HnprogError):
                    logger.debug("patient %s failed", patient.patient_id, exc_info=exc)
            bar.set_postfix_str(patient.patient_id, refresh=False)
            bar.update()

        with contextlib.suppress(_RunStopped):
            if len(steps) > 1:
                _run_pipeline(todo, steps, finish)
            elif executor is not None:
                _run_on(executor, todo, steps[0], finish)
            elif n_jobs > 1 and len(todo) > 1:
                _run_in_processes(todo, steps[0], min(n_jobs, len(todo)), finish)
            else:
                for patient in todo:
                    finish(patient, _call(steps[0], patient))

    run = CohortRun(
        results={pid: results[pid] for pid in order if pid in results},
        failures={pid: failures[pid] for pid in order if pid in failures},
        resumed=resumed,
        seconds=time.perf_counter() - start,
    )
    if disk_full:
        _stop_on_full_disk(run, disk_full[0], len(order), failures_file)
    if failures_file is not None:
        write_failures(run.failures, failures_file)
    return run


class _RunStopped(Exception):
    """Raised by the runner's own bookkeeping to stop submitting patients (a full disk)."""


def _stop_on_full_disk(run: CohortRun, error: DiskFullError, n_patients: int,
                       failures_file: str | os.PathLike | None) -> None:
    """Write what can be written of ``failures.csv``, then stop the run with one line: the
    file, the space it needs, and how many patients are done and left."""
    if failures_file is not None:
        with contextlib.suppress(DiskFullError, OSError):
            write_failures(run.failures, failures_file)
    left = n_patients - len(run.results)
    raise DiskFullError(
        f"{error}. The run stopped: {len(run.results)} of {n_patients} patients are done, "
        f"{left} are left.", error.path, error.needed_bytes, error.free_bytes) from None


def _call(function: Callable[[Any], Any], argument: Any) -> concurrent.futures.Future:
    """Run ``function(argument)`` here and now, as a finished future."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    try:
        future.set_result(function(argument))
    except Exception as exc:  # noqa: BLE001 - reported by the caller as a failure row
        future.set_exception(exc)
    return future


def _after(step: Callable[[Any], Any], previous: concurrent.futures.Future) -> Any:
    return step(previous.result())  # a failed earlier step re-raises here


def _run_pipeline(todo: Sequence[HasPatientId], steps: Sequence[Callable[[Any], Any]],
                  finish: Callable[[Any, concurrent.futures.Future], None]) -> None:
    """Each step in its own single thread, patients in order, at most len(steps) in flight."""
    pools = [concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix=f"hnprog-step{k}")
             for k in range(len(steps))]
    try:
        in_flight: collections.deque = collections.deque()
        for patient in todo:
            if len(in_flight) >= len(steps):
                finish(*in_flight.popleft())
            future = pools[0].submit(steps[0], patient)
            for pool, step in zip(pools[1:], steps[1:]):
                future = pool.submit(_after, step, future)
            in_flight.append((patient, future))
        while in_flight:
            finish(*in_flight.popleft())
    finally:
        for pool in pools:
            pool.shutdown(wait=True)


def _run_on(executor: concurrent.futures.Executor, todo: Sequence[HasPatientId],
            step: Callable[[Any], Any],
            finish: Callable[[Any, concurrent.futures.Future], None]) -> None:
    futures = {}
    for patient in todo:
        try:
            future = executor.submit(step, patient)
        except BrokenProcessPool as exc:  # a worker died while patients were being queued
            future = concurrent.futures.Future()
            future.set_exception(exc)
        futures[future] = patient
    try:
        for future in concurrent.futures.as_completed(futures):
            finish(futures[future], future)
    except _RunStopped:
        for future in futures:
            future.cancel()
        raise


def _run_in_processes(todo: Sequence[HasPatientId], step: Callable[[Any], Any], n_jobs: int,
                      finish: Callable[[Any, concurrent.futures.Future], None]) -> None:
    """A local process pool; a pool broken by a killed worker is replaced and the patients it
    held are run again one by one, so that only the patient that kills its worker fails."""
    broken: list[HasPatientId] = []

    def collect(patient: HasPatientId, future: concurrent.futures.Future) -> None:
        if isinstance(future.exception(), BrokenProcessPool):
            broken.append(patient)
        else:
            finish(patient, future)

    pool = concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs,
                                                  mp_context=process_context())
    try:
        _run_on(pool, todo, step, collect)
    except _RunStopped:  # wait for the patients that run, not for those still queued
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        # a worker killed after its last patient breaks the pool too (nothing left to rerun):
        # waiting for a broken pool can hang, so it is abandoned as well
        if broken or getattr(pool, "_broken", False):
            _abandon(pool)
        else:
            pool.shutdown(wait=True)
    for patient in broken:
        logger.warning("a worker process died; running patient %s again on its own",
                       patient.patient_id)
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=1,
                                                      mp_context=process_context())
        future = pool.submit(step, patient)
        concurrent.futures.wait([future])
        if isinstance(future.exception(), BrokenProcessPool):
            _abandon(pool)
        else:
            pool.shutdown(wait=True)
        finish(patient, future)


def _abandon(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Shut a broken pool down without waiting, and kill the workers it still has.

    Waiting for a pool that a killed worker broke can hang forever (the surviving workers
    and the pool's queue threads wait on each other), which left the command running after
    its last patient; the workers of a broken pool have no work worth waiting for.
    """
    processes = getattr(pool, "_processes", None)  # private; absent in other versions
    processes = list(processes.values()) if isinstance(processes, dict) else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.kill()


def process_context() -> multiprocessing.context.BaseContext:
    """Start workers without fork: the parent may hold threads (TensorFlow, tqdm)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def resume_from(path_of: Callable[[Any], Path], read: Callable[[Path], Any | None]
                ) -> Callable[[Any], Any | None]:
    """A ``resume`` function for :func:`run_cohort` that reads each patient's earlier output.

    Args:
        path_of: function ``patient -> Path`` of the patient's output file.
        read: function ``Path -> result or None``; None (or an unreadable file, OSError or
            ValueError) means "run the patient again".

    Returns:
        function ``patient -> result or None``.
    """

    def resume(patient: Any) -> Any | None:
        path = path_of(patient)
        if not path.is_file():
            return None
        try:
            return read(path)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    return resume
