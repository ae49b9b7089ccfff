"""Explanations without HTTP: the feature groups, additivity of the grouped contributions
to the model's log-odds, which readings get one, and what each entry says."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.signals import SIGNALS
from src.features.engineering import CHEMISTRY_GROUP, FEATURE_GROUP_NAMES
from src.levels import ALARM, WARNING
from src.readings import ReadingBatch
from src.services.prediction_service import PredictionService
from tests.test_service import batch_of

ALL_GROUPS = len(FEATURE_GROUP_NAMES)


@pytest.fixture
def module_rows(trained_store):
    """Readings of several test modules, the faulty ones' last minutes included, so the
    batch holds normal, warning and alarm readings."""
    frame = trained_store.result.test_frame
    faulty = frame[frame["fault_type"] != "none"]["module_id"].unique()[:3]
    healthy = frame[frame["fault_type"] == "none"]["module_id"].unique()[:2]
    parts = [frame[frame["module_id"] == module].tail(90) for module in (*faulty, *healthy)]
    import pandas as pd

    return pd.concat(parts)


@pytest.mark.parametrize("onnx_max_rows", [64, 0])
def test_every_groups_contribution_plus_the_base_is_the_models_log_odds(
    settings, module_rows, onnx_max_rows
):
    """With every group listed, base + parts = log_odds, and log_odds is the log-odds of
    the served hazard_probability (from ONNX for small requests, XGBoost otherwise)."""
    service = PredictionService(
        settings.model_copy(update={"explain_top": ALL_GROUPS, "onnx_max_rows": onnx_max_rows})
    )
    service.load()
    largest = 0.0
    for size in (1, 40, len(module_rows)):  # both runtimes' sides of HVS_ONNX_MAX_ROWS
        rows = module_rows.tail(size)
        predictions = service.predict(batch_of(rows), explain_all=True)
        probability = predictions.hazard_probability
        log_odds = np.array([e.log_odds for e in predictions.explanations])
        for explanation in predictions.explanations:
            parts = sum(part.log_odds for part in explanation.top)
            assert explanation.base_log_odds + parts == pytest.approx(
                explanation.log_odds, abs=1e-9
            )
        np.testing.assert_allclose(1 / (1 + np.exp(-log_odds)), probability, rtol=0, atol=1e-6)
        # The log-odds of the served probability. It is a float32: within 1e-4 of 0 or 1
        # it holds too few digits to give back the log-odds, so those are left out.
        held = (probability > 1e-4) & (probability < 1 - 1e-4)
        assert held.sum() >= min(size, 10)
        served = np.log(probability[held] / (1 - probability[held]))
        largest = max(largest, float(np.abs(served - log_odds[held]).max(initial=0.0)))
    print(f"largest |log_odds - logit(hazard_probability)|: {largest:.2e}")
    assert largest <= 1e-5


def test_the_grouped_contributions_are_the_boosters_own_margin(settings, module_rows):
    import xgboost as xgb

    service = PredictionService(settings)
    model = service.load()
    batch = batch_of(module_rows)
    scaled = model.scale(model.features(batch))
    base, grouped = model.explainer.contributions(scaled)
    margin = model.booster.predict(xgb.DMatrix(scaled, missing=np.nan), output_margin=True)
    difference = np.abs(base + grouped.sum(axis=1) - margin).max()
    print(f"largest |base + sum(groups) - booster margin|: {difference:.2e}")
    assert difference <= 1e-4  # float32 sums of float32 contributions
    assert np.ptp(base) == 0.0  # one base for every reading
    assert grouped.shape[1] == len(model.explainer.groups) == ALL_GROUPS


def test_only_readings_at_warning_or_alarm_are_explained_by_default(settings, module_rows):
    service = PredictionService(settings)
    service.load()
    predictions = service.predict(batch_of(module_rows))
    flagged = (predictions.level == WARNING) | (predictions.level == ALARM)
    assert flagged.any()
    assert not flagged.all()
    explained = np.array([e is not None for e in predictions.explanations])
    assert (explained == flagged).all()
    for row in np.flatnonzero(flagged):
        top = predictions.explanations[row].top
        assert len(top) == 3
        magnitudes = [abs(part.log_odds) for part in top]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_explain_all_explains_every_reading_and_zero_turns_explanations_off(settings, module_rows):
    service = PredictionService(settings.model_copy(update={"explain_top": 5}))
    service.load()
    batch = batch_of(module_rows)
    every = service.predict(batch, explain_all=True).explanations
    assert all(e is not None and len(e.top) == 5 for e in every)
    off = PredictionService(settings.model_copy(update={"explain_top": 0}))
    off.load()
    assert off.predict(batch, explain_all=True).explanations == [None] * len(batch)
    assert off.predict(batch).explanations == [None] * len(batch)


def test_an_entry_holds_the_readings_value_and_the_signals_healthy_range(settings, module_rows):
    service = PredictionService(settings.model_copy(update={"explain_top": ALL_GROUPS}))
    service.load()
    rows = module_rows.tail(1)
    predictions = service.predict(batch_of(rows), explain_all=True)
    parts = {part.signal: part for part in predictions.explanations[0].top}
    assert set(parts) == set(FEATURE_GROUP_NAMES)
    reading = rows.iloc[0]
    for signal in SIGNALS:
        value = reading[signal.name]
        assert parts[signal.name].value == (None if np.isnan(value) else pytest.approx(value))
        assert parts[signal.name].healthy_range == (signal.normal_low, signal.normal_high)
    spread = reading["cell_voltage_max_v"] - reading["cell_voltage_min_v"]
    assert parts["cell_voltage_spread_v"].value == pytest.approx(spread)
    assert parts["cell_voltage_spread_v"].healthy_range is None
    assert parts["history"].value == predictions.history_s[0]
    assert parts[CHEMISTRY_GROUP].value is None


def test_a_repeated_reading_gets_the_first_ones_explanation(settings):
    service = PredictionService(settings)
    service.load()
    signals = np.array([[s.reference for s in SIGNALS]] * 2)
    batch = ReadingBatch(["R01-M01"] * 2, np.array([1.0, 1.0]), signals)
    from dataclasses import replace

    predictions = service.predict(replace(batch, repeats=np.array([-1, 0])), explain_all=True)
    assert predictions.explanations[0] is predictions.explanations[1] is not None
