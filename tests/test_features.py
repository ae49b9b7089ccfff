"""The vectorised feature code against a slow, obviously-correct reference written with loops."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.chemistry import CHEMISTRIES
from src.data.signals import SIGNAL_INDEX, SIGNAL_NAMES
from src.features.engineering import (
    BASELINE_LAG_S,
    BASELINE_QUANTITIES,
    BASELINE_WINDOW_S,
    CHEMISTRY_CODES,
    CHEMISTRY_GROUP,
    DERIVED_QUANTITIES,
    FEATURE_GROUP_NAMES,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    HISTORY_GROUP,
    RATE_MAX_GAP_S,
    RATE_MIN_GAP_S,
    RATE_SIGNALS,
    RISE_SIGNALS,
    SHORT_WINDOW_S,
    SLOPE_SIGNALS,
    WINDOW_S,
    WINDOW_SIGNALS,
    Z_QUANTITIES,
    compute_features,
    feature_group,
)


def reference_features(module_ids, timestamps, signals, chemistry=None, max_history_s=None):
    """Row-by-row definition of every feature, in the order of FEATURE_NAMES."""
    horizon = np.inf if max_history_s is None else max_history_s
    chemistry = np.full(len(timestamps), np.nan) if chemistry is None else chemistry

    def spread_of(x):
        return x[SIGNAL_INDEX["cell_voltage_max_v"]] - x[SIGNAL_INDEX["cell_voltage_min_v"]]

    def above_of(x):
        return x[SIGNAL_INDEX["cell_temp_max_c"]] - x[SIGNAL_INDEX["ambient_temp_c"]]

    def quantity(x, name):
        if name == "cell_voltage_spread_v":
            return spread_of(x)
        if name == "temp_above_ambient_c":
            return above_of(x)
        if name == "cell_temp_spread_c":
            return x[SIGNAL_INDEX["cell_temp_max_c"]] - x[SIGNAL_INDEX["cell_temp_avg_c"]]
        return x[SIGNAL_INDEX[name]]

    def nanstat(values, stat):
        values = np.array(values, dtype=float)
        values = values[~np.isnan(values)]
        return stat(values) if values.size else np.nan

    def slope(i, window, k):
        first = window[0]
        span = timestamps[i] - timestamps[first]
        return (signals[i][k] - signals[first][k]) / span * 60.0 if span >= RATE_MIN_GAP_S else 0.0

    def within(i, same, seconds):
        return [j for j in same if timestamps[j] >= timestamps[i] - min(seconds, horizon)]

    rows = []
    for i in range(len(timestamps)):
        same = [
            j
            for j in range(len(timestamps))
            if module_ids[j] == module_ids[i] and (timestamps[j], j) <= (timestamps[i], i)
        ]
        same.sort(key=lambda j: (timestamps[j], j))
        same = [j for j in same if timestamps[i] - timestamps[j] <= horizon]
        x = signals[i]
        row = [*x, spread_of(x), above_of(x)]
        older = [j for j in same if timestamps[i] - timestamps[j] >= RATE_MIN_GAP_S]
        previous = older[-1] if older else None
        for name in RATE_SIGNALS:
            k = SIGNAL_INDEX[name]
            dt = None if previous is None else timestamps[i] - timestamps[previous]
            if dt is not None and dt <= min(RATE_MAX_GAP_S, horizon):
                row.append((x[k] - signals[previous][k]) / dt * 60.0)
            else:
                row.append(0.0)
        window, short, baseline = (
            within(i, same, WINDOW_S),
            within(i, same, SHORT_WINDOW_S),
            within(i, same, BASELINE_WINDOW_S),
        )
        for name in WINDOW_SIGNALS:
            values = [signals[j][SIGNAL_INDEX[name]] for j in window]
            row += [nanstat(values, np.mean), nanstat(values, np.std), nanstat(values, np.max)]
        slopes_5 = [slope(i, window, SIGNAL_INDEX[name]) for name in SLOPE_SIGNALS]
        slopes_1 = [slope(i, short, SIGNAL_INDEX[name]) for name in SLOPE_SIGNALS]
        row += [*slopes_5, *slopes_1, (slopes_1[0] - slopes_5[0]) / 2.0]
        for name in BASELINE_QUANTITIES:
            mean = nanstat([quantity(signals[j], name) for j in baseline], np.mean)
            row.append(quantity(x, name) - mean)
        for name in RISE_SIGNALS:
            k = SIGNAL_INDEX[name]
            row.append(x[k] - nanstat([signals[j][k] for j in baseline], np.min))
        lagged = [j for j in baseline if timestamps[j] <= timestamps[i] - BASELINE_LAG_S]
        for name, floor in Z_QUANTITIES.items():
            if not lagged:
                row.append(0.0)
                continue
            recent = nanstat([quantity(signals[j], name) for j in short], np.mean)
            past = [quantity(signals[j], name) for j in lagged]
            z = (recent - nanstat(past, np.mean)) / max(nanstat(past, np.std), floor)
            row.append(z if np.isfinite(z) else 0.0)
        code = chemistry[i]
        if np.isnan(code):
            row += [np.nan, np.nan, np.nan]
        else:
            limits = CHEMISTRIES[CHEMISTRY_CODES[int(code)]]
            row += [
                x[SIGNAL_INDEX["cell_voltage_max_v"]] - limits.max_operating_v,
                limits.min_operating_v - x[SIGNAL_INDEX["cell_voltage_min_v"]],
                code,
            ]
        row += [timestamps[i] - timestamps[window[0]], timestamps[i] - timestamps[baseline[0]]]
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def random_readings(seed: int, n_rows: int, n_modules: int, nan_fraction: float = 0.05):
    rng = np.random.default_rng(seed)
    module_ids = [f"M{rng.integers(n_modules)}" for _ in range(n_rows)]
    # irregular sampling with gaps longer than the rate gap and the windows
    timestamps = 1_767_225_600.0 + np.round(rng.uniform(0, 3600, n_rows), 1)
    signals = rng.normal(50.0, 20.0, size=(n_rows, len(SIGNAL_NAMES)))
    signals[rng.random(signals.shape) < nan_fraction] = np.nan
    return module_ids, timestamps, signals


def random_chemistry(module_ids, seed: int) -> np.ndarray:
    """Each module's chemistry: one of the known codes, or unknown (NaN)."""
    rng = np.random.default_rng(seed)
    per_module = {m: rng.choice([0.0, 1.0, np.nan]) for m in sorted(set(module_ids))}
    return np.array([per_module[m] for m in module_ids])


