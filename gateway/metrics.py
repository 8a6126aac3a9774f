"""Prometheus metrics. With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (``serve`` does it)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

REQUESTS = Counter("ente_gateway_requests_total", "SOAP requests by service and operation",
                   ["service", "operation"])
FAULTS = Counter("ente_gateway_faults_total", "Faults answered, by service, operation and fault code",
                 ["service", "operation", "fault_code"])
LATENCY = Histogram("ente_gateway_request_seconds", "Time to answer a SOAP request",
                    ["service", "operation"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0))
JOBS = Counter("ente_gateway_jobs_total", "Jobs run by the worker, by kind and result", ["kind", "result"])


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
