"""Every Prometheus metric loopd defines, in one registry, and the listener the brain and hands serve it on.

Metrics are defined once here, so roles sharing a process (the local stack) share them instead of
registering twice. Labels take only bounded values: route templates, provider and tool names, and the
id of the worker that owns a gauge. docs/metrics.md describes each metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from services.core.settings import Settings

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)

# A step commit takes about a millisecond; model and tool calls take seconds.
_FAST = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_ACQUIRE = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "loopd_http_requests",
    "Requests the gateway answered, by route template and status.",
    ("method", "route", "status"),
    registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "loopd_http_request_duration_seconds",
    "Time until the gateway started its response (an event stream's headers, not its end).",
    ("method", "route"),
    buckets=_FAST,
    registry=REGISTRY,
)

STEP_COMMIT_SECONDS = Histogram(
    "loopd_brain_step_commit_seconds",
    "One step commit of the brain: pool checkout, the fenced append, and the live fan-out.",
    buckets=_FAST,
    registry=REGISTRY,
)
MODEL_CALL_SECONDS = Histogram(
    "loopd_brain_model_call_seconds",
    "One attempt at a model call, by provider and outcome (ok or error).",
    ("provider", "outcome"),
    buckets=_SLOW,
    registry=REGISTRY,
)
BRAIN_TOOL_CALL_SECONDS = Histogram(
    "loopd_brain_tool_call_seconds",
    "A tool call as the brain dispatches it, retries on other hands included, by tool and outcome.",
    ("tool", "outcome"),
    buckets=_SLOW,
    registry=REGISTRY,
)
RUNS_HELD = Gauge(
    "loopd_brain_runs_held", "Runs the brain is stepping now.", ("brain_id",), registry=REGISTRY
)
ADMISSION_LIMIT = Gauge(
    "loopd_brain_admission_limit",
    "How many runs the brain lets itself hold now (adapted to its commit latency).",
    ("brain_id",),
    registry=REGISTRY,
)
RUNS_DEFERRED = Counter(
    "loopd_brain_runs_deferred",
    "Wake-ups of runs left queued because their tenant's runs were at its max_running_runs.",
    registry=REGISTRY,
)
SANDBOX_QUOTA_WAIT_SECONDS = Histogram(
    "loopd_brain_sandbox_quota_wait_seconds",
    "A tool call's wait for one of its tenant's max_sandboxes, by outcome (claimed or timeout).",
    ("outcome",),
    buckets=_SLOW,
    registry=REGISTRY,
)

HANDS_TOOL_CALL_SECONDS = Histogram(
    "loopd_hands_tool_call_seconds",
    "A tool call on a hands worker, from taking a slot to its result, by tool and outcome.",
    ("tool", "outcome"),
    buckets=_SLOW,
    registry=REGISTRY,
)
SANDBOX_ACQUIRE_SECONDS = Histogram(
    "loopd_hands_sandbox_acquire_seconds",
    "Getting a new run its sandbox: claimed from the warm pool (warm) or started for it (cold).",
    ("start",),
    buckets=_ACQUIRE,
    registry=REGISTRY,
)
WARM_SANDBOXES = Gauge(
    "loopd_hands_warm_sandboxes",
    "Started sandboxes ready for new runs.",
    ("hands_id",),
    registry=REGISTRY,
)
RUN_SANDBOXES = Gauge(
    "loopd_hands_run_sandboxes", "Sandboxes held by runs.", ("hands_id",), registry=REGISTRY
)
SLOTS_BUSY = Gauge(
    "loopd_hands_slots_busy", "Call slots running a tool call now.", ("hands_id",), registry=REGISTRY
)
SLOTS_TOTAL = Gauge("loopd_hands_slots_total", "Call slots of the worker.", ("hands_id",), registry=REGISTRY)
CALLS_WAITING = Gauge(
    "loopd_hands_calls_waiting",
    "Tool calls queued on the worker for a call slot; with the busy slots, the load autoscaling reads.",
    ("hands_id",),
    registry=REGISTRY,
)
COLLECTED_BLOBS = Counter(
    "loopd_brain_collected_blobs",
    "Blobs the artifact store's collector removed because nothing referenced them.",
    registry=REGISTRY,
)
COLLECTED_BYTES = Counter(
    "loopd_brain_collected_bytes",
    "Bytes of the blobs the artifact store's collector removed.",
    registry=REGISTRY,
)
SNAPSHOT_BYTES = Counter(
    "loopd_hands_snapshot_bytes",
    "Bytes workspace snapshots copied into the artifact store (file contents and manifests).",
    registry=REGISTRY,
)


def outcome(ok: bool) -> str:
    return "ok" if ok else "error"


class Readings:
    """Gauges read from a live worker at scrape time, under the worker's id; `close` removes them.

    Reading at scrape time costs the hot paths nothing, and a stopped worker leaves no stale series.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._gauges: list[Gauge] = []

    def add(self, gauge: Gauge, read: Callable[[], float]) -> Readings:
        gauge.labels(self.owner).set_function(read)
        self._gauges.append(gauge)
        return self

    def close(self) -> None:
        for gauge in self._gauges:
            gauge.remove(self.owner)
        self._gauges.clear()


def exposition() -> tuple[bytes, str]:
    """The registry in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@contextmanager
def serving(role: str, host: str, port: int) -> Iterator[int]:
    """Serve `/metrics` on host:port (0 picks a free port) from a thread; yields the bound port."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    bound = int(server.server_port)
    logger.info("%s metrics on http://%s:%d/metrics", role, host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def listening(settings: Settings, role: Literal["brain", "hands"]) -> AbstractContextManager[int | None]:
    """The role's metrics listener as its settings ask (none when metrics are turned off)."""
    if not settings.metrics_enabled:
        return nullcontext()
    port = settings.brain_metrics_port if role == "brain" else settings.hands_metrics_port
    return serving(role, settings.metrics_host, port)
