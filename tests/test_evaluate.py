"""The safety numbers, on cases small enough to check by hand: lead times before onset,
false-alarm episodes per 1,000 healthy module-hours, and the two thresholds chosen on a
false-alarm budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.levels import ALARM, WARNING, Thresholds
from src.training.evaluate import (
    STANDING_REPEAT_S,
    THRESHOLD_GRID,
    choose_thresholds,
    episodes,
    episodes_by_threshold,
    evaluate,
    event_metrics,
    event_windows,
    healthy_exposure,
    lead_minutes,
    leads_by_threshold,
    time_of,
)

NAN = float("nan")


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (module_id, t, fault_type, event_id, onset_s, hazardous[, lookalike[, span_s]])."""
    columns = ["module_id", "timestamp_s", "fault_type", "event_id", "onset_s", "hazardous"]
    extra = ["lookalike", "span_s"][: len(rows[0]) - len(columns)]
    return pd.DataFrame(rows, columns=columns + extra)


def healthy(module: str, n: int, step: float = 900.0, lookalike: str = "") -> list[tuple]:
    return [(module, step * i, "none", "", NAN, 0, lookalike, NAN) for i in range(n)]


def test_episodes_are_runs_of_flags_on_healthy_modules_per_module():
    rows = healthy("A", 9) + healthy("B", 9) + healthy("C", 3, step=1800.0)
    data = frame(rows)
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0] + [0] * 9 + [1, 1, 0], dtype=bool)
    exposure = healthy_exposure(data)
    assert exposure.hours == pytest.approx(2.0 + 2.0 + 1.0)
    # A: two runs; C: a run starting with its first reading (after B's last, not joined);
    # plus the time flagged: 5 readings standing a minute each (capped), 1/30 episode each
    assert episodes(flags, exposure) == pytest.approx(3 + 5 * 60 / STANDING_REPEAT_S)


def test_episodes_by_threshold_equals_counting_at_each_threshold():
    rng = np.random.default_rng(0)
    rows = healthy("A", 200, 10.0) + healthy("B", 150, 10.0)
    data = frame(rows)
    probabilities = rng.random(len(rows)) ** 3
    guard = rng.random(len(rows)) < 0.02
    exposure = healthy_exposure(data)
    grid = np.linspace(0.0, 1.0, 41)
    fast = episodes_by_threshold(probabilities, guard, exposure, grid)
    slow = [episodes((probabilities >= t) | guard, exposure) for t in grid]
    assert fast.tolist() == slow


def event_rows(onset: float, times: list[float], span_s: float = NAN) -> list[tuple]:
    return [("F1", t, "overcharge", "E1", onset, int(t >= onset - 600), "", span_s) for t in times]


def test_lead_time_is_the_first_flag_within_the_event_s_window():
    onset = 10_000.0
    times = [onset - 2400, onset - 1500, onset - 600, onset - 300, onset, onset + 30]
    data = frame(event_rows(onset, times))
    scores = np.array([0.9, 0.1, 0.2, 0.95, 0.99, 0.99])
    windows = event_windows(data)  # no span known: the last 30 minutes
    none = np.zeros(len(times), dtype=bool)
    assert lead_minutes(windows, time_of(data), scores, none, 0.5).tolist() == [5.0]
    # a guard firing earlier (25 minutes ahead) sets the lead
    guard = np.array([False, True, False, False, False, False])
    assert lead_minutes(windows, time_of(data), scores, guard, 0.5).tolist() == [25.0]
    # with the precursor span known (10 min), the 25-minute-early flag is outside the event
    spanned = frame(event_rows(onset, times, span_s=600.0))
    assert lead_minutes(event_windows(spanned), time_of(spanned), scores, guard, 0.5) == [5.0]
    # flagged only after onset: not warned
    late = lead_minutes(windows, time_of(data), scores, none, 0.99)
    assert late.tolist() == [0.0]  # the onset reading itself counts, at 0 minutes


def test_leads_by_threshold_equals_lead_minutes_at_each_threshold():
    rng = np.random.default_rng(1)
    times = list(np.arange(0.0, 1800.0, 10.0))
    data = frame(event_rows(1800.0, times))
    scores = np.sort(rng.random(len(times)))  # rising towards onset
    guard = np.zeros(len(times), dtype=bool)
    windows = event_windows(data)
    grid = np.array([0.1, 0.5, 0.9, 0.999])
    together = leads_by_threshold(windows, time_of(data), scores, guard, grid)
    for index, threshold in enumerate(grid):
        one = lead_minutes(windows, time_of(data), scores, guard, threshold)
        np.testing.assert_array_equal(together[index], one)


