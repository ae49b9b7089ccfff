"""Alarm levels: the model's thresholds, each physical guard, persistence, data quality."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.signals import SIGNAL_INDEX, SIGNALS
from src.features.engineering import CHEMISTRY_CODES, FEATURE_NAMES, compute_features
from src.levels import (
    ALARM,
    GUARDS,
    NORMAL,
    UNKNOWN,
    WARNING,
    Thresholds,
    combine,
    guard_hits,
    missing_groups,
    model_levels,
    previous_readings,
)

LFP = float(CHEMISTRY_CODES.index("LFP"))
NMC = float(CHEMISTRY_CODES.index("NMC"))
GUARD = {guard.name: index for index, guard in enumerate(GUARDS)}


def series(n: int = 40, **changes: float) -> np.ndarray:
    """n healthy readings 10 s apart of one module; changes apply to the last two."""
    signals = np.tile([s.reference for s in SIGNALS], (n, 1))
    for name, value in changes.items():
        signals[-2:, SIGNAL_INDEX[name]] = value
    return signals


def hits(signals: np.ndarray, chemistry: float = LFP, spike_only_last: bool = False) -> np.ndarray:
    if spike_only_last:
        signals = signals.copy()
        signals[-2] = signals[-3]  # only the last reading carries the change
    n = signals.shape[0]
    times = 10.0 * np.arange(n)
    codes = np.full(n, chemistry)
    features = compute_features(["M"] * n, times, signals, codes)
    return guard_hits(features, codes, previous_readings(["M"] * n, times))[-1]


@pytest.mark.parametrize(
    ("name", "changes", "chemistry"),
    [
        ("cell_overvoltage", {"cell_voltage_max_v": 3.85}, LFP),
        ("cell_overvoltage", {"cell_voltage_max_v": 4.35}, NMC),
        ("cell_over_charge_limit", {"cell_voltage_max_v": 3.71}, LFP),
        ("h2_10pct_lfl", {"h2_ppm": 4500.0}, LFP),
        ("h2_1pct_lfl", {"h2_ppm": 450.0}, LFP),
        ("smoke", {"smoke_obscuration_pct_per_m": 5.0}, LFP),
    ],
)
def test_each_guard_fires_when_it_holds_on_two_readings_and_not_on_one(name, changes, chemistry):
    assert hits(series(**changes), chemistry)[GUARD[name]]
    assert not hits(series(**changes), chemistry, spike_only_last=True)[GUARD[name]]


def test_an_lfp_voltage_is_not_an_nmc_one_and_unknown_chemistry_is_lenient():
    lfp_high = series(cell_voltage_max_v=3.9)
    assert hits(lfp_high, LFP)[GUARD["cell_overvoltage"]]
    assert not hits(lfp_high, NMC)[GUARD["cell_overvoltage"]]
    assert not hits(lfp_high, np.nan)[GUARD["cell_overvoltage"]]  # the highest limit applies


def test_heat_guards_need_sustained_heat_not_a_spike():
    heating = np.tile([s.reference for s in SIGNALS], (40, 1))
    heating[:, SIGNAL_INDEX["cell_temp_max_c"]] = 28.0 + 3.0 * np.arange(40) / 6.0  # 3 °C/min
    assert hits(heating)[GUARD["cell_heating_fast"]]
    hot = np.tile([s.reference for s in SIGNALS], (40, 1))
    hot[:, SIGNAL_INDEX["cell_temp_max_c"]] = 75.0
    assert hits(hot)[GUARD["cell_overtemperature"]]
    spike = series(cell_temp_max_c=110.0)  # two readings only: the 5-minute mean stays low
    assert not hits(spike)[GUARD["cell_overtemperature"]]


def test_a_lone_reading_is_judged_alone():
    signals = series(1, h2_ppm=5000.0)
    assert hits(signals)[GUARD["h2_10pct_lfl"]]


def test_levels_combine_the_model_the_guards_and_missing_data():
    thresholds = Thresholds(warning=0.3, alarm=0.8)
    probabilities = np.array([0.1, 0.5, 0.9, 0.1, 0.1, 0.9])
    guards = np.zeros((6, len(GUARDS)), dtype=bool)
    guards[3, GUARD["smoke"]] = True  # an alarm guard on a normal score
    missing = np.zeros((6, 3), dtype=bool)
    missing[4, 0] = True  # gas missing on a normal score: unknown
    missing[5, 0] = True  # gas missing on an alarm: still an alarm
    levels = combine(model_levels(probabilities, thresholds), guards, missing)
    assert levels.level.tolist() == [NORMAL, WARNING, ALARM, ALARM, UNKNOWN, ALARM]
    assert levels.reasons[0] == ()
    assert levels.reasons[1] == ("model:warning",)
    assert levels.reasons[3] == ("guard:smoke",)
    assert levels.reasons[4] == ("missing:gas",)
    assert levels.reasons[5] == ("model:alarm", "missing:gas")
    assert levels.missing[5] == ("gas",)


def test_missing_groups_and_declared_absent_sensors():
    signals = series(3)
    signals[0, [SIGNAL_INDEX["h2_ppm"], SIGNAL_INDEX["co_ppm"], SIGNAL_INDEX["voc_ppm"]]] = np.nan
    signals[1, SIGNAL_INDEX["h2_ppm"]] = np.nan  # one gas of three: the group is there
    signals[2, :] = np.nan  # nothing at all
    found = missing_groups(signals, frozenset())
    assert found.tolist() == [[True, False, False], [False, False, False], [True, True, True]]
    # a site without CO and VOC sensors: H2 alone is the gas group
    site = missing_groups(signals, frozenset({"co_ppm", "voc_ppm"}))
    assert site[1].tolist() == [True, False, False]
    # a site without any gas sensor: gas is never "missing"
    no_gas = missing_groups(signals, frozenset({"h2_ppm", "co_ppm", "voc_ppm"}))
    assert not no_gas[:, 0].any()


def test_previous_readings_are_per_module_and_within_the_rate_gap():
    previous = previous_readings(["A", "B", "A", "A"], np.array([0.0, 5.0, 10.0, 500.0]))
    assert previous.tolist() == [-1, -1, 0, -1]  # 490 s is too long a gap
    assert len(FEATURE_NAMES) > 50
