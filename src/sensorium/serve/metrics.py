"""Prometheus metrics: request counts and latencies per route, and the size of the index.

A registry per app (not the global one), so several apps in one process (tests) never collide.
Routes are labelled by their template (`/api/v1/items/{item_id}`), never the raw URL (a path no
route matches is "unmatched"), and a method outside HTTP's usual few is "OTHER" (a client may send
any token as a method), so the number of series stays bounded whatever clients send.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER_METHOD = "OTHER"
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class IndexSizeCollector:
    """Reads item and segment counts from the catalog at scrape time."""

    def __init__(self, counts: Callable[[], tuple[dict[str, int], int]]):
        self._counts = counts

    def collect(self):
        items = GaugeMetricFamily("sensorium_index_items", "Items in the collection, by modality", labels=["kind"])  # label name kept: dashboards query it
        segments = GaugeMetricFamily("sensorium_index_segments", "Searchable segments in the collection")
        by_modality, segment_count = self._counts()
        for modality, count in sorted(by_modality.items()):
            items.add_metric([modality], count)
        segments.add_metric([], segment_count)
        yield items
        yield segments


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, counts: Callable[[], tuple[dict[str, int], int]]):
        self.registry = CollectorRegistry()
        self.requests = Counter("sensorium_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("sensorium_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(IndexSizeCollector(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (so streaming responses are not buffered): times each request to its response start."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = {"code": 500}

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send=record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe(method_label(scope["method"]), template, status["code"], time.perf_counter() - began)
