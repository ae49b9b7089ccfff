"""HTTP traffic metrics from prometheus-flask-exporter, on the app's own registry.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (by the gunicorn config, before
prometheus_client is imported) and every worker writes to it, so a scrape of any worker
returns one consistent total. Each app gets its own registry: several apps in one process
(the tests) never collide, and no metric lives in a module global. The model's own
metrics are the prediction service's (src/services/metrics.py), on the same registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

NOT_TRAFFIC = ["^/health$", "^/ready$", "^/metrics$", "^/openapi.json$"]
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
"""The exporter labels requests by method, and gunicorn passes any short upper-case token
as one: every other method is `OTHER`, so made-up methods cannot grow /metrics. (Paths
are already bounded: requests are grouped by Flask endpoint, `None` for every 404.)"""
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
    app.wsgi_app = _fold_unknown_methods(app.wsgi_app)
    return registry


def _fold_unknown_methods(wsgi_app: Callable) -> Callable:
    def folded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in KNOWN_METHODS:
            environ["REQUEST_METHOD"] = "OTHER"  # answered 405 (or 404) all the same
        return wsgi_app(environ, start_response)

    return folded


def archive_dead_worker(metrics_dir: str, pid: int) -> None:
    """Fold a dead worker's counters and histograms into one archive file per type, so the
    totals stay whole while the folder, and every scrape's cost, stops growing with each
    worker restart (prometheus_client keeps a file per process that ever lived).

    Run by gunicorn's master only, so the archive has one writer. A scrape that lands in
    the microseconds between the archive's update and the dead file's removal counts that
    worker twice; a restart is rare enough for that to be a blip, not a trend."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # its live gauges go
    for prefix, combine in _ARCHIVED.items():
        dead = Path(metrics_dir) / f"{prefix}_{pid}.db"
        if not dead.exists():
            continue
        archive = MmapedDict(str(Path(metrics_dir) / f"{prefix}_archive.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(dead)):
                kept, kept_timestamp = archive.read_value(key)
                archive.write_value(key, *combine(kept, kept_timestamp, value, timestamp))
        finally:
            archive.close()
        dead.unlink()


_ARCHIVED: dict[str, Callable[[float, float, float, float], tuple[float, float]]] = {
    # file prefix -> how a dead worker's value joins the archive's: (value, timestamp)
    "counter": lambda kept, _, value, timestamp: (kept + value, timestamp),
    "histogram": lambda kept, _, value, timestamp: (kept + value, timestamp),
    "gauge_sum": lambda kept, _, value, timestamp: (kept + value, timestamp),
    "gauge_max": lambda kept, _, value, timestamp: (max(kept, value), timestamp),
    "gauge_mostrecent": lambda kept, kept_t, value, t: (
        (value, t) if t >= kept_t else (kept, kept_t)
    ),
}
"""Files of dead workers that prometheus_client keeps, and how they fold (a fresh archive
value is 0, so `min` gauges, whose 0 would win, are not folded: this service has none)."""
