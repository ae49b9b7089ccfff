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
from typing import Any

import numpy as np

from src.data.signals import SIGNAL_INDEX, SIGNAL_NAMES, SIGNALS

FEATURE_SET_VERSION = "2"
"""Bumped whenever a feature's definition changes; logged with every run."""

RATE_MAX_GAP_S = 120.0
"""A previous reading older than this is too old to define a rate of change."""

RATE_MIN_GAP_S = 5.0
"""Rates and slopes never divide by less: a reading closer than this to the previous one
(a retry, a clock that stepped back, a burst) is measured against the latest reading at
least this much older. Half the BMS's 10 s period, so it never matters on a steady feed."""

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


HISTORY_LOOKBACK_S = max(WINDOW_S, RATE_MAX_GAP_S)
"""How far back any feature looks: what a history store must keep of each module."""


_REFERENCE = np.array([signal.reference for signal in SIGNALS], dtype=np.float64)
_RATE_COLUMNS = np.array([SIGNAL_INDEX[name] for name in RATE_SIGNALS])
_WINDOW_COLUMNS = np.array([SIGNAL_INDEX[name] for name in WINDOW_SIGNALS])
_SLOPE_COLUMNS = np.array([SIGNAL_INDEX[name] for name in SLOPE_SIGNALS])
_WINDOW_REFERENCE = _REFERENCE[_WINDOW_COLUMNS]
_VOLTAGE_MAX, _VOLTAGE_MIN = SIGNAL_INDEX["cell_voltage_max_v"], SIGNAL_INDEX["cell_voltage_min_v"]
_TEMP_MAX, _AMBIENT = SIGNAL_INDEX["cell_temp_max_c"], SIGNAL_INDEX["ambient_temp_c"]


def compute_features(
    module_ids: Sequence[str] | np.ndarray,
    timestamps_s: np.ndarray,
    signals: np.ndarray,
    max_history_s: float | None = None,
) -> np.ndarray:
    """Engineered features, one row per reading, in the input order and FEATURE_NAMES order.

    module_ids: one id per reading; readings of the same id form one series.
    timestamps_s: epoch seconds per reading; readings may come in any order.
    signals: shape (n_readings, len(SIGNAL_NAMES)), float, NaN where a value is missing.
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
    features = np.empty((n_rows, len(FEATURE_NAMES)), dtype=np.float64)
    if n_rows == 0:
        return features

    if n_rows == 1 or max_history_s == 0:
        for row in range(n_rows):
            features[row] = _first_reading_features(signals[row])
        return features
    window_s = WINDOW_S if max_history_s is None else min(WINDOW_S, max_history_s)
    rate_gap_s = RATE_MAX_GAP_S if max_history_s is None else min(RATE_MAX_GAP_S, max_history_s)

    _, group = np.unique(np.asarray(module_ids), return_inverse=True)
    order = np.lexsort((timestamps_s, group))
    group, t, x = group[order], timestamps_s[order], signals[order]

    # One sortable key per reading; consecutive modules are further apart than any window,
    # so a search on the key never crosses from one module's series into another's.
    relative_t = t - t.min()
    stride = float(relative_t.max()) + WINDOW_S + RATE_MAX_GAP_S + 1.0
    key = group * stride + relative_t
    window_start = np.searchsorted(key, key - window_s, side="left")

    # The latest earlier reading of the same module at least RATE_MIN_GAP_S older.
    previous_row = np.searchsorted(key, key - RATE_MIN_GAP_S, side="right") - 1
    has_previous = (previous_row >= 0) & (group[np.maximum(previous_row, 0)] == group)
    dt = t - t[np.maximum(previous_row, 0)]
    rate_ok = (has_previous & (dt <= rate_gap_s))[:, None]
    rated = x[:, _RATE_COLUMNS]
    previous = rated[np.maximum(previous_row, 0)]
    rates = np.where(rate_ok, (rated - previous) / np.where(rate_ok, dt[:, None], 1.0) * 60.0, 0.0)

    windowed = x[:, _WINDOW_COLUMNS]
    mean, std = _window_mean_std(windowed - _WINDOW_REFERENCE, window_start)
    window_stats = np.stack(
        (mean + _WINDOW_REFERENCE, std, _window_max(windowed, window_start)), axis=2
    ).reshape(n_rows, -1)

    history = t - t[window_start]
    has_history = (history >= RATE_MIN_GAP_S)[:, None]
    sloped = x[:, _SLOPE_COLUMNS]
    slopes = np.where(
        has_history,
        (sloped - sloped[window_start]) / np.where(has_history, history[:, None], 1.0) * 60.0,
        0.0,
    )

    sorted_features = np.concatenate(
        (
            x,
            (x[:, _VOLTAGE_MAX] - x[:, _VOLTAGE_MIN])[:, None],
            (x[:, _TEMP_MAX] - x[:, _AMBIENT])[:, None],
            rates,
            window_stats,
            slopes,
            history[:, None],
        ),
        axis=1,
    )
    features[order] = sorted_features
    return features


def _first_reading_features(x: np.ndarray) -> np.ndarray:
    """What the general code computes for a reading with no history, in 1/5 of the time.

    The same operations on the same values, so the same bits (a test compares the two):
    rates and slopes 0, window mean `(x - reference) + reference`, std 0 and max x, or NaN
    for a missing value; history 0.
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
    return np.concatenate(
        (
            x,
            (x[_VOLTAGE_MAX] - x[_VOLTAGE_MIN], x[_TEMP_MAX] - x[_AMBIENT]),
            np.zeros(len(RATE_SIGNALS)),
            window_stats,
            np.zeros(len(SLOPE_SIGNALS) + 1),  # slopes, then history_s
        )
    )


def _window_mean_std(values: np.ndarray, window_start: np.ndarray) -> tuple[np.ndarray, ...]:
    """NaN-ignoring mean and population std of values[window_start[i] : i + 1], per column."""
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    cumulative_count = np.concatenate(
        (np.zeros((1, values.shape[1]), dtype=np.int64), np.cumsum(present, axis=0))
    )
    count = cumulative_count[1:] - cumulative_count[window_start]
    total = _window_sum(filled, window_start)
    squares = _window_sum(filled * filled, window_start)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        variance = np.where(count > 0, squares / count - mean * mean, np.nan)
    return mean, np.sqrt(np.clip(variance, 0.0, None))


def _window_sum(values: np.ndarray, window_start: np.ndarray) -> np.ndarray:
    """Sum of values[window_start[i] : i + 1], per column, from blocks of 2**k readings.

    A running cumulative sum would subtract two large totals and make a reading's
    features depend on how many readings came before it (training sees whole series,
    serving a few readings). Summing the window's own power-of-two blocks, walked from
    the reading backwards, gives the same bits for the same window wherever it sits.
    """
    n_rows = values.shape[0]
    length = np.arange(n_rows) - window_start + 1
    position = np.arange(n_rows)
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
