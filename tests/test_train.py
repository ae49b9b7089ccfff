"""The training run's splits and its leave-one-family-out evaluation, with the real
simulator and the real training code (a small configuration with small hold-out models)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from src.training.config import EVALUATION_EVENTS, TRAINING_EVENTS, TrainingConfig, small_config
from src.training.train import TrainingResult, train


def test_each_split_is_its_own_draw_with_its_own_events():
    config = TrainingConfig()
    sites = config.sites()
    assert set(sites) == {"train", "validation", "test", "widened"}
    assert len({site.seed for site in sites.values()}) == 4
    assert sites["train"].n_fault_events == TRAINING_EVENTS
    assert sites["test"].n_fault_events == sites["widened"].n_fault_events == EVALUATION_EVENTS
    # validation keeps the site's own count: the healthy exposure the alarm level rests on
    assert sites["validation"].n_fault_events == config.simulation.n_fault_events
    small = small_config().sites()
    assert {site.n_fault_events for site in small.values()} == {
        small_config().simulation.n_fault_events
    }


@pytest.fixture(scope="module")
def with_holdouts() -> TrainingResult:
    config = small_config()
    config = replace(
        config, holdout_model=replace(config.holdout_model, n_estimators=15, max_depth=3)
    )
    return train(config)


def test_every_fault_kind_and_chemistry_is_left_out_once(with_holdouts):
    frame = with_holdouts.test.frame
    events = frame[frame["event_id"] != ""].drop_duplicates("event_id")
    families = [("fault_type", kind) for kind in sorted(set(events["fault_type"]))]
    families += [("chemistry", name) for name in sorted(set(frame["chemistry"]))]
    assert len(families) >= 6  # five fault kinds; the small test site may hold one chemistry
    for column, value in families:
        prefix = f"holdout/{column}/{value}/"
        # judged on that family's test events alone (the small site's NMC rack may have none)
        expected = int((events[column] == value).sum())
        assert with_holdouts.metrics.get(prefix + "warning_events", 0) == expected, prefix
        for level in ("warning", "alarm"):
            assert with_holdouts.metrics[prefix + f"{level}_false_alarms_per_1000h"] >= 0.0
            if expected:
                warned = with_holdouts.metrics[prefix + f"{level}_events_warned_5min_fraction"]
                assert 0.0 <= warned <= 1.0


def test_false_alarms_are_reported_per_look_alike_at_both_levels(with_holdouts):
    kinds = {
        name.removeprefix("test_warning_false_alarms_per_1000h_")
        for name in with_holdouts.metrics
        if name.startswith("test_warning_false_alarms_per_1000h_")
    }
    assert kinds, "no look-alike on the test site's healthy modules"
    for kind in kinds:
        assert f"test_alarm_false_alarms_per_1000h_{kind}" in with_holdouts.metrics
