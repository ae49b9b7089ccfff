"""Feature engineering shared, unchanged, by training and serving.

Every feature of a reading is computed from that reading and the earlier readings of the
same module passed in with it: during training the module's whole series, at serving time
its stored history plus the request's own readings. A reading with no earlier reading
(the first of a series, or a module just started) gets the same fallback in both places:
rates, slopes and deviations 0, window mean and max equal to the value itself, window
standard deviation 0, history 0 seconds.

Feature set 3 is built not to lean on absolute calibration: besides levels it has each
signal's deviation from the module's own last 30 minutes, gas rising above its own
30-minute floor (a sensor's offset cancels), rates over 10 s, 1 and 5 minutes and the
acceleration of temperature, and cell voltages against the module's chemistry's limits.
Feature set 4 adds z-scores: the last minute against the module's own 30 to 10 minutes
ago, in units of that baseline's own noise, so a slow precursor shows before it is large.

The code works on numpy arrays only (no pandas), so a request costs microseconds to a
millisecond and a million training rows a few seconds. Window sums are summed block-wise
so a reading's features are bit-identical wherever its window sits (see _window_sum).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from src.data.chemistry import CHEMISTRIES
from src.data.signals import SIGNAL_INDEX, SIGNAL_NAMES, SIGNALS

FEATURE_SET_VERSION = "4"
"""Bumped whenever a feature's definition changes; logged with every run."""

RATE_MAX_GAP_S = 120.0
"""A previous reading older than this is too old to define a rate of change."""

RATE_MIN_GAP_S = 5.0
"""Rates and slopes never divide by less: a reading closer than this to the previous one
(a retry, a clock that stepped back, a burst) is measured against the latest reading at
least this much older. Half the BMS's 10 s period, so it never matters on a steady feed."""

SHORT_WINDOW_S = 60.0
WINDOW_S = 300.0
"""Rolling statistics and slopes: the last minute and the last five, this reading included."""

BASELINE_WINDOW_S = 1800.0
"""The module's own recent normal: deviations are taken from its last 30 minutes."""

BASELINE_LAG_S = 600.0
"""The z-scores compare the last minute with the module's own 30 to 10 minutes ago: a
baseline that ends 10 minutes back is not yet raised by a precursor building up now."""

CHEMISTRY_CODES: tuple[str, ...] = tuple(sorted(CHEMISTRIES))
"""A reading's chemistry as a number: its index here; NaN when not known."""

RATE_SIGNALS: tuple[str, ...] = (
    "cell_temp_max_c",
    "cell_voltage_min_v",
    "internal_resistance_mohm",
    "h2_ppm",
    "co_ppm",
    "voc_ppm",
    "pressure_kpa",
    "smoke_obscuration_pct_per_m",
)
WINDOW_SIGNALS: tuple[str, ...] = ("cell_temp_max_c", "h2_ppm", "co_ppm", "voc_ppm")
SLOPE_SIGNALS: tuple[str, ...] = ("cell_temp_max_c", "h2_ppm", "co_ppm")
BASELINE_QUANTITIES: tuple[str, ...] = (
    "cell_temp_max_c",
    "temp_above_ambient_c",
    "cell_voltage_min_v",
    "cell_voltage_spread_v",
    "internal_resistance_mohm",
    "pressure_kpa",
    "h2_ppm",
    "co_ppm",
    "voc_ppm",
)
"""Quantities taken as deviations from the module's own 30-minute mean."""
RISE_SIGNALS: tuple[str, ...] = ("h2_ppm", "co_ppm", "voc_ppm")
"""Gases taken also as their rise above the module's own 30-minute minimum."""

