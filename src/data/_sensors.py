"""Sensor realities for the simulator: what a BMS reports instead of the true values.

Every module gets all of these, faulty or not, so a model cannot tell faults from the
data's cleanliness: calibration offsets and slow drift, noise, isolated spikes, coarse
resolution, stuck sensors, missing values, single-signal drop-outs, comms losses that
blank many signals at once, lost readings, timestamp jitter, clock jumps and duplicated
readings. Values are a (samples x signals) array in SIGNAL_NAMES order. Rates are config
knobs (SimulationConfig); sizes are the tables below (docs/simulator.md lists both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data._config import SimulationConfig
from src.data._draw import Sampler
from src.data.signals import SAMPLE_PERIOD_S, SIGNAL_INDEX, SIGNAL_NAMES, SIGNALS

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

# Reporting resolution of a fine BMS; coarse racks replace the temperature and voltage
# steps. Gas sensors report integer ppm everywhere.
RESOLUTION = {
    "cell_voltage_min_v": 0.001,
    "cell_voltage_max_v": 0.001,
    "cell_voltage_avg_v": 0.001,
    "current_a": 0.1,
    "soc_pct": 0.1,
    "cell_temp_max_c": 0.1,
    "cell_temp_avg_c": 0.1,
    "ambient_temp_c": 0.1,
    "internal_resistance_mohm": 0.001,
    "h2_ppm": 1.0,
    "co_ppm": 1.0,
    "voc_ppm": 1.0,
    "pressure_kpa": 0.01,
    "smoke_obscuration_pct_per_m": 0.01,
}
COARSE_TEMP_STEPS_C = (0.5, 1.0)
COARSE_VOLTAGE_STEPS_V = (0.005, 0.01)

TEMPERATURES = ("cell_temp_max_c", "cell_temp_avg_c", "ambient_temp_c")
VOLTAGES = ("cell_voltage_min_v", "cell_voltage_max_v", "cell_voltage_avg_v")
GASES = ("h2_ppm", "co_ppm", "voc_ppm")
POSITIVE_GAS_OFFSET_SHARE = 0.7
"""Gas sensors more often read high than low; a negative offset clips the baseline at 0."""
CURRENT_OFFSET_MAX_A = 0.5
"""Hall-sensor zero offset of the module current, uniform either way."""

DROPOUT_SAMPLES = (6, 60)
"""A drop-out blanks one signal for 6-60 readings (1-10 minutes)."""
COMMS_LOSS_SAMPLES = (3, 60)
"""A comms loss blanks many signals for 3-60 readings (30 s - 10 min)..."""
COMMS_LOSS_SHARE = (0.6, 1.0)
"""...this share of all signals, together."""
STUCK_SAMPLES = (12.0, 1080.0)
"""A stuck sensor repeats its value for 12-1080 readings (2 min - 3 h, log-uniform)."""
CLOCK_JUMP_MIN_S = 2.0

_NOISE_ABS = np.array([_NOISE[name][0] for name in SIGNAL_NAMES])
_NOISE_REL = np.array([_NOISE[name][1] for name in SIGNAL_NAMES])
_OUTLIER_LOW = np.array([_OUTLIER[name][0] for name in SIGNAL_NAMES])
_OUTLIER_HIGH = np.array([_OUTLIER[name][1] for name in SIGNAL_NAMES])
_OUTLIER_SIGNED = np.array([_OUTLIER[name][2] for name in SIGNAL_NAMES])
_SENSOR_MIN = np.array([signal.sensor_min for signal in SIGNALS])
_SENSOR_MAX = np.array([signal.sensor_max for signal in SIGNALS])


def draw_resolution(rng: np.random.Generator, coarse_fraction: float) -> np.ndarray:
    """One rack's reporting steps per signal (its BMS hardware generation)."""
    steps = dict(RESOLUTION)
    if rng.random() < coarse_fraction:
        temp_step = float(rng.choice(COARSE_TEMP_STEPS_C))
        volt_step = float(rng.choice(COARSE_VOLTAGE_STEPS_V))
        steps.update(dict.fromkeys(TEMPERATURES, temp_step))
        steps.update(dict.fromkeys(VOLTAGES, volt_step))
    return np.array([steps[name] for name in SIGNAL_NAMES])


@dataclass(frozen=True)
class Calibration:
    """One module's sensor errors: a constant offset and a drift per second, per signal."""

    offset: np.ndarray
    drift_per_s: np.ndarray

    @classmethod
    def draw(cls, sampler: Sampler, config: SimulationConfig) -> Calibration:
        rng = sampler.rng
        offset = np.zeros(len(SIGNAL_NAMES))
        drift = np.zeros(len(SIGNAL_NAMES))
        for name in GASES:
            size = min(
                rng.exponential(config.gas_offset_mean_ppm) * sampler.spread,
                config.gas_offset_max_ppm,
            )
            sign = 1.0 if rng.random() < POSITIVE_GAS_OFFSET_SHARE else -1.0
            offset[SIGNAL_INDEX[name]] = sign * size
            drift[SIGNAL_INDEX[name]] = sampler.normal(config.gas_drift_sigma_ppm_per_h) / 3600.0
        for names, limit in (
            (TEMPERATURES, config.temp_offset_max_c),
            (VOLTAGES, config.voltage_offset_max_v),
            (("current_a",), CURRENT_OFFSET_MAX_A),
        ):
            for name in names:
                offset[SIGNAL_INDEX[name]] = sampler.uniform(-limit, limit)
        return cls(offset, drift)


