"""Where dask runs: the ``client`` argument of every :mod:`gridgeo.scale` function,
``--scheduler`` on the command line.

``None`` / ``"threads"``
    dask's thread pool in this process (``"sync"``: one thread, for debugging).
``"local"`` / ``"local:N"``
    A :class:`distributed.LocalCluster` on this machine (one worker process per core, or
    ``N``), started for the call and closed after it.
``"tcp://host:8786"`` (any scheduler address)
    A running cluster (``dask scheduler`` and ``dask worker tcp://host:8786`` on each
    machine). Workers need gridgeo installed (the same version), and every path given
    must be one every worker can read and write (a shared file system).
a :class:`distributed.Client`
    Used as it is, and left open.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput, ServiceUnavailable

__all__ = ["dask_client"]

_LOCAL_SCHEDULERS = ("threads", "sync", "synchronous", "processes")


@contextmanager
def dask_client(client: Any = None) -> Iterator[Any]:
    """What to compute on, from a ``client`` argument (see the module notes).

    Yields the value for ``dask.compute(..., scheduler=...)``: None (dask's default, the
    thread pool, or a :class:`distributed.Client` made current elsewhere), a local
    scheduler name, or a :class:`distributed.Client`. A cluster or client made here is
    closed on leaving.

    Raises
    ------
    ServiceUnavailable
        (503) An address no scheduler answers at.
    InvalidInput
        ``local:N`` with ``N`` not a positive number.
    """
    if client is None or (isinstance(client, str) and client in _LOCAL_SCHEDULERS):
        yield client
        return
    if not isinstance(client, str):
        yield client  # a distributed.Client (or anything dask.compute takes)
        return
    from distributed import Client, LocalCluster

    text = client.strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if count and not (count.isdigit() and int(count) > 0):
            raise InvalidInput(f"scheduler {text!r}: local:N needs a positive number of workers")
        n = int(count or 0) or (os.cpu_count() or 1)
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as c,
        ):
            yield c
        return
    try:
        c = Client(text, timeout=get_settings().dask_connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ServiceUnavailable(f"no dask scheduler answers at {text}: {exc}") from None
    try:
        yield c
    finally:
        c.close()


def _is_client(scheduler: Any) -> bool:
    return type(scheduler).__name__ == "Client" and hasattr(scheduler, "scatter")


class _Shared:
    """A large object passed to every task, tokenised by a fixed name rather than by
    pickling it (which dask does to unknown objects, a few times per graph)."""

    __slots__ = ("token", "value")

    def __init__(self, value: Any):
        self.value = value
        self.token = uuid.uuid4().hex

    def __dask_tokenize__(self):
        return ("gridgeo-shared", self.token)


def _share(value: Any, scheduler: Any) -> Any:
    """Ship ``value`` to the workers once: scattered to every worker of a cluster,
    wrapped for the local schedulers."""
    shared = _Shared(value)  # one object, even for a tuple (scatter would split it)
    if _is_client(scheduler):
        return scheduler.scatter(shared, broadcast=True, hash=False)
    return shared


def _unshare(value: Any) -> Any:
    return value.value if isinstance(value, _Shared) else value


def _compute(*collections, scheduler: Any):
    import dask

    if scheduler is None:
        return dask.compute(*collections)
    return dask.compute(*collections, scheduler=scheduler)