Z_QUANTITIES: dict[str, float] = {
    "cell_temp_max_c": 0.05,
    "cell_temp_spread_c": 0.05,
    "temp_above_ambient_c": 0.05,
    "cell_voltage_min_v": 0.001,
    "cell_voltage_spread_v": 0.001,
    "internal_resistance_mohm": 0.02,
    "pressure_kpa": 0.01,
    "h2_ppm": 0.5,
    "co_ppm": 0.5,
    "voc_ppm": 0.5,
}
"""Quantities taken as z-scores: (last minute's mean - the lagged baseline's mean) over the
baseline's standard deviation, never over less than this floor (half the finest sensor
step: 0.1 degC, 1 mV, 1 ppm; a sensor that is flat for 20 minutes must not turn one step
into an infinite score). In units of the module's own noise, so a coarse or noisy sensor
and a fine one mean the same; 0 until the module has history older than BASELINE_LAG_S."""

DERIVED_QUANTITIES: dict[str, tuple[str, str]] = {
    "cell_voltage_spread_v": ("cell_voltage_max_v", "cell_voltage_min_v"),
    "temp_above_ambient_c": ("cell_temp_max_c", "ambient_temp_c"),
}
"""Quantities made of two signals (the first minus the second)."""
CHEMISTRY_GROUP = "chemistry"
HISTORY_GROUP = "history"

FEATURE_NAMES: tuple[str, ...] = (
    *SIGNAL_NAMES,
    *DERIVED_QUANTITIES,
    *(f"{name}_rate_per_min" for name in RATE_SIGNALS),
    *(f"{name}_{stat}_5min" for name in WINDOW_SIGNALS for stat in ("mean", "std", "max")),
    *(f"{name}_slope_per_min_5min" for name in SLOPE_SIGNALS),
    *(f"{name}_slope_per_min_1min" for name in SLOPE_SIGNALS),
    "cell_temp_max_c_acceleration_per_min2",
    *(f"{name}_deviation_30min" for name in BASELINE_QUANTITIES),
    *(f"{name}_rise_30min" for name in RISE_SIGNALS),
    *(f"{name}_z_lagged" for name in Z_QUANTITIES),
    "cell_voltage_max_above_chemistry_max_v",
    "cell_voltage_min_below_chemistry_min_v",
    "chemistry_code",
    "history_s",
    "baseline_history_s",
)

_NAMED_GROUPS: dict[str, str] = {
    # A voltage against its chemistry's limit is that voltage: the limit is a constant of
    # the module, not a measurement.
    "cell_voltage_max_above_chemistry_max_v": "cell_voltage_max_v",
    "cell_voltage_min_below_chemistry_min_v": "cell_voltage_min_v",
    # The hottest cell above the average: heat at the hottest cell, where a fault shows.
    "cell_temp_spread_c_z_lagged": "cell_temp_max_c",
    "chemistry_code": CHEMISTRY_GROUP,
    "history_s": HISTORY_GROUP,
    "baseline_history_s": HISTORY_GROUP,
}
"""The features not named `{quantity}` or `{quantity}_{anything}`, and their groups."""

_QUANTITIES_LONGEST_FIRST = sorted((*SIGNAL_NAMES, *DERIVED_QUANTITIES), key=len, reverse=True)


def feature_group(name: str) -> str:
    """The group a feature explains as: the raw signal (or two-signal quantity) whose name
    it starts with, so `h2_ppm_rise_30min` is `h2_ppm` and a new `h2_ppm_z_lagged` will be
    too, without anyone listing it; the few others from _NAMED_GROUPS. A name that fits
    neither is an error, raised when this module is imported: no feature goes unexplained."""
    if name in _NAMED_GROUPS:
        return _NAMED_GROUPS[name]
    for quantity in _QUANTITIES_LONGEST_FIRST:
        if name == quantity or name.startswith(f"{quantity}_"):
            return quantity
    raise ValueError(
        f"feature {name!r} belongs to no explanation group: name it {{quantity}}_..., with "
        "a quantity of SIGNAL_NAMES or DERIVED_QUANTITIES, or add it to _NAMED_GROUPS "
        "(src/features/engineering.py)"
    )


