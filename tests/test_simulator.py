"""The simulator against its contract: shape, labels, physics ranges, precursor order, rates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from src.data.signals import HAZARD_HORIZON_S, SAMPLE_PERIOD_S, SIGNAL_NAMES, SIGNALS
from src.data.simulator import COLUMNS, FAULT_TYPES, SimulationConfig, simulate

SMALL = SimulationConfig(
    n_racks=2, modules_per_rack=6, duration_s=2 * 3600.0, n_fault_events=4, seed=11
)
FAULTY = SimulationConfig(
    n_racks=4, modules_per_rack=6, duration_s=2 * 3600.0, n_fault_events=24, seed=5
)
"""Every module faulty, six events per fault type: enough to judge the precursor order."""


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def faulty() -> pd.DataFrame:
    return simulate(FAULTY)


def _despiked(series: pd.Series) -> np.ndarray:
    """Gap-filled rolling median: isolated outliers must not count as precursors."""
    smooth = series.rolling(5, center=True, min_periods=1).median()
    return smooth.interpolate(limit_direction="both").to_numpy()


def _first_sustained(timestamps: np.ndarray, above: np.ndarray, readings: int = 3) -> float:
    """First time a condition holds for `readings` consecutive readings (NaN if never)."""
    runs = np.convolve(above.astype(int), np.ones(readings, dtype=int), "valid") == readings
    hits = np.flatnonzero(runs)
    return float(timestamps[hits[0]]) if hits.size else np.nan


def _precursor_leads_min(event: pd.DataFrame) -> dict[str, float]:
    """Minutes before onset at which each precursor first crosses its detection threshold."""
    ts = event["timestamp_s"].to_numpy()
    onset = float(event["onset_s"].iloc[0])
    temp = _despiked(event["cell_temp_max_c"])
    rate = np.full(ts.size, np.nan)
    rate[6:] = (temp[6:] - temp[:-6]) / (ts[6:] - ts[:-6]) * 60.0  # degC/min over ~60 s
    spread = _despiked(event["cell_voltage_avg_v"] - event["cell_voltage_min_v"])
    pressure = _despiked(event["pressure_kpa"])
    healthy = ts < ts[0] + 1800.0  # every faulty series starts with an hour of healthy data
    crossings = {
        "h2": _despiked(event["h2_ppm"]) > 20.0,
        "co": _despiked(event["co_ppm"]) > 10.0,
        "temp_rate": rate > 1.5,
        "voltage_spread": spread > np.quantile(spread[healthy], 0.99) + 0.1,
        "pressure": pressure > np.median(pressure[healthy]) + 0.5,
        "smoke": _despiked(event["smoke_obscuration_pct_per_m"]) > 0.5,
    }
    return {name: (onset - _first_sustained(ts, above)) / 60.0 for name, above in crossings.items()}


def test_same_config_gives_identical_frames(small: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), small)


def test_different_seed_gives_different_data(small: pd.DataFrame) -> None:
    other = simulate(replace(SMALL, seed=12))
    assert not np.allclose(
        other["cell_temp_avg_c"].to_numpy()[:500],
        small["cell_temp_avg_c"].to_numpy()[:500],
        equal_nan=True,
    )


def test_a_module_does_not_depend_on_how_many_others_are_generated() -> None:
    few = simulate(replace(SMALL, n_racks=1, n_fault_events=0))
    many = simulate(replace(SMALL, n_racks=3, n_fault_events=0))
    pd.testing.assert_frame_equal(few, many[many["rack_id"] == "R01"].reset_index(drop=True))


def test_columns_order_and_dtypes(small: pd.DataFrame) -> None:
    assert tuple(small.columns) == COLUMNS
    assert COLUMNS[3:17] == SIGNAL_NAMES
    for name in ("module_id", "rack_id", "fault_type", "event_id"):
        assert pd.api.types.is_string_dtype(small[name]), name
    for name in ("timestamp_s", *SIGNAL_NAMES, "onset_s"):
        assert small[name].dtype == np.float64, name
    assert small["hazardous"].dtype == np.int8
    assert small["module_id"].str.fullmatch(r"R\d\d-M\d\d").all()
    assert (small["module_id"].str[:3] == small["rack_id"]).all()


def test_rows_sorted_with_jittered_ten_second_period(small: pd.DataFrame) -> None:
    assert small["module_id"].is_monotonic_increasing
    assert small["module_id"].nunique() == SMALL.n_racks * SMALL.modules_per_rack
    gaps = small.groupby("module_id")["timestamp_s"].diff().dropna()
    assert gaps.min() >= SAMPLE_PERIOD_S - 2 * SMALL.timestamp_jitter_s
    assert gaps.median() == pytest.approx(SAMPLE_PERIOD_S, abs=0.05)
    on_time = gaps[gaps < 15.0]
    assert on_time.std() > 0.1  # jittered, not a perfect grid
    assert 0.001 < (gaps >= 19.0).mean() < 0.015  # lost readings, ~0.5 %


def test_values_within_sensor_limits(faulty: pd.DataFrame) -> None:
    for signal in SIGNALS:
        values = faulty[signal.name].dropna()
        assert values.between(signal.sensor_min, signal.sensor_max).all(), signal.name


def test_healthy_readings_mostly_within_normal_range(small: pd.DataFrame) -> None:
    healthy = small[small["fault_type"] == "none"]
    for signal in SIGNALS:
        values = healthy[signal.name].dropna()
        inside = values.between(signal.normal_low, signal.normal_high).mean()
        assert inside > 0.97, (signal.name, inside)


def test_labels_follow_the_onset_horizon_definition(faulty: pd.DataFrame) -> None:
    to_onset = faulty["onset_s"] - faulty["timestamp_s"]
    expected = ((to_onset >= 0) & (to_onset <= HAZARD_HORIZON_S)) | (to_onset < 0)
    np.testing.assert_array_equal(faulty["hazardous"].to_numpy(), expected.astype(np.int8))
    per_event = faulty[faulty["hazardous"] == 1].groupby("event_id").size()
    assert per_event.min() >= 0.9 * (HAZARD_HORIZON_S + 60.0) / SAMPLE_PERIOD_S


def test_healthy_modules_carry_no_event(small: pd.DataFrame) -> None:
    healthy = small[small["fault_type"] == "none"]
    assert len(healthy) > 0
    assert (healthy["hazardous"] == 0).all()
    assert healthy["onset_s"].isna().all()
    assert (healthy["event_id"] == "").all()
    lengths = healthy.groupby("module_id")["timestamp_s"].agg(lambda t: t.iloc[-1] - t.iloc[0])
    assert lengths.min() > SMALL.duration_s - 3 * SAMPLE_PERIOD_S


def test_fault_events_spread_over_types_and_racks(faulty: pd.DataFrame) -> None:
    events = faulty[faulty["event_id"] != ""].groupby("event_id").first()
    assert len(events) == FAULTY.n_fault_events
    assert events["module_id"].is_unique
    assert events["fault_type"].value_counts().to_dict() == dict.fromkeys(FAULT_TYPES, 6)
    assert events["rack_id"].nunique() == FAULTY.n_racks
    assert (events.groupby("module_id")["onset_s"].nunique() == 1).all()


def test_faulty_series_start_healthy_and_end_shortly_after_onset(faulty: pd.DataFrame) -> None:
    for _, event in faulty.groupby("event_id"):
        onset = event["onset_s"].iloc[0]
        first, last = event["timestamp_s"].iloc[[0, -1]]
        # One hour of healthy data, then a fault that lasts at least 15 minutes.
        assert onset - first >= FAULTY.min_healthy_before_fault_s + 15 * 60 - SAMPLE_PERIOD_S
        assert 30.0 <= last - onset <= 60.0
        after = event[event["timestamp_s"] > onset + 30.0]
        assert after["cell_temp_max_c"].max() > 200.0  # runaway, not a warm module
        assert after["cell_voltage_min_v"].min() < 2.0


def test_precursors_appear_in_order_before_onset(faulty: pd.DataFrame) -> None:
    leads = pd.DataFrame([_precursor_leads_min(event) for _, event in faulty.groupby("event_id")])
    assert leads.notna().all().all(), leads
    median = leads.median()
    order = ["h2", "co", "temp_rate", "voltage_spread", "pressure", "smoke"]
    assert median[order].is_monotonic_decreasing, median
    assert median["smoke"] > 0.0
    assert 15.0 <= median["h2"] <= 30.0
    assert 8.0 <= median["co"] <= 15.0
    assert median["smoke"] <= 2.0
    # Per event too: the ordering is the rule, not an artefact of averaging.
    assert (leads["h2"] > leads["co"]).mean() >= 0.9
    assert (leads["co"] > leads["temp_rate"]).mean() >= 0.8
    assert (leads["temp_rate"] > leads["smoke"]).mean() >= 0.9


def test_overcharge_drives_soc_and_max_cell_voltage_before_gas(faulty: pd.DataFrame) -> None:
    for _, event in faulty[faulty["fault_type"] == "overcharge"].groupby("event_id"):
        ts = event["timestamp_s"].to_numpy()
        onset = event["onset_s"].iloc[0]
        overvoltage = _first_sustained(ts, _despiked(event["cell_voltage_max_v"]) > 4.25)
        full = _first_sustained(ts, _despiked(event["soc_pct"]) > 99.5)
        gas = onset - 60.0 * _precursor_leads_min(event)["h2"]
        assert overvoltage < gas
        assert full < onset
        assert (event.loc[event["timestamp_s"] > overvoltage, "current_a"].median()) > 50.0


def test_external_heating_warms_the_inlet_before_onset(faulty: pd.DataFrame) -> None:
    for _, event in faulty[faulty["fault_type"] == "external_heating"].groupby("event_id"):
        onset = event["onset_s"].iloc[0]
        ambient = _despiked(event["ambient_temp_c"])
        ts = event["timestamp_s"].to_numpy()
        before_fault = ambient[ts < onset - 46 * 60]
        at_onset = ambient[(ts > onset - 60) & (ts <= onset)]
        assert at_onset.mean() - np.median(before_fault) > 5.0


def test_missing_values_outliers_and_dropouts_at_configured_rates() -> None:
    config = replace(
        SMALL,
        n_fault_events=0,
        missing_rate=0.02,
        outlier_rate=0.005,
        dropouts_per_module_day=0.0,
    )
    frame = simulate(config)
    values = frame[list(SIGNAL_NAMES)]
    assert values.isna().to_numpy().mean() == pytest.approx(0.02, rel=0.15)
    # Healthy gas and smoke never leave their normal range except through a spike.
    spiky = ["h2_ppm", "co_ppm", "voc_ppm", "smoke_obscuration_pct_per_m"]
    spikes = (values[spiky] > [15.0, 15.0, 25.0, 0.4]).to_numpy().mean()
    assert spikes == pytest.approx(0.005 * 0.98, rel=0.25)

    with_dropouts = simulate(replace(config, missing_rate=0.0, dropouts_per_module_day=48.0))
    gaps = with_dropouts[list(SIGNAL_NAMES)].isna()
    run_starts = gaps & ~gaps.groupby(with_dropouts["module_id"]).shift(fill_value=False)
    expected = 48.0 * config.duration_s / 86400.0 * config.n_racks * config.modules_per_rack
    assert run_starts.to_numpy().sum() == pytest.approx(expected, rel=0.4)
    assert gaps.to_numpy().sum() / run_starts.to_numpy().sum() > 10  # minutes, not readings


def test_default_rates_leave_gaps_and_spikes_in_every_kind_of_module(faulty: pd.DataFrame) -> None:
    missing = faulty[list(SIGNAL_NAMES)].isna().to_numpy().mean()
    assert 0.003 < missing < 0.012  # 0.5 % missing plus a few drop-outs
    before = faulty[faulty["timestamp_s"] < faulty["onset_s"] - 50 * 60]
    assert (before["h2_ppm"] > 15.0).sum() >= 1  # spikes also hit modules that will fail


def test_progress_reports_every_module() -> None:
    calls: list[tuple[int, int]] = []
    simulate(replace(SMALL, n_racks=1, n_fault_events=1), progress=lambda *a: calls.append(a))
    total = SMALL.modules_per_rack
    assert calls == [(done, total) for done in range(1, total + 1)]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"n_racks": 0}, "n_racks"),
        ({"modules_per_rack": 100}, "modules_per_rack"),
        ({"n_fault_events": 13}, "n_fault_events"),
        ({"missing_rate": 1.0}, "rates"),
        ({"outlier_rate": -0.1}, "rates"),
        ({"dropouts_per_module_day": -1.0}, "drop-outs"),
        ({"duration_s": 30.0}, "duration_s"),
        ({"timestamp_jitter_s": 5.0}, "timestamp_jitter_s"),
    ],
)
def test_invalid_config_is_rejected(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SMALL, **bad)
