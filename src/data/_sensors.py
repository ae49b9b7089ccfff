"""Sensor imperfections for the simulator: timing jitter, lost readings, noise, spikes, gaps.

Every module gets these, faulty or not, so a model cannot tell faults from the data's
cleanliness. Values are a (samples x signals) array in SIGNAL_NAMES order.
"""

from __future__ import annotations

import numpy as np

from src.data.signals import SAMPLE_PERIOD_S, SIGNAL_NAMES, SIGNALS

# Gaussian sensor noise per signal: (absolute sigma, sigma relative to the value). The
# relative part matters only far from normal, e.g. a gas sensor reading thousands of ppm.
_NOISE = {
    "cell_voltage_min_v": (0.002, 0.0),
    "cell_voltage_max_v": (0.002, 0.0),
    "cell_voltage_avg_v": (0.001, 0.0),
    "current_a": (0.3, 0.005),
    "soc_pct": (0.1, 0.0),
    "cell_temp_max_c": (0.1, 0.003),
    "cell_temp_avg_c": (0.05, 0.003),
    "ambient_temp_c": (0.1, 0.0),
    "internal_resistance_mohm": (0.01, 0.01),
    "h2_ppm": (0.3, 0.03),
    "co_ppm": (0.4, 0.03),
    "voc_ppm": (0.8, 0.03),
    "pressure_kpa": (0.03, 0.0),
    "smoke_obscuration_pct_per_m": (0.01, 0.03),
}

# Size of an isolated outlier (glitch) per signal: (low, high, can be negative).
_OUTLIER = {
    "cell_voltage_min_v": (0.3, 1.5, True),
    "cell_voltage_max_v": (0.3, 1.5, True),
    "cell_voltage_avg_v": (0.3, 1.5, True),
    "current_a": (100.0, 500.0, True),
    "soc_pct": (10.0, 50.0, True),
    "cell_temp_max_c": (15.0, 80.0, True),
    "cell_temp_avg_c": (15.0, 80.0, True),
    "ambient_temp_c": (10.0, 40.0, True),
    "internal_resistance_mohm": (1.0, 10.0, False),
    "h2_ppm": (20.0, 200.0, False),
    "co_ppm": (20.0, 150.0, False),
    "voc_ppm": (30.0, 300.0, False),
    "pressure_kpa": (2.0, 15.0, True),
    "smoke_obscuration_pct_per_m": (0.5, 5.0, False),
}

_NOISE_ABS = np.array([_NOISE[name][0] for name in SIGNAL_NAMES])
_NOISE_REL = np.array([_NOISE[name][1] for name in SIGNAL_NAMES])
_OUTLIER_LOW = np.array([_OUTLIER[name][0] for name in SIGNAL_NAMES])
_OUTLIER_HIGH = np.array([_OUTLIER[name][1] for name in SIGNAL_NAMES])
_OUTLIER_SIGNED = np.array([_OUTLIER[name][2] for name in SIGNAL_NAMES])
_SENSOR_MIN = np.array([signal.sensor_min for signal in SIGNALS])
_SENSOR_MAX = np.array([signal.sensor_max for signal in SIGNALS])

DROPOUT_SAMPLES = (6, 60)
"""A drop-out blanks one signal for 6-60 readings (1-10 minutes)."""


def sample_times(
    rng: np.random.Generator, horizon_s: float, jitter_s: float, lost_rate: float
) -> np.ndarray:
    """Reading times in seconds from series start: a 10 s grid, jittered, with lost readings.

    Each module gets its own phase on the grid, as BMS slaves are not synchronised.
    """
    nominal = np.arange(0.0, horizon_s, SAMPLE_PERIOD_S) + rng.uniform(jitter_s, 10.0 - jitter_s)
    nominal = nominal[nominal < horizon_s]
    times = nominal + rng.uniform(-jitter_s, jitter_s, nominal.size)
    kept = rng.random(times.size) >= lost_rate
    kept[0] = True
    return times[kept]


def corrupt(
    rng: np.random.Generator,
    values: np.ndarray,
    missing_rate: float,
    outlier_rate: float,
    dropouts_per_module_day: float,
) -> np.ndarray:
    """Add noise and outliers, clip to each sensor's range, then blank missing values."""
    noisy = values + rng.normal(0.0, 1.0, values.shape) * (_NOISE_ABS + _NOISE_REL * np.abs(values))
    spikes = rng.random(values.shape) < outlier_rate
    rows, cols = np.nonzero(spikes)
    size = rng.uniform(_OUTLIER_LOW[cols], _OUTLIER_HIGH[cols])
    sign = np.where(_OUTLIER_SIGNED[cols] & (rng.random(cols.size) < 0.5), -1.0, 1.0)
    noisy[rows, cols] += sign * size
    out = np.clip(noisy, _SENSOR_MIN, _SENSOR_MAX)
    out[rng.random(values.shape) < missing_rate] = np.nan
    n_samples = values.shape[0]
    expected = dropouts_per_module_day * n_samples * SAMPLE_PERIOD_S / 86400.0
    for _ in range(rng.poisson(expected)):
        start = int(rng.integers(n_samples))
        length = int(rng.integers(DROPOUT_SAMPLES[0], DROPOUT_SAMPLES[1] + 1))
        out[start : start + length, int(rng.integers(values.shape[1]))] = np.nan
    return out