def sample_times(
    rng: np.random.Generator, horizon_s: float, jitter_s: float, lost_rate: float
) -> np.ndarray:
    """True reading times in seconds from series start: a jittered 10 s grid, some lost.

    Each module gets its own phase on the grid, as BMS slaves are not synchronised.
    """
    nominal = np.arange(0.0, horizon_s, SAMPLE_PERIOD_S) + rng.uniform(jitter_s, 10.0 - jitter_s)
    nominal = nominal[nominal < horizon_s]
    times = nominal + rng.uniform(-jitter_s, jitter_s, nominal.size)
    kept = rng.random(times.size) >= lost_rate
    kept[0] = True
    return times[kept]


def _per_day(rng: np.random.Generator, rate_per_day: float, t_s: np.ndarray) -> int:
    """How many episodes of a per-module-day rate fall in this series."""
    return int(rng.poisson(rate_per_day * (t_s[-1] - t_s[0] + SAMPLE_PERIOD_S) / 86400.0))


def read(
    sampler: Sampler,
    config: SimulationConfig,
    clean: np.ndarray,
    t_s: np.ndarray,
    calibration: Calibration,
    resolution: np.ndarray,
    bias: np.ndarray,
    stuck_high: list[tuple[int, np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """What the BMS reports for true values `clean`; also which rows carry a spike.

    Order: calibration (and look-alike biases), noise, spikes, clipping to the sensor's
    range, quantisation, stuck sensors, then every kind of blank (NaN).
    """
    rng = sampler.rng
    n_samples, n_signals = clean.shape
    since_s = (t_s - t_s[0])[:, None]
    x = clean + bias + calibration.offset + calibration.drift_per_s * since_s
    x += rng.normal(0.0, 1.0, x.shape) * sampler.spread * (_NOISE_ABS + _NOISE_REL * np.abs(x))
    spikes = rng.random(x.shape) < config.outlier_rate
    rows, cols = np.nonzero(spikes)
    size = rng.uniform(_OUTLIER_LOW[cols], _OUTLIER_HIGH[cols])
    sign = np.where(_OUTLIER_SIGNED[cols] & (rng.random(cols.size) < 0.5), -1.0, 1.0)
    x[rows, cols] += sign * size
    out = np.round(np.clip(x, _SENSOR_MIN, _SENSOR_MAX) / resolution) * resolution

    for _ in range(_per_day(rng, config.stuck_per_module_day, t_s)):
        start = int(rng.integers(n_samples))
        length = int(np.exp(rng.uniform(*np.log(STUCK_SAMPLES))))
        col = int(rng.integers(n_signals))
        out[start : start + length, col] = out[start, col]
    for col, rows_on, jump in stuck_high:
        if rows_on.any():
            first = int(np.argmax(rows_on))
            frozen = np.round((out[first, col] + jump) / resolution[col]) * resolution[col]
            out[rows_on, col] = frozen

    out[rng.random(out.shape) < config.missing_rate] = np.nan
    for _ in range(_per_day(rng, config.dropouts_per_module_day, t_s)):
        start = int(rng.integers(n_samples))
        length = int(rng.integers(DROPOUT_SAMPLES[0], DROPOUT_SAMPLES[1] + 1))
        out[start : start + length, int(rng.integers(n_signals))] = np.nan
    for _ in range(_per_day(rng, config.comms_losses_per_module_day, t_s)):
        start = int(rng.integers(n_samples))
        length = int(rng.integers(COMMS_LOSS_SAMPLES[0], COMMS_LOSS_SAMPLES[1] + 1))
        count = int(np.ceil(rng.uniform(*COMMS_LOSS_SHARE) * n_signals))
        out[start : start + length, rng.choice(n_signals, count, replace=False)] = np.nan
    return out, spikes.any(axis=1)


def reported_times(
    rng: np.random.Generator, config: SimulationConfig, t_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The BMS clock's timestamps for true times t_s, and the rows it sends, in its order.

    The clock steps forward or backward now and then (each step lasts until the series
    ends); some readings are sent twice. Returns (reported seconds per true row, row
    indices with duplicates, sorted by reported time; a stable sort keeps equal times in
    true order).
    """
    n_jumps = _per_day(rng, config.clock_jumps_per_module_day, t_s)
    jump_at = np.sort(rng.uniform(t_s[0], t_s[-1], n_jumps))
    log_size = rng.uniform(np.log(CLOCK_JUMP_MIN_S), np.log(config.clock_jump_max_s), n_jumps)
    step = np.exp(log_size) * np.where(rng.random(n_jumps) < 0.5, -1.0, 1.0)
    offset = np.concatenate(([0.0], np.cumsum(step)))[np.searchsorted(jump_at, t_s, side="right")]
    reported = t_s + offset
    sent = 1 + (rng.random(t_s.size) < config.duplicate_rate)
    rows = np.repeat(np.arange(t_s.size), sent)
    return reported, rows[np.argsort(reported[rows], kind="stable")]