FEATURE_GROUPS: dict[str, str] = {name: feature_group(name) for name in FEATURE_NAMES}
"""Every feature, in FEATURE_NAMES order, and the group explanations sum it into: the raw
signal it is computed from (its level, rates, window statistics, slopes, deviation, rise);
for a quantity of two signals, that quantity (DERIVED_QUANTITIES); for the reading's
chemistry and for how much history it had, a group of that name."""

FEATURE_GROUP_NAMES: tuple[str, ...] = tuple(dict.fromkeys(FEATURE_GROUPS.values()))
"""The groups in a fixed order: the signals, the two-signal quantities, chemistry, history."""

HISTORY_LOOKBACK_S = max(BASELINE_WINDOW_S, WINDOW_S, RATE_MAX_GAP_S)
"""How far back any feature looks: what a history store must keep of each module."""


def feature_contract() -> dict[str, Any]:
    """The parameters a run must have been trained with for this code to serve it.

    Training writes them into the run's serving_config.json; the service refuses a run
    whose values differ, since the same feature names would then mean other numbers."""
    return {
        "feature_set_version": FEATURE_SET_VERSION,
        "window_s": WINDOW_S,
        "rate_max_gap_s": RATE_MAX_GAP_S,
        "rate_min_gap_s": RATE_MIN_GAP_S,
    }


_REFERENCE = np.array([signal.reference for signal in SIGNALS], dtype=np.float64)
_RATE_COLUMNS = np.array([SIGNAL_INDEX[name] for name in RATE_SIGNALS])
_WINDOW_COLUMNS = np.array([SIGNAL_INDEX[name] for name in WINDOW_SIGNALS])
_SLOPE_COLUMNS = np.array([SIGNAL_INDEX[name] for name in SLOPE_SIGNALS])
_RISE_COLUMNS = np.array([SIGNAL_INDEX[name] for name in RISE_SIGNALS])
_WINDOW_REFERENCE = _REFERENCE[_WINDOW_COLUMNS]
_VOLTAGE_MAX, _VOLTAGE_MIN = SIGNAL_INDEX["cell_voltage_max_v"], SIGNAL_INDEX["cell_voltage_min_v"]
_DERIVED_COLUMNS = [(SIGNAL_INDEX[a], SIGNAL_INDEX[b]) for a, b in DERIVED_QUANTITIES.values()]
_TEMP_SLOPE = SLOPE_SIGNALS.index("cell_temp_max_c")
_CHEMISTRY_MAX_V = np.array([CHEMISTRIES[name].max_operating_v for name in CHEMISTRY_CODES])
_CHEMISTRY_MIN_V = np.array([CHEMISTRIES[name].min_operating_v for name in CHEMISTRY_CODES])


def chemistry_codes(names: Sequence[str | None] | None, n_rows: int) -> np.ndarray:
    """Chemistry names (or None) as the numbers compute_features takes: NaN when unknown."""
    if names is None:
        return np.full(n_rows, np.nan)
    lookup = {name: float(code) for code, name in enumerate(CHEMISTRY_CODES)}
    return np.array([lookup.get(name, np.nan) for name in names], dtype=np.float64)


def _derived(x: np.ndarray) -> np.ndarray:
    """The DERIVED_QUANTITIES (cell_voltage_spread_v, temp_above_ambient_c), as columns."""
    return np.column_stack([x[:, first] - x[:, second] for first, second in _DERIVED_COLUMNS])


_TEMP_MAX, _TEMP_AVG = SIGNAL_INDEX["cell_temp_max_c"], SIGNAL_INDEX["cell_temp_avg_c"]


def _quantities(x: np.ndarray, derived: np.ndarray, names: Iterable[str]) -> np.ndarray:
    """The named quantities as columns: signals, DERIVED_QUANTITIES, and the hottest cell
    above the average (cell_temp_spread_c, a z-score quantity only)."""
    columns = {name: x[:, SIGNAL_INDEX[name]] for name in SIGNAL_NAMES}
    columns.update(zip(DERIVED_QUANTITIES, derived.T, strict=True))
    columns["cell_temp_spread_c"] = x[:, _TEMP_MAX] - x[:, _TEMP_AVG]
    return np.column_stack([columns[name] for name in names])


