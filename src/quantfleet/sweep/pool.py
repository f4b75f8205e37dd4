"""Evaluate combinations in chunks: in this process, or on a local pool of worker processes.

A sweep of an event-driven strategy is a list of independent evaluations;
here they run on a :class:`concurrent.futures.ProcessPoolExecutor` (the job
system fans the same list out across a fleet). Each worker builds its
evaluator once, from a picklable factory, so the strategy is loaded and the
data read once per process, never per combination. Workers start with the
``spawn`` method: nothing of the parent's state (open files, threads, loaded
user modules) leaks into them, and the same code runs on every platform.

Only metrics travel back; chunks are submitted a few at a time, so neither
the queue nor the results ever hold more than a handful of chunks.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from types import TracebackType
from typing import Any

from quantfleet.core.errors import InfrastructureError
from quantfleet.sweep.evaluator import Evaluator, EvaluatorFactory, Metrics

__all__ = ["Combo", "LocalPool", "combos_of", "default_workers"]

Combo = tuple[int, dict[str, Any]]
"""A combination and its index in the sweep's deterministic order."""

_evaluator: Evaluator | None = None  # one per worker process, built by _init_worker


def default_workers() -> int:
    """Return the default number of worker processes: the machine's CPU count."""
    return os.cpu_count() or 1


def _init_worker(factory: EvaluatorFactory) -> None:
    global _evaluator
    _evaluator = factory.build()


def _run_chunk(
    chunk: Sequence[Combo], start: int | None, end: int | None, lookback: int
) -> list[tuple[Combo, Metrics]]:
    assert _evaluator is not None, "worker used before its initializer ran"
    metrics = _evaluator.evaluate_chunk([p for _, p in chunk], start=start, end=end, lookback=lookback)
    return list(zip(chunk, metrics, strict=True))


class LocalPool:
    """Evaluate chunks of combinations with ``workers`` processes (1: in this process, no pool).

    ``evaluator`` is this process's own evaluator, built from ``factory``; it
    serves ``workers=1`` and single evaluations (the walk-forward's
    out-of-sample runs). Use as a context manager; the pool starts lazily.
    """

    def __init__(
        self,
        factory: EvaluatorFactory,
        *,
        workers: int | None = None,
        chunk: int = 4,
        evaluator: Evaluator | None = None,
        threads: bool = False,
        fork: bool = False,
    ) -> None:
        self.factory = factory
        self.workers = max(1, workers if workers is not None else default_workers())
        self.chunk = max(1, chunk)
        self._evaluator = evaluator
        self.threads = threads
        self.fork = fork and "fork" in multiprocessing.get_all_start_methods()
        self._executor: ProcessPoolExecutor | ThreadPoolExecutor | None = None

    @property
    def evaluator(self) -> Evaluator:
        """Return this process's evaluator (built on first use)."""
        if self._evaluator is None:
            self._evaluator = self.factory.build()
        return self._evaluator

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(cancel=exc is not None)

    def close(self, *, cancel: bool = False) -> None:
        """Stop the worker processes (dropping queued chunks when ``cancel``)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=cancel)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor | ThreadPoolExecutor:
        if self._executor is None and self.threads:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sweep")
        if self._executor is None and self.fork:
            # The workers are forks of this process: they start with its evaluator (data read, code
            # compiled and loaded) instead of re-importing and re-reading, as a spawned worker must.
            global _evaluator
            _evaluator = self.evaluator
            context = multiprocessing.get_context("fork")
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.factory,),
            )
        return self._executor

    def evaluate(
        self,
        combos: Iterable[Combo],
        *,
        start: int | None = None,
        end: int | None = None,
        lookback: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[Combo, Metrics]]:
        """Yield ``(combo, metrics)`` of every combination, in completion order (sort by index for order).

        ``progress`` is called with the number of combinations finished in each chunk.
        """
        chunks = _chunks(combos, self.chunk)
        if self.workers == 1:
            for chunk in chunks:
                results = self.evaluator.evaluate_chunk([p for _, p in chunk], start=start, end=end, lookback=lookback)
                yield from zip(chunk, results, strict=True)
                if progress is not None:
                    progress(len(chunk))
            return
        pool = self._pool()
        pending: set[Future[list[tuple[Combo, Metrics]]]] = set()
        for chunk in chunks:
            if self.threads:
                pending.add(pool.submit(self._run_here, chunk, start, end, lookback))
            else:
                with warnings.catch_warnings():
                    # Python 3.12+ warns that forking a threaded process may deadlock; the forked
                    # workers only run the evaluator's compiled code and NumPy, no locks of the parent's.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pending.add(pool.submit(_run_chunk, chunk, start, end, lookback))
            if len(pending) >= 2 * self.workers:
                yield from self._drain(pending, progress)
        while pending:
            yield from self._drain(pending, progress)

    def _run_here(
        self, chunk: Sequence[Combo], start: int | None, end: int | None, lookback: int
    ) -> list[tuple[Combo, Metrics]]:
        metrics = self.evaluator.evaluate_chunk([p for _, p in chunk], start=start, end=end, lookback=lookback)
        return list(zip(chunk, metrics, strict=True))

    @staticmethod
    def _drain(
        pending: set[Future[list[tuple[Combo, Metrics]]]], progress: Callable[[int], None] | None
    ) -> Iterator[tuple[Combo, Metrics]]:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            pending.discard(future)
            try:
                results = future.result()
            except BrokenProcessPool as exc:
                raise InfrastructureError(
                    "a sweep worker process died (out of memory, or killed); retry, perhaps with fewer --workers"
                ) from exc
            yield from results
            if progress is not None:
                progress(len(results))


def _chunks(combos: Iterable[Combo], size: int) -> Iterator[list[Combo]]:
    it = iter(combos)
    while chunk := list(islice(it, size)):
        yield chunk


def combos_of(params: Iterable[Mapping[str, Any]], *, first: int = 0) -> Iterator[Combo]:
    """Number combinations in order, from ``first``."""
    for i, p in enumerate(params, start=first):
        yield i, dict(p)
