"""``/metrics`` in the Prometheus text format: requests, latency and events by state.

Each app has its own registry (so that several apps in one process, as in the tests,
do not collide). The events-by-state gauge is collected at scrape time with one
``GROUP BY`` on the events table.

Several workers: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``gridgeo serve --workers N``
sets it to a fresh directory), every worker writes its counters and histograms there and
a scrape, whichever worker answers it, sums them all (prometheus_client's multi-process
mode).
"""

from __future__ import annotations

import logging
import os
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gridgeo.api.deps import StoreDep
from gridgeo.errors import StoreError
from gridgeo.events.queries import warning_counts
from gridgeo.notify.webhooks import delivery_counts
from gridgeo.store import Store
from gridgeo.store.schema import EVENT_STATES, events

log = logging.getLogger("gridgeo.metrics")

#: Latency buckets, in seconds: lookups answer in milliseconds, batch imports in seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The request metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gridgeo_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "gridgeo_http_request_duration_seconds", "HTTP request latency by method and route template.",
            ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.fallthroughs = Counter(
            "gridgeo_lookup_fallthroughs", "GET /v1/lookup requests the fast path left to the route, by reason "
            "(query: not a plain lon/lat[/crs] query; otherwise the problem the route answers).",
            ["reason"], registry=self.registry)
        self._children: dict[tuple, tuple] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per label set: .labels() takes a lock
        # and builds a key, which costs more than the lookup endpoint's own work.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def fell_through(self, reason: str) -> None:
        """Count a lookup that :class:`gridgeo.api.fastpath.FastLookup` left to the route."""
        self.fallthroughs.labels(reason).inc()


def event_states(store: Store) -> dict[str, int]:
    """Events by state (every known state, zero included): one GROUP BY."""
    counts = dict.fromkeys(EVENT_STATES, 0)
    with store.engine.connect() as conn:
        for state, n in conn.execute(select(events.c.state, func.count()).group_by(events.c.state)):
            counts[state] = int(n)
    return counts


class _Scrape:
    """What one scrape shows: the app's registry, then the database gauges."""

    def __init__(self, registry: CollectorRegistry, store: Store) -> None:
        self.registry, self.store = registry, store

    def collect(self):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            yield from merged.collect()
        else:
            yield from self.registry.collect()
        up = GaugeMetricFamily("gridgeo_database_up", "1 when the events query of this scrape answered.")
        try:
            counts = event_states(self.store)
        except (SQLAlchemyError, StoreError) as exc:  # a scrape must not fail because the database does
            log.warning("metrics: events by state unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauge = GaugeMetricFamily("gridgeo_events", "Events by state (at scrape time).", labels=["state"])
        for state, n in counts.items():
            gauge.add_metric([state], n)
        yield gauge
        try:
            warnings = warning_counts(self.store)
            deliveries = delivery_counts(self.store)
        except (SQLAlchemyError, StoreError) as exc:
            log.warning("metrics: warnings and deliveries unavailable: %s", exc)
            return
        gauge = GaugeMetricFamily("gridgeo_open_events_warning",
                                  "Open events by early-warning level (green, yellow: near the deadline, red: overdue).",
                                  labels=["level"])
        for level, n in warnings.items():
            gauge.add_metric([level], n)
        yield gauge
        gauge = GaugeMetricFamily("gridgeo_deliveries", "Notification deliveries by state (dead: the dead-letter list).",
                                  labels=["state"])
        for state, n in deliveries["counts"].items():
            gauge.add_metric([state], n)
        yield gauge
        backlog = GaugeMetricFamily("gridgeo_outbox_backlog", "Outbox rows not yet fanned out into deliveries.")
        backlog.add_metric([], deliveries["outbox_backlog"])
        yield backlog


router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, store: StoreDep):
    """Requests by method, route and status; latency by route; events by state."""
    data = generate_latest(_Scrape(request.app.state.metrics.registry, store))
    return Response(data, media_type=CONTENT_TYPE_LATEST)
