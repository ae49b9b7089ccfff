"""Drift against the training baseline: the window's figures on training-like, shifted and
missing values, its sliding, and the gauges the service publishes (parsed as Prometheus
text)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.readings import ReadingBatch
from src.services.drift import DriftWindow, _expected_shares
from src.services.metrics import PredictionMetrics
from src.services.prediction_service import PredictionService
from src.training.tracking import feature_baseline

WINDOW = 2000


@pytest.fixture(scope="module")
def training(trained_store):
    result = trained_store.result
    names = list(result.feature_names)
    columns = [names.index(signal) for signal in SIGNAL_NAMES]
    return feature_baseline(result), result.train_features, columns


def window_of(training) -> DriftWindow:
    baseline, _, columns = training
    return DriftWindow(baseline, list(SIGNAL_NAMES), columns, WINDOW)


def sample(features: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).choice(features.shape[0], n, replace=False)
    return features[rows].copy()


def test_training_like_readings_show_no_drift(training):
    window = window_of(training)
    window.observe(sample(training[1], WINDOW))
    figures = window.figures()
    assert figures.readings.min() > 0.95 * WINDOW  # the simulator's dropouts are not counted
    assert np.nanmax(figures.out_of_range_ratio) < 0.06  # 0.02 expected
    assert np.nanmax(figures.psi) < 0.1


def test_a_shifted_signal_shows_and_slides_out_of_the_window(training):
    _, features, columns = training
    window = window_of(training)
    hot = sample(features, WINDOW, seed=1)
    temperature = columns[SIGNAL_NAMES.index("cell_temp_max_c")]
    hot[:, temperature] += 15.0
    for chunk in np.array_split(hot, 40):  # in request-sized pieces
        window.observe(chunk)
    figures = window.figures()
    shifted = SIGNAL_NAMES.index("cell_temp_max_c")
    assert figures.out_of_range_ratio[shifted] > 0.08  # 0.02 when calm
    assert figures.psi[shifted] > 0.25
    untouched = SIGNAL_NAMES.index("h2_ppm")
    assert figures.psi[untouched] < 0.1
    window.observe(sample(features, WINDOW, seed=2))  # the window moves on
    assert window.figures().psi[shifted] < 0.1


def test_missing_values_are_not_counted(training):
    window = window_of(training)
    rows = sample(training[1], 100)
    rows[:, training[2][0]] = np.nan
    window.observe(rows)
    figures = window.figures()
    assert figures.readings[0] == 0
    assert np.isnan(figures.psi[0])
    assert figures.readings[1] == np.count_nonzero(~np.isnan(rows[:, training[2][1]]))


def test_tied_quantiles_move_their_share_to_where_the_values_fall():
    edges = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]])
    shares = _expected_shares(edges)[0]
    np.testing.assert_allclose(shares, [0.01, 0, 0, 0, 0, 0, 0.98, 0.01])
    assert shares.sum() == pytest.approx(1.0)


def test_the_service_publishes_both_figures_per_signal(settings):
    registry = CollectorRegistry()
    service = PredictionService(
        settings.model_copy(update={"drift_window_readings": 500, "history": False}),
        PredictionMetrics(registry),
    )
    service.load()
    n = 50
    signals = np.array([[s.reference for s in SIGNALS]] * n)
    service.predict(ReadingBatch(["R01-M01"] * n, 10.0 * np.arange(n), signals))
    text = generate_latest(registry).decode()
    figures = {
        (sample.name, sample.labels["signal"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("hvs_drift_")
    }
    for signal in SIGNAL_NAMES:
        assert 0.0 <= figures[("hvs_drift_out_of_range_ratio", signal)] <= 1.0
        assert figures[("hvs_drift_psi", signal)] >= 0.0


def test_drift_off_publishes_nothing(settings):
    registry = CollectorRegistry()
    service = PredictionService(
        settings.model_copy(update={"drift_window_readings": 0}), PredictionMetrics(registry)
    )
    service.load()
    signals = np.array([[s.reference for s in SIGNALS]])
    service.predict(ReadingBatch(["R01-M01"], np.array([0.0]), signals))
    assert "hvs_drift_psi{" not in generate_latest(registry).decode()
