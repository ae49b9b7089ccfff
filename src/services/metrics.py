"""What the model did, as Prometheus metrics: created once per service, on a given registry.

No Flask here: the prediction service observes these itself, whoever calls it. Under
gunicorn, prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR), so
every worker's values add up in any worker's scrape.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from src.levels import LEVEL_NAMES, Levels
from src.services.drift import DriftFigures
from src.services.model_store import RunLocation

PROBABILITY_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
HISTORY_BUCKETS = (0.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0)
"""Seconds of history a reading's features had (the lookback is 30 minutes)."""


class PredictionMetrics:
    """The model's metrics. Readings scored are counted once, by level; their total is
    `sum(hvs_predictions_total)` (and `hvs_request_readings_sum`), so no second counter
    repeats it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.predictions = Counter(
            "hvs_predictions",
            "Readings scored, by level (normal, warning, alarm, unknown)",
            ["level"],
            registry=registry,
        )
        self.guard_hits = Counter(
            "hvs_guard_hits",
            "Readings on which a physical guard rule fired, by rule",
            ["rule"],
            registry=registry,
        )
        self.missing_groups = Counter(
            "hvs_missing_signal_groups",
            "Readings lacking a key signal group (gas, temperature, voltage), by group",
            ["group"],
            registry=registry,
        )
        self.hazard_probability = Histogram(
            "hvs_hazard_probability",
            "Hazard probability of each scored reading",
            buckets=PROBABILITY_BUCKETS,
            registry=registry,
        )
        self.request_readings = Histogram(
            "hvs_request_readings",
            "Readings per /predict request",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.model_load_seconds = Gauge(
            "hvs_model_load_seconds",
            "Seconds the last model load and warm-up took",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_info = Gauge(
            "hvs_model_info",
            "The model a live worker serves (1), or served before a reload (0)",
            ["run_id", "registered_model", "registered_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_ready = Gauge(
            "hvs_model_ready",
            "1 when every live worker has its model loaded",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.model_ready.set(0)
        self.model_load_failures = Counter(
            "hvs_model_load_failures",
            "Model loads that failed: at start, on each retry, or on an alias move (the "
            "model served so far, if any, keeps serving)",
            registry=registry,
        )
        self.model_reloads = Counter(
            "hvs_model_reloads",
            "Moves of the served alias a worker acted on: `loaded` (now served) or "
            "`refused` (failed its checks; the previous model keeps serving)",
            ["outcome"],
            registry=registry,
        )
        self._served_labels: tuple[str, str, str] | None = None
        self.drift_out_of_range = Gauge(
            "hvs_drift_out_of_range_ratio",
            "Share of a worker's recent readings (HVS_DRIFT_WINDOW_READINGS) whose signal "
            "lies outside the training range [q01, q99] (about 0.02 without drift); the "
            "highest over live workers",
            ["signal"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.drift_psi = Gauge(
            "hvs_drift_psi",
            "Population stability index of a worker's recent readings of the signal "
            "against training, over the baseline's quantile bins; the highest over workers",
            ["signal"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.history_seconds = Histogram(
            "hvs_history_seconds",
            "Seconds of the module's history each scored reading's features had",
            buckets=HISTORY_BUCKETS,
            registry=registry,
        )
        self.history_store_up = Gauge(
            "hvs_history_store_up",
            "1 when every live worker reaches the history store, 0 when one does not",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.history_fallbacks = Counter(
            "hvs_history_fallback_readings",
            "Readings scored from their request alone because the history store failed",
            registry=registry,
        )
        self.history_evictions = Counter(
            "hvs_history_evicted_modules",
            "Modules dropped from the history store because it held too many",
            registry=registry,
        )

    def observe_predictions(self, probabilities: np.ndarray, levels: Levels) -> None:
        self.request_readings.observe(int(probabilities.shape[0]))
        for code, count in enumerate(np.bincount(levels.level, minlength=len(LEVEL_NAMES))):
            if count:
                self.predictions.labels(level=LEVEL_NAMES[code]).inc(int(count))
        for why in (reason for reasons in levels.reasons for reason in reasons):
            kind, _, name = why.partition(":")
            if kind == "guard":
                self.guard_hits.labels(rule=name).inc()
            elif kind == "missing":
                self.missing_groups.labels(group=name).inc()
        observe_many(self.hazard_probability, probabilities, PROBABILITY_BUCKETS)

    def observe_history(self, seconds: np.ndarray) -> None:
        observe_many(self.history_seconds, seconds, HISTORY_BUCKETS)

    def observe_drift(self, figures: DriftFigures) -> None:
        for i, signal in enumerate(figures.signals):
            if figures.readings[i] > 0:
                self.drift_out_of_range.labels(signal=signal).set(figures.out_of_range_ratio[i])
                self.drift_psi.labels(signal=signal).set(figures.psi[i])

    def observe_model_loaded(self, location: RunLocation, load_seconds: float) -> None:
        """The worker serves this model now; the one it served before, if any, is 0 (a
        file-backed gauge's series cannot be removed, only set)."""
        self.model_load_seconds.set(load_seconds)
        if self._served_labels is not None:
            self.model_info.labels(*self._served_labels).set(0)
        registered = location.registered
        self._served_labels = (
            location.run_id,
            "" if registered is None else registered.name,
            "" if registered is None else registered.version,
        )
        self.model_info.labels(*self._served_labels).set(1)
        self.model_ready.set(1)


def observe_many(histogram: Histogram, values: np.ndarray, buckets: tuple[float, ...]) -> None:
    """Histogram.observe() for a whole batch: one increment per bucket, not per value.

    prometheus_client has no batch API, and observe() per reading cost milliseconds on a
    batch of 1,000 under gunicorn (each is a locked write to a shared file). This uses its
    internal `_buckets` and `_sum` (stable across 0.1x-0.2x, pinned in requirements.txt);
    a test compares the result with observe() value by value.
    """
    if values.size == 0:
        return
    if values.size == 1:  # one reading: observe() itself, without numpy's per-call costs
        histogram.observe(float(values[0]))
        return
    # Bucket i counts values <= bounds[i] (the last bound is +Inf), exactly as observe().
    counts = np.bincount(
        np.searchsorted(np.asarray(buckets), values, side="left"), minlength=len(buckets) + 1
    )
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))
