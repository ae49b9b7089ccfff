"""Feature engineering shared, unchanged, by training and serving.

Every feature of a reading is computed from that reading and the earlier readings of the
same module that are passed in with it: during training that is the module's whole
series, at serving time the readings of the same module in the same request. A reading
with no earlier reading (the first of a series, or a request of one reading) gets the
same fallback in both places: rates and slopes 0, rolling mean and max equal to the
value itself, rolling standard deviation 0, history 0 seconds.

The code works on numpy arrays only (no pandas), so that one request of one reading
costs tens of microseconds, and a million training rows a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.data.signals import SIGNAL_INDEX, SIGNAL_NAMES, SIGNALS

FEATURE_SET_VERSION = "1"
"""Bumped whenever a feature's definition changes; logged with every run."""

RATE_MAX_GAP_S = 120.0
"""A previous reading older than this is too old to define a rate of change."""

WINDOW_S = 300.0
"""Rolling statistics cover the readings of the last five minutes, this one included."""

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
WINDOW_SIGNALS: tuple[str, ...] = ("cell_temp_max_c", "h2_ppm", "co_ppm")
SLOPE_SIGNALS: tuple[str, ...] = ("cell_temp_max_c", "h2_ppm")

FEATURE_NAMES: tuple[str, ...] = (
    *SIGNAL_NAMES,
    "cell_voltage_spread_v",
    "temp_above_ambient_c",
    *(f"{name}_rate_per_min" for name in RATE_SIGNALS),
    *(f"{name}_{stat}_5min" for name in WINDOW_SIGNALS for stat in ("mean", "std", "max")),
    *(f"{name}_slope_per_min_5min" for name in SLOPE_SIGNALS),
    "history_s",
)

_REFERENCE = np.array([signal.reference for signal in SIGNALS], dtype=np.float64)


def compute_features(
    module_ids: Sequence[str] | np.ndarray,
    timestamps_s: np.ndarray,
    signals: np.ndarray,
) -> np.ndarray:
    """Engineered features, one row per reading, in the input order and FEATURE_NAMES order.

    module_ids: one id per reading; readings of the same id form one series.
    timestamps_s: epoch seconds per reading; readings may come in any order.
    signals: shape (n_readings, len(SIGNAL_NAMES)), float, NaN where a value is missing.
    """
    timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
    signals = np.asarray(signals, dtype=np.float64)
    n_rows = timestamps_s.shape[0]
    if signals.shape != (n_rows, len(SIGNAL_NAMES)):
        raise ValueError(
            f"signals must have shape ({n_rows}, {len(SIGNAL_NAMES)}), got {signals.shape}"
        )
    features = np.empty((n_rows, len(FEATURE_NAMES)), dtype=np.float64)
    if n_rows == 0:
        return features

    _, group = np.unique(np.asarray(module_ids), return_inverse=True)
    order = np.lexsort((timestamps_s, group))
    group, t, x = group[order], timestamps_s[order], signals[order]

    # One sortable key per reading; consecutive modules are further apart than any window,
    # so a search on the key never crosses from one module's series into another's.
    relative_t = t - t.min()
    stride = float(relative_t.max()) + WINDOW_S + RATE_MAX_GAP_S + 1.0
    key = group * stride + relative_t
    window_start = np.searchsorted(key, key - WINDOW_S, side="left")

    n_signals = len(SIGNAL_NAMES)
    sorted_features = np.empty_like(features)
    sorted_features[:, :n_signals] = x
    column = n_signals
    sorted_features[:, column] = (
        x[:, SIGNAL_INDEX["cell_voltage_max_v"]] - x[:, SIGNAL_INDEX["cell_voltage_min_v"]]
    )
    sorted_features[:, column + 1] = (
        x[:, SIGNAL_INDEX["cell_temp_max_c"]] - x[:, SIGNAL_INDEX["ambient_temp_c"]]
    )
    column += 2

    has_previous = np.zeros(n_rows, dtype=bool)
    has_previous[1:] = group[1:] == group[:-1]
    dt = np.zeros(n_rows)
    dt[1:] = t[1:] - t[:-1]
    rate_ok = has_previous & (dt > 0) & (dt <= RATE_MAX_GAP_S)
    safe_dt = np.where(rate_ok, dt, 1.0)
    for name in RATE_SIGNALS:
        values = x[:, SIGNAL_INDEX[name]]
        previous = np.empty(n_rows)
        previous[0] = values[0]
        previous[1:] = values[:-1]
        rate = (values - previous) / safe_dt * 60.0
        sorted_features[:, column] = np.where(rate_ok, rate, 0.0)
        column += 1

    for name in WINDOW_SIGNALS:
        index = SIGNAL_INDEX[name]
        mean, std = _window_mean_std(x[:, index] - _REFERENCE[index], window_start)
        sorted_features[:, column] = mean + _REFERENCE[index]
        sorted_features[:, column + 1] = std
        sorted_features[:, column + 2] = _window_max(x[:, index], window_start)
        column += 3

    history = t - t[window_start]
    has_history = history > 0
    safe_history = np.where(has_history, history, 1.0)
    for name in SLOPE_SIGNALS:
        values = x[:, SIGNAL_INDEX[name]]
        slope = (values - values[window_start]) / safe_history * 60.0
        sorted_features[:, column] = np.where(has_history, slope, 0.0)
        column += 1

    sorted_features[:, column] = history
    column += 1
    assert column == len(FEATURE_NAMES)

    features[order] = sorted_features
    return features


