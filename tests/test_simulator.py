"""The simulator against its contract: shape, labels, chemistry, patterns, look-alikes, rates.

Everything here runs the real simulator (no mocks). The default config (8 racks x 16
modules, 3 h) took about 0.5 s and the large false-alarm config (25 racks x 16 modules,
6 h, 2,400 module-hours) about 2.5 s on the 2-core development machine; recorded here,
not asserted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from src.data.chemistry import LFP, NMC
from src.data.signals import HAZARD_HORIZON_S, SAMPLE_PERIOD_S, SIGNAL_NAMES, SIGNALS
from src.data.simulator import (
    COLUMNS,
    FAULT_TYPES,
    LOOKALIKE_KINDS,
    PRECURSOR_PATTERNS,
    SimulationConfig,
    fault_plan,
    simulate,
    widened_config,
)

SMALL = SimulationConfig(
    n_racks=2, modules_per_rack=6, duration_s=2 * 3600.0, n_fault_events=4, seed=11
)
FAULTY = SimulationConfig(
    n_racks=10,
    modules_per_rack=6,
    duration_s=2 * 3600.0,
    n_fault_events=60,
    seed=5,
    lfp_fraction=0.5,
    clock_jumps_per_module_day=0.0,
    duplicate_rate=0.0,
    gas_plume_rack_fraction=0.0,
    gas_offset_module_fraction=0.0,
    gas_offset_fast_charge_fraction=0.0,
    gas_drift_module_fraction=0.0,
)
"""Every module faulty, 12 events per kind, every pattern several times, half of them on
NMC racks (whose CO is strong enough to time the gas order). The BMS clock is
kept true and gas look-alikes are off, so that precursor timing can be read off the frame;
other sensor realities stay on."""
SITE = SimulationConfig(seed=3)
"""The default site: 128 modules, 3 h, 40 events."""


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def faulty() -> pd.DataFrame:
    return simulate(FAULTY)


@pytest.fixture(scope="module")
def site() -> pd.DataFrame:
    return simulate(SITE)


def _despiked(series: pd.Series) -> np.ndarray:
    """Gap-filled rolling median: isolated outliers must not count as precursors."""
    smooth = series.rolling(5, center=True, min_periods=1).median()
    return smooth.interpolate(limit_direction="both").to_numpy()


def _first_sustained(timestamps: np.ndarray, above: np.ndarray, readings: int = 3) -> float:
    """First time a condition holds for `readings` consecutive readings (NaN if never)."""
    runs = np.convolve(above.astype(int), np.ones(readings, dtype=int), "valid") == readings
    hits = np.flatnonzero(runs)
    return float(timestamps[hits[0]]) if hits.size else np.nan


def _events(frame: pd.DataFrame, config: SimulationConfig):
    """(event rows, plan row, fault start, onset) per event of a frame without clock jumps."""
    plan = fault_plan(config)
    for event_id, event in frame[frame["event_id"] != ""].groupby("event_id"):
        onset = float(event["onset_s"].iloc[0])
        yield event, plan.loc[event_id], onset - plan.loc[event_id, "span_s"], onset


def _rise_lead_min(event: pd.DataFrame, column: str, start: float, onset: float, by: float):
    """Minutes before onset at which a signal first stays `by` above its pre-fault median."""
    event = event[event["timestamp_s"] <= onset]  # runaway values must not fill gaps
    ts = event["timestamp_s"].to_numpy()
    values = _despiked(event[column])
    before = (ts >= start - 600.0) & (ts < start)
    above = values > np.median(values[before]) + by
    return (onset - _first_sustained(ts, above)) / 60.0


# --- determinism, independence, shape ---------------------------------------------------


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
    for name in (
        "module_id",
        "rack_id",
        "fault_type",
        "event_id",
        "chemistry",
        "precursor_pattern",
        "lookalike",
    ):
        assert pd.api.types.is_string_dtype(small[name]), name
    for name in ("timestamp_s", *SIGNAL_NAMES, "onset_s"):
        assert small[name].dtype == np.float64, name
    assert small["hazardous"].dtype == np.int8
    assert small["module_id"].str.fullmatch(r"R\d\d-M\d\d").all()
    assert (small["module_id"].str[:3] == small["rack_id"]).all()
    assert set(small["chemistry"]) <= {"LFP", "NMC"}
    assert set(small["precursor_pattern"]) <= {"", *PRECURSOR_PATTERNS}
    kinds = {kind for label in small["lookalike"] for kind in label.split("+") if kind}
    assert kinds <= set(LOOKALIKE_KINDS)


def test_rows_sorted_by_reported_time_with_jitter_gaps_and_duplicates() -> None:
    config = replace(SMALL, n_fault_events=0, clock_jumps_per_module_day=0.0, duplicate_rate=0.01)
    frame = simulate(config)
    assert frame["module_id"].is_monotonic_increasing
    assert frame["module_id"].nunique() == config.n_racks * config.modules_per_rack
    gaps = frame.groupby("module_id")["timestamp_s"].diff().dropna()
    assert gaps.min() == 0.0  # a duplicated reading: same timestamp, sent twice
    assert (gaps == 0.0).mean() == pytest.approx(config.duplicate_rate, rel=0.3)
    sent = gaps[gaps > 0.0]
    assert sent.min() >= SAMPLE_PERIOD_S - 2 * config.timestamp_jitter_s
    assert sent.median() == pytest.approx(SAMPLE_PERIOD_S, abs=0.05)
    assert sent[sent < 15.0].std() > 0.1  # jittered, not a perfect grid
    assert 0.001 < (sent >= 19.0).mean() < 0.015  # lost readings, ~0.5 %


def test_clock_jumps_move_timestamps_but_not_labels() -> None:
    steady = replace(SMALL, n_fault_events=6, duplicate_rate=0.0, clock_jumps_per_module_day=0.0)
    jumpy = replace(steady, clock_jumps_per_module_day=48.0)
    calm, stepped = simulate(steady), simulate(jumpy)
    gaps = stepped.groupby("module_id")["timestamp_s"].diff().dropna()
    assert (gaps > 30.0).mean() > 5 * (
        calm.groupby("module_id")["timestamp_s"].diff().dropna() > 30.0
    ).mean()
    assert stepped.groupby("module_id")["timestamp_s"].is_monotonic_increasing.all()
    for name in ("hazardous", "cell_temp_max_c", "h2_ppm"):
        # The same readings and the same labels, only sent under other timestamps.
        left = calm.groupby("module_id")[name].apply(lambda s: np.sort(s.to_numpy()))
        right = stepped.groupby("module_id")[name].apply(lambda s: np.sort(s.to_numpy()))
        for a, b in zip(left, right, strict=True):
            np.testing.assert_array_equal(a, b)
    hazardous_temp = calm.loc[calm["hazardous"] == 1].groupby("module_id")["cell_temp_max_c"].sum()
    hazardous_temp_jumpy = (
        stepped.loc[stepped["hazardous"] == 1].groupby("module_id")["cell_temp_max_c"].sum()
    )
    pd.testing.assert_series_equal(hazardous_temp, hazardous_temp_jumpy)


def test_values_within_sensor_limits(faulty: pd.DataFrame) -> None:
    for signal in SIGNALS:
        values = faulty[signal.name].dropna()
        assert values.between(signal.sensor_min, signal.sensor_max).all(), signal.name


def test_healthy_readings_mostly_within_normal_range(site: pd.DataFrame) -> None:
    # Calibration offsets and drift put a few healthy gas sensors above their nominal
    # range, as on real sites; look-alikes are excluded (they are meant to stand out).
    healthy = site[(site["fault_type"] == "none") & (site["lookalike"] == "")]
    for signal in SIGNALS:
        values = healthy[signal.name].dropna()
        inside = values.between(signal.normal_low, signal.normal_high).mean()
        assert inside > 0.95, (signal.name, inside)


# --- chemistry ---------------------------------------------------------------------------


def test_chemistry_is_per_rack_in_the_configured_share(site: pd.DataFrame) -> None:
    per_rack = site.groupby("rack_id")["chemistry"].agg(["nunique", "first"])
    assert (per_rack["nunique"] == 1).all()
    assert (per_rack["first"] == "NMC").sum() == round(SITE.n_racks * (1 - SITE.lfp_fraction))
    only_lfp = simulate(replace(SMALL, lfp_fraction=1.0, n_fault_events=0))
    assert set(only_lfp["chemistry"]) == {"LFP"}
    events = site[site["event_id"] != ""].groupby("event_id")["chemistry"].first()
    assert set(events) == {"LFP", "NMC"}  # leave-one-chemistry-out has events on both sides


@pytest.mark.parametrize("chemistry", [LFP, NMC], ids=["LFP", "NMC"])
def test_healthy_voltages_stay_within_the_chemistry_limits(site: pd.DataFrame, chemistry) -> None:
    healthy = site[
        (site["fault_type"] == "none")
        & (site["chemistry"] == chemistry.name)
        & ~site["lookalike"].str.contains("sensor_spike|balancing")
    ]
    low = healthy["cell_voltage_min_v"].dropna()
    high = healthy["cell_voltage_max_v"].dropna()
    assert low.min() >= chemistry.min_operating_v
    assert high.max() <= chemistry.max_operating_v
    at_rest = healthy[healthy["soc_pct"].between(10.0, 90.0) & (healthy["current_a"].abs() < 1.0)]
    resting = at_rest["cell_voltage_avg_v"].dropna()
    if chemistry is LFP:  # the flat plateau
        assert resting.quantile(0.02) > 3.15
        assert resting.max() < 3.4
    else:
        assert resting.quantile(0.95) - resting.quantile(0.05) > 0.3


def test_lfp_vents_less_gas_than_nmc_and_hydrogen_rich(faulty: pd.DataFrame) -> None:
    frame = faulty
    peaks = (
        frame[frame["timestamp_s"] > frame["onset_s"] + 30.0]
        .groupby("event_id")
        .agg(
            chemistry=("chemistry", "first"),
            h2=("h2_ppm", "median"),
            co=("co_ppm", "median"),
            voc=("voc_ppm", "median"),
        )
    )
    total = peaks[["h2", "co", "voc"]].sum(axis=1).groupby(peaks["chemistry"]).median()
    assert total["LFP"] < 0.5 * total["NMC"]
    ratio = (peaks["co"] / peaks["h2"]).groupby(peaks["chemistry"]).median()
    assert ratio["LFP"] < 0.5 < 1.0 < ratio["NMC"]


# --- fault kinds, spans and precursor patterns ----------------------------------------


def test_fault_events_spread_over_kinds_racks_and_patterns(faulty: pd.DataFrame) -> None:
    events = faulty[faulty["event_id"] != ""].groupby("event_id").first()
    assert len(events) == FAULTY.n_fault_events
    assert events["module_id"].is_unique
    per_kind = FAULTY.n_fault_events // len(FAULT_TYPES)
    assert events["fault_type"].value_counts().to_dict() == dict.fromkeys(FAULT_TYPES, per_kind)
    assert events["rack_id"].nunique() == FAULTY.n_racks
    assert set(events["precursor_pattern"]) == set(PRECURSOR_PATTERNS)
    assert (events.groupby("module_id")["onset_s"].nunique() == 1).all()
    healthy = simulate(replace(SMALL, n_fault_events=0))
    assert (healthy["precursor_pattern"] == "").all()


def test_precursor_spans_reach_from_minutes_to_most_of_an_hour() -> None:
    plan = fault_plan(replace(SITE, n_racks=20, n_fault_events=200))
    spans_min = plan["span_s"] / 60.0
    assert spans_min.min() < 4.0
    assert spans_min.max() > 35.0
    assert spans_min.between(SITE.span_min_s / 60.0, SITE.span_max_s / 60.0).all()
    fast = plan["precursor_pattern"] == "fast"
    assert (spans_min[fast] < SITE.fast_span_s / 60.0).all()
    assert (spans_min[~fast] >= SITE.fast_span_s / 60.0).all()
    assert fast.mean() == pytest.approx(SITE.fast_share, abs=0.01)
    assert (plan["precursor_pattern"] == "gas_late").mean() == pytest.approx(
        SITE.gas_late_share, abs=0.01
    )


def test_faulty_series_start_healthy_and_end_shortly_after_onset(faulty: pd.DataFrame) -> None:
    runaway = []
    for event, plan, start, onset in _events(faulty, FAULTY):
        first, last = event["timestamp_s"].iloc[[0, -1]]
        assert start - first >= FAULTY.min_healthy_before_fault_s - SAMPLE_PERIOD_S
        assert plan["span_s"] >= FAULTY.span_min_s
        assert 30.0 <= last - onset <= 60.0
        after = event[event["timestamp_s"] > onset + 30.0]
        temps = after[["cell_temp_max_c", "cell_temp_avg_c"]]
        volts = after[["cell_voltage_min_v", "cell_voltage_avg_v"]]
        if temps.isna().all().all() and volts.isna().all().all():
            continue  # the BMS lost contact as the module burned
        # Runaway, not a warm module; a stuck or blank sensor may hide one of the signs.
        runaway.append(int(temps.max().max() > 140.0) + int(volts.min().min() < 2.0))
    assert np.mean(np.array(runaway) == 2) >= 0.9
    assert min(runaway) >= 1


def test_labels_follow_the_onset_horizon_definition(faulty: pd.DataFrame) -> None:
    # FAULTY's clock is true, so its timestamps are the true times the label uses.
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
    readings = healthy.groupby("module_id").size()
    assert readings.min() >= 0.98 * SMALL.duration_s / SAMPLE_PERIOD_S


def test_gas_led_patterns_set_the_gas_order() -> None:
    """Each gas is timed where it first reaches a fifth of its own rise by onset."""
    config = replace(FAULTY, lfp_fraction=0.0, seed=6)  # NMC: both H2 and CO are strong
    orders: dict[str, list[float]] = {"gas_early": [], "co_first": [], "gas_together": []}
    for event, plan, start, onset in _events(simulate(config), config):
        if plan["precursor_pattern"] not in orders:
            continue
        event = event[event["timestamp_s"] <= onset]
        ts = event["timestamp_s"].to_numpy()
        leads = {}
        for gas in ("h2_ppm", "co_ppm"):
            values = _despiked(event[gas])
            base = np.median(values[(ts >= start - 600.0) & (ts < start)])
            rise = np.nanmedian(values[(ts > onset - 30.0) & (ts <= onset)]) - base
            if not rise >= 15.0:  # too faint to time (LFP's CO often is)
                break
            leads[gas] = _rise_lead_min(event, gas, start, onset, max(3.0, 0.2 * rise))
        else:
            difference = leads["h2_ppm"] - leads["co_ppm"]
            if np.isfinite(difference):
                orders[plan["precursor_pattern"]].append(difference)
    assert all(len(leads) >= 3 for leads in orders.values()), orders
    assert np.mean(np.array(orders["gas_early"]) > 0) >= 0.8
    assert np.mean(np.array(orders["co_first"]) < 0) >= 0.8
    assert np.median(np.abs(orders["gas_together"])) < np.median(np.abs(orders["gas_early"]))


def test_gas_late_events_show_gas_only_at_the_end_while_heat_or_voltage_lead(
    faulty: pd.DataFrame,
) -> None:
    late_minutes = 3.0  # gas_late gas starts 1-3 min before onset
    checked = 0
    for event, plan, start, onset in _events(faulty, FAULTY):
        if plan["precursor_pattern"] != "gas_late":
            continue
        for gas in ("h2_ppm", "co_ppm", "voc_ppm"):
            lead = _rise_lead_min(event, gas, start, onset, 5.0)
            assert not lead > late_minutes + 0.25, (plan, gas, lead)
        if plan["span_s"] < 12 * 60.0:
            continue  # short spans leave little room before the last 3 minutes
        checked += 1
        ts = event["timestamp_s"].to_numpy()
        before = (ts >= start - 600.0) & (ts < start)
        at = np.argmin(np.abs(ts - (onset - 60.0 * late_minutes)))
        temp = _despiked(event["cell_temp_max_c"])
        spread = _despiked(event["cell_voltage_avg_v"] - event["cell_voltage_min_v"])
        resistance = _despiked(event["internal_resistance_mohm"])
        deviates = (
            temp[at] - np.median(temp[before]) > 3.0
            or spread[at] - np.median(spread[before]) > 0.02
            or resistance[at] / np.median(resistance[before]) > 1.1
        )
        assert deviates, plan
    assert checked >= 3


def test_overcharge_drives_max_cell_voltage_past_the_chemistry_limit(
    faulty: pd.DataFrame,
) -> None:
    for event, plan, start, onset in _events(faulty, FAULTY):
        if plan["fault_type"] != "overcharge":
            continue
        chemistry = LFP if event["chemistry"].iloc[0] == "LFP" else NMC
        ts = event["timestamp_s"].to_numpy()
        v_max = _despiked(event["cell_voltage_max_v"])
        over_limit = _first_sustained(ts, v_max > chemistry.max_operating_v)
        # SOC passes 100 % at fault start; the cell leaves its limit soon after.
        assert over_limit < start + 0.25 * plan["span_s"], plan
        assert v_max[ts <= onset].max() > chemistry.abuse_v, plan
        if chemistry is LFP:
            assert 3.9 < v_max[ts <= onset].max() < 4.9
        assert event.loc[ts > over_limit, "current_a"].median() > 40.0


def test_external_heating_warms_the_inlet_before_onset(faulty: pd.DataFrame) -> None:
    for event, plan, start, onset in _events(faulty, FAULTY):
        if plan["fault_type"] != "external_heating":
            continue
        ambient = _despiked(event["ambient_temp_c"])
        ts = event["timestamp_s"].to_numpy()
        before = ambient[(ts >= start - 600.0) & (ts < start)]
        at_onset = ambient[(ts > onset - 60) & (ts <= onset)]
        assert at_onset.mean() - np.median(before) > 3.0, plan  # 5-30 degC, coarse steps


def test_connection_fault_raises_the_measured_resistance(faulty: pd.DataFrame) -> None:
    gains = []
    for event, plan, start, onset in _events(faulty, FAULTY):
        if plan["fault_type"] == "connection_fault":
            ts = event["timestamp_s"].to_numpy()
            resistance = _despiked(event["internal_resistance_mohm"])
            before = np.median(resistance[(ts >= start - 600.0) & (ts < start)])
            gains.append(resistance[(ts > onset - 60.0) & (ts <= onset)].mean() / before)
    assert np.median(gains) > 1.3


# --- look-alikes -------------------------------------------------------------------------


def test_lookalikes_are_present_combined_and_never_hazardous() -> None:
    frame = simulate(replace(SITE, n_racks=32, lfp_fraction=0.5))
    labels = frame["lookalike"]
    kinds = {kind for label in labels.unique() for kind in label.split("+") if kind}
    assert kinds == set(LOOKALIKE_KINDS)
    both = labels.str.contains("fast_charge") & labels.str.contains("gas_offset")
    assert both.sum() > 100  # the combination that fooled the old model
    assert (frame.loc[labels != "", "hazardous"] == 0).all()
    healthy = frame[frame["fault_type"] == "none"]
    assert 0.1 < (healthy["lookalike"] != "").mean() < 0.6
    assert (healthy["lookalike"] == "").mean() > 0.4  # enough plain healthy data too


def test_gas_offset_lookalike_raises_all_three_gas_sensors() -> None:
    frame = simulate(replace(SITE, n_fault_events=0, gas_offset_module_fraction=0.3))
    frame = frame[~frame["lookalike"].str.contains("gas_plume|gas_drift|sensor_spike")]
    offset = frame["lookalike"].str.contains("gas_offset")
    modules = frame.loc[offset, "module_id"].unique()
    assert len(modules) >= 10
    rises = []
    for module in modules:
        rows = frame[frame["module_id"] == module]
        on = rows["lookalike"].str.contains("gas_offset")
        if on.sum() > 30 and (~on).sum() > 30:
            medians = rows.groupby(on)[["h2_ppm", "co_ppm", "voc_ppm"]].median()
            rises.append(medians.loc[True] - medians.loc[False])
    rises = pd.DataFrame(rises)
    assert len(rises) >= 5
    assert (rises.median() > 4.0).all(), rises.median()
    assert (rises.max() < 20.0).all()


# --- sensor realities -----------------------------------------------------------------


def test_missing_values_outliers_dropouts_and_comms_losses_at_configured_rates() -> None:
    quiet = replace(
        SMALL,
        n_fault_events=0,
        missing_rate=0.02,
        outlier_rate=0.005,
        dropouts_per_module_day=0.0,
        comms_losses_per_module_day=0.0,
        stuck_per_module_day=0.0,
        clock_jumps_per_module_day=0.0,  # reordered rows would split blank runs
        gas_plume_rack_fraction=0.0,
        gas_offset_module_fraction=0.0,
        gas_offset_fast_charge_fraction=0.0,
        gas_drift_module_fraction=0.0,
    )
    frame = simulate(quiet)
    values = frame[list(SIGNAL_NAMES)]
    assert values.isna().to_numpy().mean() == pytest.approx(0.02, rel=0.15)
    spiky = ["h2_ppm", "co_ppm", "voc_ppm", "smoke_obscuration_pct_per_m"]
    spikes = (values[spiky] > [19.0, 19.0, 29.0, 0.4]).to_numpy().mean()
    assert spikes == pytest.approx(0.005 * 0.98, rel=0.25)
    spiked_rows = frame["lookalike"].str.contains("sensor_spike").mean()
    assert spiked_rows == pytest.approx(1 - (1 - 0.005) ** len(SIGNAL_NAMES), rel=0.2)

    module_days = quiet.duration_s / 86400.0 * quiet.n_racks * quiet.modules_per_rack
    dropouts = simulate(replace(quiet, missing_rate=0.0, dropouts_per_module_day=48.0))
    gaps = dropouts[list(SIGNAL_NAMES)].isna()
    run_starts = gaps & ~gaps.groupby(dropouts["module_id"]).shift(fill_value=False)
    assert run_starts.to_numpy().sum() == pytest.approx(48.0 * module_days, rel=0.4)
    assert gaps.to_numpy().sum() / run_starts.to_numpy().sum() > 10  # minutes, not readings

    comms = simulate(replace(quiet, missing_rate=0.0, comms_losses_per_module_day=48.0))
    blank_share = comms[list(SIGNAL_NAMES)].isna().mean(axis=1)
    lost = blank_share >= 0.6
    starts = lost & ~lost.groupby(comms["module_id"]).shift(fill_value=False)
    assert starts.sum() == pytest.approx(48.0 * module_days, rel=0.4)
    assert (blank_share[(blank_share > 0) & (blank_share < 0.55)]).empty


def test_stuck_sensors_repeat_their_value_for_minutes_to_hours() -> None:
    base = replace(
        SMALL,
        n_fault_events=0,
        missing_rate=0.0,
        dropouts_per_module_day=0.0,
        comms_losses_per_module_day=0.0,
        clock_jumps_per_module_day=0.0,
        duplicate_rate=0.0,
    )
    module_days = base.duration_s / 86400.0 * base.n_racks * base.modules_per_rack

    def long_repeats(frame: pd.DataFrame) -> int:
        # Runs of 12+ identical readings in signals that noise keeps moving otherwise.
        count = 0
        for _, rows in frame.groupby("module_id"):
            for name in ("current_a", "soc_pct", "internal_resistance_mohm", "pressure_kpa"):
                same = np.diff(rows[name].to_numpy()) == 0.0
                runs = np.convolve(same.astype(int), np.ones(11, dtype=int), "valid") == 11
                count += int(np.sum(runs[1:] & ~runs[:-1]) + runs[0])
        return count

    assert long_repeats(simulate(replace(base, stuck_per_module_day=0.0))) <= 3
    stuck = long_repeats(simulate(replace(base, stuck_per_module_day=48.0)))
    expected = 48.0 * module_days * 4 / len(SIGNAL_NAMES)  # episodes on the four signals
    assert stuck == pytest.approx(expected, rel=0.5)


def test_calibration_offsets_and_coarse_resolution_vary_by_module_and_rack() -> None:
    frame = simulate(replace(SITE, n_fault_events=0, n_racks=20, coarse_rack_fraction=0.5))
    quiet = frame[frame["lookalike"] == ""]
    co_median = quiet.groupby("module_id")["co_ppm"].median()
    assert co_median.max() - co_median.min() > 5.0  # offsets up to ~10 ppm
    assert np.allclose(quiet["h2_ppm"].dropna() % 1.0, 0.0)  # integer ppm
    steps = quiet.groupby("rack_id")["cell_temp_avg_c"].apply(
        lambda t: np.round(np.diff(np.unique(t.dropna())).min(), 3)
    )
    assert set(steps) <= {0.1, 0.5, 1.0}
    assert 0.25 <= (steps >= 0.5).mean() <= 0.75


# --- widened config ----------------------------------------------------------------------


def test_widened_config_draws_wider_spreads() -> None:
    normal = replace(SITE, n_racks=8, n_fault_events=80, seed=21)
    wide = widened_config(seed=22, n_racks=8, n_fault_events=80)
    assert wide.seed != normal.seed
    assert wide.spread > 1.0
    spans = {name: fault_plan(config)["span_s"] for name, config in (("n", normal), ("w", wide))}
    assert spans["w"].min() < spans["n"].min()
    assert spans["w"].max() > spans["n"].max()

    def onset_gas_and_offsets(config: SimulationConfig) -> tuple[float, float, float]:
        frame = simulate(config)
        last_minute = frame[
            (frame["timestamp_s"] <= frame["onset_s"])
            & (frame["timestamp_s"] > frame["onset_s"] - 60.0)
        ]
        h2 = np.log1p(last_minute.groupby("event_id")["h2_ppm"].median())
        quiet = frame[(frame["fault_type"] == "none") & (frame["lookalike"] == "")]
        co = quiet.groupby("module_id")["co_ppm"].median()
        return (
            float(h2.std()),
            float(co.std()),
            float(frame[list(SIGNAL_NAMES)].isna().mean().mean()),
        )

    gas_n, offset_n, missing_n = onset_gas_and_offsets(normal)
    gas_w, offset_w, missing_w = onset_gas_and_offsets(wide)
    assert gas_w > gas_n
    assert offset_w > offset_n
    assert missing_w > missing_n


# --- config --------------------------------------------------------------------------------


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
        ({"gas_late_share": 1.5}, "rates"),
        ({"dropouts_per_module_day": -1.0}, "drop-outs"),
        ({"gas_offset_max_ppm": -1.0}, "drop-outs"),
        ({"duration_s": 30.0}, "duration_s"),
        ({"timestamp_jitter_s": 5.0}, "timestamp_jitter_s"),
        ({"span_min_s": 30.0}, "spans"),
        ({"fast_span_s": 3600.0}, "spans"),
        ({"gas_late_share": 0.5, "led_share": 0.6}, "pattern shares"),
        ({"lfp_fraction": 1.5}, "lfp_fraction"),
        ({"spread": 0.1}, "spread"),
    ],
)
def test_invalid_config_is_rejected(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SMALL, **bad)
