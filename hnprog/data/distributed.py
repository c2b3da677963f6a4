"""Cohorts that outgrow one machine: the cohort runner on a Dask distributed cluster.

:func:`hnprog.data.runner.run_cohort` runs one-step work on any
:class:`concurrent.futures.Executor`. :func:`cohort_executor` connects to a Dask scheduler
(``tcp://host:8786``, or the ``DASK_SCHEDULER_ADDRESS`` environment variable that Dask itself
reads) and yields its executor, so that ``preprocess``, ``radiomics extract`` and ``predict``
spread their patients over the cluster's workers with the same outputs as a local run:
progress, ``failures.csv``, resume and cohort order stay with the runner in this process.

The workers read the cohort's files and write the outputs themselves, so the data, the
output folder and the presets must be on a file system every worker sees (a cluster's shared
file system), at the same paths. ``docs/scaling.md`` shows a SLURM cluster with dask-jobqueue.

Needs ``pip install "hnprog[dask]"``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from hnprog.errors import InputError

__all__ = ["SCHEDULER_VARIABLE", "cohort_executor", "scheduler_address"]

#: the environment variable naming the scheduler when no address is given (Dask's own)
SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
#: seconds to wait for the scheduler before giving up
CONNECT_TIMEOUT = 30


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler to use: ``scheduler``, else ``DASK_SCHEDULER_ADDRESS``, else None (local).

    Args:
        scheduler: str, optional. A Dask scheduler address such as ``tcp://host:8786``.

    Returns:
        str or None.
    """
    address = scheduler if scheduler else os.environ.get(SCHEDULER_VARIABLE, "")
    return address.strip() or None


@contextlib.contextmanager
def cohort_executor(scheduler: Any = None, *,
                    timeout: float | None = None) -> Iterator[concurrent.futures.Executor | None]:
    """A Dask cluster's executor for :func:`~hnprog.data.runner.run_cohort`, or None (local).

    Args:
        scheduler: str, ``distributed.Client`` or None. A scheduler address
            (``tcp://host:8786``), a client you already hold (left open), or None for
            ``DASK_SCHEDULER_ADDRESS``; when neither is set, yields None and the caller runs
            locally.
        timeout: float, optional. Seconds to wait for the scheduler. Defaults to
            :data:`CONNECT_TIMEOUT` (30).

    Yields:
        concurrent.futures.Executor or None. ``Client.get_executor()``; the client made here
        is closed on leaving the block.

    Raises:
        InputError: if ``distributed`` is not installed or the scheduler cannot be reached
            (naming the address).

    Example:
        >>> from hnprog.data.distributed import cohort_executor
        >>> with cohort_executor("tcp://head-node:8786") as executor:  # doctest: +SKIP
        ...     preprocess_cohort(cohort, "prep/", executor=executor)
    """
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler.get_executor()  # a Client the caller owns
        return
    address = scheduler_address(scheduler)
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise InputError(f"running on the Dask scheduler {address} needs Dask distributed: "
                         "pip install \"hnprog[dask]\"") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT if timeout is None else timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} "
                         f"({type(exc).__name__}: {exc}); is it running? (set by --scheduler "
                         f"or {SCHEDULER_VARIABLE})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