def _window_mean_std(values: np.ndarray, window_start: np.ndarray) -> tuple[np.ndarray, ...]:
    """NaN-ignoring mean and population std of values[window_start[i] : i + 1]."""
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    cumulative_count = np.concatenate(([0], np.cumsum(present)))
    count = cumulative_count[1:] - cumulative_count[window_start]
    total = _window_sum(filled, window_start)
    squares = _window_sum(filled * filled, window_start)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        variance = np.where(count > 0, squares / count - mean * mean, np.nan)
    return mean, np.sqrt(np.clip(variance, 0.0, None))


def _window_sum(values: np.ndarray, window_start: np.ndarray) -> np.ndarray:
    """Sum of values[window_start[i] : i + 1], from blocks of 2**k readings.

    A running cumulative sum would subtract two large totals and make a reading's
    features depend on how many readings came before it (training sees whole series,
    serving a few readings). Summing the window's own power-of-two blocks, walked from
    the reading backwards, gives the same bits for the same window wherever it sits.
    """
    n_rows = values.shape[0]
    length = np.arange(n_rows) - window_start + 1
    position = np.arange(n_rows)
    total = np.zeros(n_rows)
    block = values.copy()
    for level in range(int(length.max()).bit_length()):
        if level > 0:
            half = 1 << (level - 1)
            shifted = np.zeros(n_rows)
            shifted[half:] = block[:-half]
            block = block + shifted
        rows = np.nonzero((length >> level) & 1)[0]
        total[rows] += block[position[rows]]
        position[rows] -= 1 << level
    return total


def _window_max(values: np.ndarray, window_start: np.ndarray) -> np.ndarray:
    """NaN-ignoring max of values[window_start[i] : i + 1] through a sparse table.

    Level k holds the max of the 2**k values ending at each position, so any window
    is covered by two overlapping blocks: O(n log n) whatever the window length.
    """
    n_rows = values.shape[0]
    end = np.arange(n_rows)
    length = end - window_start + 1
    level_of = np.floor(np.log2(length)).astype(np.int64)
    result = np.full(n_rows, np.nan)
    table = values.copy()
    for level in range(int(level_of.max()) + 1):
        if level > 0:
            half = 1 << (level - 1)
            shifted = np.full(n_rows, np.nan)
            shifted[half:] = table[:-half]
            table = np.fmax(table, shifted)
        rows = np.nonzero(level_of == level)[0]
        if rows.size:
            block = 1 << level
            result[rows] = np.fmax(table[rows], table[window_start[rows] + block - 1])
    return result