def test_event_metrics_count_unwarned_events_as_zero():
    leads = np.array([12.0, 6.0, np.nan, 3.0])
    spans = np.array([1200.0, 900.0, 300.0, 1800.0])
    metrics = event_metrics(leads, spans)
    assert metrics["events_warned_fraction"] == 0.75
    assert metrics["events_warned_5min_fraction"] == 0.5
    assert metrics["events_warned_10min_fraction"] == 0.25
    assert metrics["lead_time_min_median"] == pytest.approx(4.5)  # of 12, 6, 0, 3
    assert metrics["lead_time_min_worst"] == 0.0
    assert metrics["long_span_events"] == 3
    assert metrics["long_span_warned_5min_fraction"] == pytest.approx(2 / 3)


def test_thresholds_on_the_false_alarm_budget():
    """Module A's healthy scores peak at 0.6 in two separate runs, B's at 0.3 once: over
    4,000 module-hours, one episode is 0.25 per 1,000 h, three are 0.75."""
    step = 3600.0 * 1000 / 500  # 4 modules-worth: 2 modules x 1,000 h over 500 readings
    rows = healthy("A", 501, step) + healthy("B", 501, step)
    scores = np.full(len(rows), 0.01)
    scores[[100, 300]] = 0.6  # A: two episodes at any threshold <= 0.6
    scores[501 + 200] = 0.3  # B: one episode at any threshold <= 0.3
    onset = 20_000.0
    rows += event_rows(onset, list(np.arange(onset - 1200, onset + 1, 10.0)))
    scores = np.r_[scores, np.linspace(0.05, 0.99, len(rows) - len(scores))]
    data = frame(rows)
    none = np.zeros(len(rows), dtype=bool)
    assert healthy_exposure(data).hours == pytest.approx(2000.0)
    # budget 1.1 per 1,000 h over 2,000 h: 2.2 episodes -> above 0.3 (B's) is enough: A's
    # two runs and their two minutes standing are 2.07
    choice = choose_thresholds(data, scores, none, none, budget_per_1000h=1.1)
    assert 0.3 < choice.thresholds.warning <= THRESHOLD_GRID[THRESHOLD_GRID > 0.3][0]
    # alarm: no episode at all -> above 0.6
    assert 0.6 < choice.thresholds.alarm <= THRESHOLD_GRID[THRESHOLD_GRID > 0.6][0]
    # a tighter budget (0.5 per 1,000 h = 1 episode): also above 0.6
    tight = choose_thresholds(data, scores, none, none, budget_per_1000h=0.5)
    assert tight.thresholds.warning > 0.6
    assert list(choice.curve.columns) == [
        "threshold",
        "false_alarms_per_1000h",
        "events_warned_5min_fraction",
        "lead_time_min_median",
    ]


def test_evaluate_counts_guards_and_false_alarms_per_lookalike():
    rows = healthy("A", 40, 90.0, "fast_charge") + healthy("B", 40, 90.0)
    scores = np.full(len(rows), 0.01)
    scores[10] = 0.8  # a warning-level false alarm during A's fast charge
    guards = np.zeros(len(rows), dtype=np.int8)
    guards[50] = ALARM  # an alarm-level guard on B (no look-alike)
    data = frame(rows)
    metrics = evaluate(data, scores, Thresholds(warning=0.5, alarm=0.9), guards)
    hours = 2 * 39 * 90.0 / 3600.0
    standing = 60.0 / STANDING_REPEAT_S  # each flag stood a minute (the 90 s, capped)
    assert metrics["warning_false_alarm_episodes"] == pytest.approx(2 + 2 * standing)
    assert metrics["alarm_false_alarm_episodes"] == pytest.approx(1 + standing)  # the guard
    assert metrics["warning_false_alarms_per_1000h"] == pytest.approx(
        1000.0 * (2 + 2 * standing) / hours
    )
    fast_charge_hours = 40 * 10.0 / 3600.0  # readings in the look-alike x 10 s
    assert metrics["warning_false_alarms_per_1000h_fast_charge"] == pytest.approx(
        1000.0 / fast_charge_hours  # episodes that start during it, per hour in it
    )
    assert WARNING < ALARM
