"""HTTP traffic metrics from prometheus-flask-exporter, on the app's own registry.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (by the gunicorn config, before
prometheus_client is imported) and every worker writes to it, so a scrape of any worker
returns one consistent total. Each app gets its own registry: several apps in one process
(the tests) never collide, and no metric lives in a module global. The model's own
metrics are the prediction service's (src/services/metrics.py), on the same registry.
"""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

NOT_TRAFFIC = ["^/health$", "^/ready$", "^/metrics$"]
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def init_app(app: Flask, multiprocess: bool) -> CollectorRegistry:
    """Count and time the app's requests and serve /metrics; return the registry.

    multiprocess: gunicorn's workers share PROMETHEUS_MULTIPROC_DIR (set before
    prometheus_client was imported, which is what makes its values file-backed)."""
    registry = CollectorRegistry()
    common = dict(
        group_by="endpoint",
        excluded_paths=NOT_TRAFFIC,
        registry=registry,
        default_labels={},
        buckets=LATENCY_BUCKETS,
    )
    if multiprocess:
        exporter = GunicornInternalPrometheusMetrics.for_app_factory(**common)
    else:
        exporter = PrometheusMetrics.for_app_factory(**common)
    exporter.init_app(app)
    return registry