def test_feature_names_are_unique_and_start_with_raw_signals():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES[: len(SIGNAL_NAMES)] == SIGNAL_NAMES


@pytest.mark.parametrize(("seed", "n_rows", "n_modules"), [(0, 40, 1), (1, 120, 4), (2, 300, 7)])
def test_matches_reference_on_shuffled_irregular_readings(seed, n_rows, n_modules):
    module_ids, timestamps, signals = random_readings(seed, n_rows, n_modules)
    chemistry = random_chemistry(module_ids, seed)
    got = compute_features(module_ids, timestamps, signals, chemistry)
    want = reference_features(module_ids, timestamps, signals, chemistry)
    assert got.shape == (n_rows, len(FEATURE_NAMES))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7, equal_nan=True)


def test_single_reading_gets_the_first_of_series_fallback():
    module_ids, timestamps, signals = random_readings(3, 1, 1, nan_fraction=0.0)
    row = compute_features(module_ids, timestamps, signals)[0]
    named = dict(zip(FEATURE_NAMES, row, strict=True))
    for name in RATE_SIGNALS:
        assert named[f"{name}_rate_per_min"] == 0.0
    for name in WINDOW_SIGNALS:
        value = signals[0, SIGNAL_INDEX[name]]
        assert named[f"{name}_mean_5min"] == pytest.approx(value)
        assert named[f"{name}_std_5min"] == 0.0
        assert named[f"{name}_max_5min"] == value
    assert named["history_s"] == 0.0


def test_a_reading_does_not_depend_on_later_or_other_module_readings():
    module_ids, timestamps, signals = random_readings(4, 60, 3)
    full = compute_features(module_ids, timestamps, signals)
    target = int(np.argmax(timestamps * (np.array(module_ids) == module_ids[0])))
    keep = [
        j
        for j in range(60)
        if module_ids[j] == module_ids[target] and timestamps[j] <= timestamps[target]
    ]
    alone = compute_features([module_ids[j] for j in keep], timestamps[keep], signals[keep])
    np.testing.assert_allclose(
        alone[keep.index(target)], full[target], rtol=1e-9, atol=1e-7, equal_nan=True
    )


def test_rejects_signals_of_the_wrong_shape():
    with pytest.raises(ValueError, match="signals must have shape"):
        compute_features(["M1"], np.array([0.0]), np.zeros((1, 3)))


def test_empty_input_gives_empty_features():
    assert compute_features([], np.array([]), np.zeros((0, len(SIGNAL_NAMES)))).shape == (
        0,
        len(FEATURE_NAMES),
    )


