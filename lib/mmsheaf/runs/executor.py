r"""Where runs execute: in this process (the default), or on a ``dask.distributed`` cluster.

The run loops hand their missing runs to one executor (:func:`executor_from_env`):

- :class:`InProcess` (default): one run after another in this process, exactly as before;
- :class:`DaskExecutor`: a ``dask.distributed`` ``LocalCluster`` of ``MMSHEAF_WORKERS=N`` single-threaded worker
  processes, or an existing scheduler, ``MMSHEAF_SCHEDULER=tcp://host:8786`` (start one with ``dask scheduler``
  and ``dask worker tcp://host:8786 --nthreads 1`` on every machine). Workers keep what they load (datasets
  are cached per process), results come back to the client, which alone writes the run cache and the ledgers,
  so a killed worker loses at most its run in flight (Dask runs it again elsewhere) and a killed client
  loses the runs in flight.

Every run fixes its own torch thread count (:data:`RUN_THREADS`, ``MMSHEAF_RUN_THREADS``, default 1) wherever it
runs, and the count is recorded with its result: the same run gives the same numbers in-process, on a local
worker or on a remote one (two threads instead of one moved notebook 01's Cornell NSD means by 2 points).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

__all__ = ["RUN_THREADS_ENV", "SCHEDULER_ENV", "WORKERS_ENV", "DaskExecutor", "Executor", "Failure", "InProcess",
           "call_with_threads", "executor_from_env", "run_threads", "shared_executor"]  # fmt: skip

WORKERS_ENV, SCHEDULER_ENV, RUN_THREADS_ENV = "MMSHEAF_WORKERS", "MMSHEAF_SCHEDULER", "MMSHEAF_RUN_THREADS"

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """A run that raised: the exception (re-created on the client for remote runs)."""

    error: BaseException


def run_threads() -> int:
    """Torch threads of every run (``MMSHEAF_RUN_THREADS``, default 1)."""
    raw = os.environ.get(RUN_THREADS_ENV, "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{RUN_THREADS_ENV}={raw!r}: give a positive number of threads per run (default 1).")
    return int(raw)


def call_with_threads(fn: Callable[[T], dict[str, Any]], item: T, threads: int) -> dict[str, Any]:
    """``fn(item)`` with torch set to ``threads`` threads (restored after), the count added to the result as
    ``run_threads``."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = fn(item)
    finally:
        torch.set_num_threads(before)
    return {**result, "run_threads": threads}


class Executor(Protocol):
    """Runs ``fn`` over items and yields ``(index, result or Failure)`` as each finishes (any order)."""

    workers: int

    def imap(self, fn: Callable[[T], dict[str, Any]], items: Sequence[T]) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class InProcess:
    """One run after another in this process (the default; ``workers == 1``)."""

    workers = 1

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or run_threads()

    def imap(self, fn: Callable[[T], dict[str, Any]], items: Sequence[T]) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            try:
                yield i, call_with_threads(fn, item, self.threads)
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which records and names it
                yield i, Failure(exc)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"InProcess(threads={self.threads})"


class DaskExecutor:
    """Runs on ``dask.distributed`` workers: a new ``LocalCluster`` of ``workers`` single-threaded processes, or
    the scheduler at ``address``. Results stream back as they finish (``as_completed``)."""

    def __init__(
        self, workers: int | None = None, address: str | None = None, threads: int | None = None
    ) -> None:
        from distributed import Client, LocalCluster

        if (workers is None) == (address is None):
            raise ValueError("give either workers (a LocalCluster) or address (an existing scheduler).")
        self.threads = threads or run_threads()
        self.cluster = None
        if address is None:
            if workers is None or workers < 1:
                raise ValueError(f"workers must be >= 1, got {workers}.")
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=40)  # fmt: skip  (any free port)
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def imap(self, fn: Callable[[T], dict[str, Any]], items: Sequence[T]) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        futures = {self.client.submit(call_with_threads, fn, item, self.threads, pure=False): i
                   for i, item in enumerate(items)}  # fmt: skip
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as exc:  # noqa: BLE001 - a run's error (or a worker lost too often)
                    yield futures[future], Failure(exc)
        finally:
            for future in futures:  # an interrupted loop leaves nothing running
                future.cancel()

    def run_everywhere(self, fn: Callable[..., Any], *args: Any, poll: Callable[[], None] | None = None,
                       **kwargs: Any) -> list[Any]:  # fmt: skip
        """``fn(*args, **kwargs)`` once on every worker at once (e.g. an Optuna worker loop on a shared study);
        waits for all, calling ``poll()`` every second (its errors ignored); raises the first worker's error once
        all have stopped. Interrupted (Ctrl-C, an error here), it restarts the workers: Dask cannot cancel a running
        task, and a search left running would hold the workers and go on writing trials."""
        import time

        addresses = list(self.client.scheduler_info().get("workers", {}))[: self.workers]
        futures = [
            self.client.submit(fn, *args, pure=False, workers=[a], allow_other_workers=False, **kwargs)
            for a in addresses
        ]  # fmt: skip  (one loop per worker, never two on one)
        try:
            while not all(f.done() for f in futures):
                time.sleep(1.0)
                if poll is not None:
                    try:
                        poll()
                    except Exception:  # noqa: BLE001, S110 - progress only
                        pass
        except BaseException:
            self.client.restart()
            raise
        return [f.result() for f in futures]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __repr__(self) -> str:
        where = "LocalCluster" if self.cluster is not None else str(self.client.scheduler.address)
        return f"DaskExecutor({where}, workers={self.workers}, threads={self.threads})"


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def executor_from_env() -> Executor:
    """:class:`DaskExecutor` on ``MMSHEAF_SCHEDULER`` if set, else on a ``LocalCluster`` of ``MMSHEAF_WORKERS``
    workers if that is above 1, else :class:`InProcess` (always inside a Dask worker: no nested clusters)."""
    if _in_dask_worker():
        return InProcess()  # a run or a search sent to a worker runs there, never on a nested cluster
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if address:
        return DaskExecutor(address=address)
    raw = os.environ.get(WORKERS_ENV, "1").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{WORKERS_ENV}={raw!r}: give a positive number of worker processes (default 1).")
    return DaskExecutor(workers=int(raw)) if int(raw) > 1 else InProcess()


_SHARED: Executor | None = None


def shared_executor() -> Executor:
    """This process's executor (:func:`executor_from_env`, made on first use and closed at exit): every run loop
    of a notebook shares one cluster."""
    global _SHARED
    if _SHARED is None:
        _SHARED = executor_from_env()
        if not isinstance(_SHARED, InProcess):
            import atexit

            atexit.register(_SHARED.close)
    return _SHARED
