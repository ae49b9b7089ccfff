"""The safety numbers, on cases small enough to check by hand: the alarm threshold, lead
times before onset, and false-alarm episodes on healthy modules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.training.evaluate import choose_threshold, evaluate


def test_threshold_is_the_highest_that_keeps_the_recall():
    labels = np.array([0, 0, 1, 1, 1, 1])
    scores = np.array([0.10, 0.40, 0.35, 0.80, 0.70, 0.90])
    # positives ranked 0.9, 0.8, 0.7, 0.35: 3 of 4 from 0.7 on, all 4 from 0.35 on
    assert choose_threshold(labels, scores, target_recall=0.75) == pytest.approx(0.70)
    assert choose_threshold(labels, scores, target_recall=1.0) == pytest.approx(0.35)
    assert choose_threshold(labels, scores, target_recall=0.25) == pytest.approx(0.90)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (module_id, timestamp_s, fault_type, event_id, onset_s, hazardous)."""
    return pd.DataFrame(
        rows, columns=["module_id", "timestamp_s", "fault_type", "event_id", "onset_s", "hazardous"]
    )


def test_lead_time_is_the_first_flag_within_the_lookback_before_onset():
    onset = 10_000.0
    times = [onset - 2400, onset - 1500, onset - 600, onset - 300, onset, onset + 30]
    rows = [("F1", t, "overcharge", "E1", onset, int(t >= onset - 600)) for t in times]
    # flagged: 40 min before (outside the 30-min lookback), then 5 min before, and after onset
    scores = np.array([0.9, 0.1, 0.2, 0.95, 0.99, 0.99])
    metrics = evaluate(frame(rows), scores, threshold=0.5)
    assert metrics["events"] == 1
    assert metrics["events_warned_fraction"] == 1.0
    assert metrics["lead_time_min_median"] == pytest.approx(5.0)
    assert metrics["lead_time_min_worst"] == pytest.approx(5.0)
    assert metrics["events_warned_5min_fraction"] == 1.0
    assert metrics["events_warned_10min_fraction"] == 0.0


def test_an_event_flagged_only_after_onset_is_not_warned():
    onset = 5_000.0
    rows = [
        ("F2", t, "internal_short", "E2", onset, int(t >= onset - 600))
        for t in (4000.0, 4600.0, 5010.0)
    ]
    metrics = evaluate(frame(rows), np.array([0.1, 0.1, 0.99]), threshold=0.5)
    assert metrics["events_warned_fraction"] == 0.0


def test_false_alarm_episodes_per_healthy_module_hour():
    nan = float("nan")
    rows = []
    # module A: 2 hours, flags in two separate runs -> 2 episodes
    flags_a = [0, 1, 1, 0, 0, 1, 0, 0, 0]
    rows += [("A", 900.0 * i, "none", "", nan, 0) for i in range(len(flags_a))]
    # module B: 2 hours, never flagged
    rows += [("B", 900.0 * i, "none", "", nan, 0) for i in range(9)]
    # module C: flagged from its first reading: 1 episode (a run starting at the series start)
    flags_c = [1, 1, 0]
    rows += [("C", 1800.0 * i, "none", "", nan, 0) for i in range(3)]
    scores = np.array(flags_a + [0] * 9 + flags_c, dtype=float)
    metrics = evaluate(frame(rows), scores, threshold=0.5)
    assert metrics["healthy_module_hours"] == pytest.approx(2.0 + 2.0 + 1.0)
    assert metrics["false_alarms_per_module_hour"] == pytest.approx(3 / 5.0)
    assert metrics["healthy_flagged_fraction"] == pytest.approx(5 / 21)


def test_precision_and_recall_at_the_threshold():
    nan = float("nan")
    rows = [("H", float(i), "none", "", nan, 0) for i in range(4)]
    rows += [("F", 100.0 + i, "cooling_failure", "E3", 110.0, 1) for i in range(4)]
    scores = np.array([0.1, 0.6, 0.2, 0.1, 0.9, 0.8, 0.3, 0.7])
    metrics = evaluate(frame(rows), scores, threshold=0.5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["precision"] == pytest.approx(3 / 4)