def _baseline_quantities(x: np.ndarray, derived: np.ndarray) -> np.ndarray:
    return _quantities(x, derived, BASELINE_QUANTITIES)


def _z_quantities(x: np.ndarray, derived: np.ndarray) -> np.ndarray:
    return _quantities(x, derived, Z_QUANTITIES)


_BASELINE_REFERENCE = _baseline_quantities(_REFERENCE[None, :], _derived(_REFERENCE[None, :]))[0]
_Z_FLOORS = np.array(list(Z_QUANTITIES.values()))
_Z_REFERENCE = _z_quantities(_REFERENCE[None, :], _derived(_REFERENCE[None, :]))[0]


def _chemistry_features(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    known = ~np.isnan(codes)
    index = np.where(known, codes, 0).astype(np.int64)
    above = np.where(known, x[:, _VOLTAGE_MAX] - _CHEMISTRY_MAX_V[index], np.nan)
    below = np.where(known, _CHEMISTRY_MIN_V[index] - x[:, _VOLTAGE_MIN], np.nan)
    return np.column_stack((above, below, codes))


def compute_features(
    module_ids: Sequence[str] | np.ndarray,
    timestamps_s: np.ndarray,
    signals: np.ndarray,
    chemistry: np.ndarray | None = None,
    max_history_s: float | None = None,
) -> np.ndarray:
    """Engineered features, one row per reading, in the input order and FEATURE_NAMES order.

    module_ids: one id per reading; readings of the same id form one series.
    timestamps_s: epoch seconds per reading; readings may come in any order.
    signals: shape (n_readings, len(SIGNAL_NAMES)), float, NaN where a value is missing.
    chemistry: per reading, chemistry_codes() of its module's chemistry (NaN: unknown).
    max_history_s: let every reading see at most this many seconds of its module's past,
        as if that were all the history there was (evaluation by history length); 0 makes
        every reading a lone one.
    """
    timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
    signals = np.asarray(signals, dtype=np.float64)
    n_rows = timestamps_s.shape[0]
    if signals.shape != (n_rows, len(SIGNAL_NAMES)):
        raise ValueError(
            f"signals must have shape ({n_rows}, {len(SIGNAL_NAMES)}), got {signals.shape}"
        )
    codes = np.full(n_rows, np.nan) if chemistry is None else np.asarray(chemistry, np.float64)
    features = np.empty((n_rows, len(FEATURE_NAMES)), dtype=np.float64)
    if n_rows == 0:
        return features
    if n_rows == 1 or max_history_s == 0:
        for row in range(n_rows):
            features[row] = _first_reading_features(signals[row], codes[row])
        return features

    def capped(seconds: float) -> float:
        return seconds if max_history_s is None else min(seconds, max_history_s)

    _, group = np.unique(np.asarray(module_ids), return_inverse=True)
    order = np.lexsort((timestamps_s, group))
    group, t, x = group[order], timestamps_s[order], signals[order]

    # One sortable key per reading; consecutive modules are further apart than any window,
    # so a search on the key never crosses from one module's series into another's.
    relative_t = t - t.min()
    stride = float(relative_t.max()) + HISTORY_LOOKBACK_S + 1.0
    key = group * stride + relative_t
    start_1 = np.searchsorted(key, key - capped(SHORT_WINDOW_S), side="left")
    start_5 = np.searchsorted(key, key - capped(WINDOW_S), side="left")
    start_30 = np.searchsorted(key, key - capped(BASELINE_WINDOW_S), side="left")
    # The lagged baseline: readings from 30 to 10 minutes back (empty when none is older).
    lag_end = np.searchsorted(key, key - BASELINE_LAG_S, side="right") - 1

    # The latest earlier reading of the same module at least RATE_MIN_GAP_S older.
    found = np.searchsorted(key, key - RATE_MIN_GAP_S, side="right") - 1
    previous_row = np.maximum(found, 0)
    has_previous = (found >= 0) & (group[previous_row] == group)
    dt = t - t[previous_row]
    rate_ok = (has_previous & (dt <= capped(RATE_MAX_GAP_S)))[:, None]
    rated = x[:, _RATE_COLUMNS]
    rates = np.where(
        rate_ok, (rated - rated[previous_row]) / np.where(rate_ok, dt[:, None], 1.0) * 60.0, 0.0
    )

    windowed = x[:, _WINDOW_COLUMNS]
    mean, std = _window_mean_std(windowed - _WINDOW_REFERENCE, start_5)
    window_stats = np.stack(
        (mean + _WINDOW_REFERENCE, std, _window_max(windowed, start_5)), axis=2
    ).reshape(n_rows, -1)

    sloped = x[:, _SLOPE_COLUMNS]
    slopes_5, history_5 = _slopes(sloped, t, start_5)
    slopes_1, _ = _slopes(sloped, t, start_1)
    # The two slopes' windows are centred (WINDOW_S - SHORT_WINDOW_S) / 2 apart.
    acceleration = (slopes_1[:, _TEMP_SLOPE] - slopes_5[:, _TEMP_SLOPE]) / (
        (WINDOW_S - SHORT_WINDOW_S) / 2.0 / 60.0
    )

    derived = _derived(x)
    quantities = _baseline_quantities(x, derived)
    baseline, _ = _window_mean_std(quantities - _BASELINE_REFERENCE, start_30)
    deviations = quantities - (baseline + _BASELINE_REFERENCE)
    risen = x[:, _RISE_COLUMNS]
    rises = risen + _window_max(-risen, start_30)  # value minus the window's minimum
    z_scores = _lagged_z(_z_quantities(x, derived) - _Z_REFERENCE, start_1, start_30, lag_end)

    sorted_features = np.concatenate(
        (
            x,
            derived,
            rates,
            window_stats,
            slopes_5,
            slopes_1,
            acceleration[:, None],
            deviations,
            rises,
            z_scores,
            _chemistry_features(x, codes[order]),
            history_5[:, None],
            (t - t[start_30])[:, None],
        ),
        axis=1,
    )
    features[order] = sorted_features
    return features


def _lagged_z(
    values: np.ndarray, start_1: np.ndarray, start_30: np.ndarray, lag_end: np.ndarray
) -> np.ndarray:
    """Per column, (mean of the last minute - mean of the lagged baseline) / its std (at
    least the column's floor); 0 where the baseline is empty or a mean is missing."""
    recent, _ = _window_mean_std(values, start_1)
    has_baseline = lag_end >= start_30
    end = np.where(has_baseline, lag_end, np.arange(values.shape[0]))
    start = np.where(has_baseline, start_30, end)
    base_mean, base_std = _window_mean_std(values, start, end)
    z = (recent - base_mean) / np.fmax(base_std, _Z_FLOORS)
    return np.where(has_baseline[:, None] & np.isfinite(z), z, 0.0)


def _slopes(values: np.ndarray, t: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column, (value - value at the window's first reading) per minute, 0 when the
    window spans less than RATE_MIN_GAP_S; and the window's span in seconds."""
    history = t - t[start]
    has_history = (history >= RATE_MIN_GAP_S)[:, None]
    slopes = np.where(
        has_history,
        (values - values[start]) / np.where(has_history, history[:, None], 1.0) * 60.0,
        0.0,
    )
    return slopes, history


def _first_reading_features(x: np.ndarray, code: float) -> np.ndarray:
    """What the general code computes for a reading with no history, far faster.

    The same operations on the same values, so the same bits (a test compares the two):
    rates, slopes and acceleration 0, window mean `(x - reference) + reference`, std 0
    and max x, deviation `x - ((x - reference) + reference)`, rise 0, NaN where the value
    is missing; history 0.
    """
    windowed = x[_WINDOW_COLUMNS]
    missing = np.isnan(windowed)
    window_stats = np.stack(
        (
            np.where(missing, np.nan, (windowed - _WINDOW_REFERENCE) + _WINDOW_REFERENCE),
            np.where(missing, np.nan, 0.0),
            windowed,
        ),
        axis=1,
    ).reshape(-1)
    derived = _derived(x[None, :])
    quantities = _baseline_quantities(x[None, :], derived)[0]
    deviations = quantities - ((quantities - _BASELINE_REFERENCE) + _BASELINE_REFERENCE)
    risen = x[_RISE_COLUMNS]
    return np.concatenate(
        (
            x,
            derived[0],
            np.zeros(len(RATE_SIGNALS)),
            window_stats,
            np.zeros(2 * len(SLOPE_SIGNALS) + 1),  # 5- and 1-minute slopes, acceleration
            deviations,
            risen - risen,  # 0, or NaN for a missing gas
            np.zeros(len(Z_QUANTITIES)),  # z-scores: no lagged baseline
            _chemistry_features(x[None, :], np.array([code]))[0],
            np.zeros(2),  # history_s, baseline_history_s
        )
    )


def _window_mean_std(
    values: np.ndarray, window_start: np.ndarray, window_end: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """NaN-ignoring mean and population std of values[window_start[i] : window_end[i] + 1]
    per column (window_end: each row itself)."""
    end = np.arange(values.shape[0]) if window_end is None else window_end
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    cumulative_count = np.concatenate(
        (np.zeros((1, values.shape[1]), dtype=np.int64), np.cumsum(present, axis=0))
    )
    count = cumulative_count[end + 1] - cumulative_count[window_start]
    total = _window_sum(filled, window_start, end)
    squares = _window_sum(filled * filled, window_start, end)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        variance = np.where(count > 0, squares / count - mean * mean, np.nan)
    return mean, np.sqrt(np.clip(variance, 0.0, None))


def _window_sum(
    values: np.ndarray, window_start: np.ndarray, window_end: np.ndarray | None = None
) -> np.ndarray:
    """Sum of values[window_start[i] : window_end[i] + 1] (window_end: each row itself),
    per column, from blocks of 2**k readings.

    A running cumulative sum would subtract two large totals and make a reading's
    features depend on how many readings came before it (training sees whole series,
    serving a few readings). Summing the window's own power-of-two blocks, walked from
    the reading backwards, gives the same bits for the same window wherever it sits.
    """
    n_rows = values.shape[0]
    position = np.arange(n_rows) if window_end is None else window_end.copy()
    length = position - window_start + 1
    total = np.zeros_like(values)
    block = values
    for level in range(int(length.max()).bit_length()):
        if level > 0:
            half = 1 << (level - 1)
            shifted = np.zeros_like(block)
            shifted[half:] = block[:-half]
            block = block + shifted
        rows = np.nonzero((length >> level) & 1)[0]
        total[rows] += block[position[rows]]
        position[rows] -= 1 << level
    return total


def _window_max(values: np.ndarray, window_start: np.ndarray) -> np.ndarray:
    """NaN-ignoring max of values[window_start[i] : i + 1], per column, by a sparse table.

    Level k holds the max of the 2**k values ending at each position, so any window
    is covered by two overlapping blocks: O(n log n) whatever the window length.
    """
    n_rows = values.shape[0]
    length = np.arange(n_rows) - window_start + 1
    level_of = np.log2(length).astype(np.int64)
    result = np.full_like(values, np.nan)
    table = values
    for level in range(int(level_of.max()) + 1):
        if level > 0:
            half = 1 << (level - 1)
            shifted = np.full_like(table, np.nan)
            shifted[half:] = table[:-half]
            table = np.fmax(table, shifted)
        rows = np.nonzero(level_of == level)[0]
        if rows.size:
            block = 1 << level
            result[rows] = np.fmax(table[rows], table[window_start[rows] + block - 1])
    return result
