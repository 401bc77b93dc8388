"""Group commit: many intakes share one transaction, and each waits for its commit.

Under load, committing every event on its own spends most of the time in the commit
(SQLite writes the touched pages of every index to the WAL each time; PostgreSQL
flushes its WAL). A :class:`GroupCommitter` has one writer thread per store: requests
hand it their prepared work and wait on a future; the writer takes everything waiting
(up to ``max_batch``), writes it in one transaction, commits, and only then resolves the
futures. So an answer still means "committed", and a lone request is written at once
(no timer, no added latency when idle).

If a batch fails as a whole (an integrity error from another process, a lost
connection), its items are retried one transaction each, so that one bad item fails
alone.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future

from gridgeo.events.db import write_txn
from gridgeo.store import Store

__all__ = ["GroupCommitter", "committer"]


class GroupCommitter:
    """Writes items in batches: ``prepare_batch(items) -> errors`` (optional, outside the
    transaction) then ``write_batch(conn, items, errors) -> results`` inside it.

    A result that is an exception instance fails that item only (the transaction still
    commits the others). The writer thread ends after ``idle_exit`` seconds without work
    and starts again on the next submit.
    """

    def __init__(self, store: Store, write_batch: Callable, prepare_batch: Callable | None = None, *,
                 max_batch: int = 256, idle_exit: float = 2.0):
        self._store = weakref.ref(store)
        self._write_batch = write_batch
        self._prepare_batch = prepare_batch
        self.max_batch = max_batch
        self.idle_exit = idle_exit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    def submit(self, item) -> Future:
        fut: Future = Future()
        self._queue.put((item, fut))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gridgeo-group-commit", daemon=True)
                self._thread.start()
        return fut

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # Claim the futures before writing: a waiter that gave up already (its asyncio
            # task was cancelled, which cancels the future) is dropped unwritten, and the
            # others can no longer be cancelled. Otherwise set_result on a cancelled
            # future raises InvalidStateError, which ended this thread and left the rest
            # of a committed batch without an answer, forever.
            batch = [(it, fut) for it, fut in batch if fut.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)

    def _commit(self, batch) -> None:
        store = self._store()
        if store is None:
            for _, fut in batch:
                fut.set_exception(RuntimeError("the store was closed"))
            return
        items = [it for it, _ in batch]
        try:
            # Work that needs no transaction (locating the batch) is done before it.
            errors = self._prepare_batch(items) if self._prepare_batch else None
            with write_txn(store) as conn:
                results = self._write_batch(conn, items, errors)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for one in batch:
                self._commit([one])
            return
        self.batches += 1
        self.items += len(batch)
        for (_, fut), res in zip(batch, results):
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)


_COMMITTERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def committer(store: Store, name: str, write_batch: Callable,
              prepare_batch: Callable | None = None) -> GroupCommitter:
    """The group committer ``name`` of ``store`` (one per store and name)."""
    per = _COMMITTERS.get(store)
    if per is None or name not in per:
        with _LOCK:
            per = _COMMITTERS.setdefault(store, {})
            if name not in per:
                per[name] = GroupCommitter(store, write_batch, prepare_batch)
    return per[name]