@pytest.mark.parametrize("seed", range(5))
def test_single_reading_shortcut_is_bit_identical_to_the_general_code(seed):
    """One reading takes a shortcut; the general code handles two modules of one reading
    each, i.e. two first-of-series readings. Same bits, NaN included."""
    _, _, signals = random_readings(seed, 2, 1, nan_fraction=0.3)
    signals[0, 5] = np.nan  # cell_temp_max_c, a window signal
    chemistry = np.array([[0.0, np.nan], [1.0, 0.0], [np.nan, 1.0]][seed % 3])
    general = compute_features(["A", "B"], np.array([0.0, 0.0]), signals, chemistry)
    for row in range(2):
        alone = compute_features(
            ["A"], np.array([0.0]), signals[row : row + 1], chemistry[row : row + 1]
        )
        np.testing.assert_array_equal(alone[0], general[row])


@pytest.mark.parametrize("max_history_s", [0.0, 30.0, 60.0, 120.0, 300.0, 900.0])
def test_history_can_be_capped_as_if_that_were_all_there_was(max_history_s):
    module_ids, timestamps, signals = random_readings(5, 150, 3)
    chemistry = random_chemistry(module_ids, 5)
    got = compute_features(module_ids, timestamps, signals, chemistry, max_history_s)
    want = reference_features(module_ids, timestamps, signals, chemistry, max_history_s)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7, equal_nan=True)


def test_readings_a_fraction_of_a_second_apart_give_no_absurd_rates():
    """A burst, a retry or a clock that stepped back: rates use a reading >= 5 s older."""
    temperature = SIGNAL_INDEX["cell_temp_max_c"]
    timestamps = np.array([0.0, 10.0, 10.2, 9.9])  # the last one: the clock stepped back
    signals = np.full((4, len(SIGNAL_NAMES)), 1.0)
    signals[:, temperature] = [30.0, 30.5, 31.0, 30.4]
    features = compute_features(["M"] * 4, timestamps, signals)
    rate = features[:, FEATURE_NAMES.index("cell_temp_max_c_rate_per_min")]
    slope = features[:, FEATURE_NAMES.index("cell_temp_max_c_slope_per_min_5min")]
    # 10.2 is measured against 0.0 (10.0 is only 0.2 s older): 1 °C in 10.2 s
    assert rate[2] == pytest.approx(1.0 / 10.2 * 60.0)
    assert rate[3] == pytest.approx(0.4 / 9.9 * 60.0)
    assert np.all(np.abs(rate) < 10.0)
    assert np.all(np.abs(slope) < 10.0)


def test_every_feature_has_one_group_and_the_groups_are_signals_or_named():
    assert tuple(FEATURE_GROUPS) == FEATURE_NAMES
    assert set(FEATURE_GROUP_NAMES) == {
        *SIGNAL_NAMES,
        *DERIVED_QUANTITIES,
        CHEMISTRY_GROUP,
        HISTORY_GROUP,
    }
    for name in SIGNAL_NAMES:  # a raw signal's own level explains as that signal
        assert FEATURE_GROUPS[name] == name
    for quantity, parts in DERIVED_QUANTITIES.items():  # two signals: a group of its own
        assert set(parts) <= set(SIGNAL_NAMES)
        assert FEATURE_GROUPS[f"{quantity}_deviation_30min"] == quantity
    assert FEATURE_GROUPS["h2_ppm_rise_30min"] == "h2_ppm"
    assert FEATURE_GROUPS["cell_temp_max_c_acceleration_per_min2"] == "cell_temp_max_c"
    assert FEATURE_GROUPS["chemistry_code"] == CHEMISTRY_GROUP
    assert FEATURE_GROUPS["baseline_history_s"] == HISTORY_GROUP


@pytest.mark.parametrize(
    ("name", "group"),
    [  # names a later feature set may add: found from the name, with no list to update
        ("cell_temp_max_c_z_lagged", "cell_temp_max_c"),
        ("cell_voltage_min_v_z_lagged", "cell_voltage_min_v"),
        ("cell_voltage_spread_v_z_lagged", "cell_voltage_spread_v"),
        ("temp_above_ambient_c_z_lagged", "temp_above_ambient_c"),
        ("internal_resistance_mohm_z_lagged", "internal_resistance_mohm"),
        ("h2_ppm_z_lagged", "h2_ppm"),
        ("smoke_obscuration_pct_per_m_rate_per_min", "smoke_obscuration_pct_per_m"),
    ],
)
def test_a_feature_named_after_its_quantity_explains_as_that_quantity(name, group):
    assert feature_group(name) == group


@pytest.mark.parametrize("name", ["cell_temp_spread_c_rate", "h2", "ppm_h2_ppm"])
def test_a_feature_of_no_known_quantity_is_refused_by_name(name):
    with pytest.raises(ValueError, match=f"feature '{name}' belongs to no explanation group"):
        feature_group(name)
