"""Harmless look-alikes: conditions that move the signals a fault moves, and are no fault.

Each one is an Episode with a label window; the lookalike column of a reading lists the
episodes whose window holds it ('+'-joined, in LOOKALIKE_KINDS order), so false alarms can
be counted per kind and per exposure hour. Rack-level episodes (fast charge, HVAC failure,
sun, exhaust plume) reach every module of the rack, faulty ones included; module-level ones
(gas-sensor offset or drift, a hottest-cell sensor stuck or drifting high, a neighbour's
heat, cell balancing) are drawn per module. Some act on the physics (air, cells), some on
the sensors only; the sensor layer adds the last kind, isolated spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from src.data._config import SimulationConfig
from src.data._draw import Sampler
from src.data._physics import RackProfile, first_order_lag, sigmoid

LOOKALIKE_KINDS: tuple[str, ...] = (
    "fast_charge",
    "hvac_failure",
    "sun_heat",
    "gas_plume",
    "gas_offset",
    "gas_drift",
    "temp_sensor_stuck",
    "temp_sensor_drift",
    "neighbour_heat",
    "balancing",
    "sensor_spike",
)
"""Every name that can appear in the lookalike column."""

THERMAL_TAIL_S = 1800.0
"""Cells stay warm about one thermal time constant after a heat source ends: label that too."""
RAMP_WIDTHS = 2.0
"""A smooth episode's label starts this many ramp widths before its nominal start."""

# Sizes and durations (log-uniform unless noted). Judgement; see docs/simulator.md.
RANGES: dict[str, tuple[float, float]] = {
    "hvac_rise_c": (3.0, 6.0),  # uniform
    "hvac_hold_min": (60.0, 120.0),  # uniform
    "hvac_ramp_min": (5.0, 10.0),  # uniform
    "sun_rise_c": (2.0, 8.0),
    "sun_hours": (2.0, 5.0),
    "plume_ppm": (5.0, 40.0),  # CO; VOC twice that, H2 a tenth
    "plume_min": (3.0, 20.0),
    "gas_offset_ppm": (5.0, 15.0),  # uniform, per gas sensor
    "gas_drift_ppm_per_h": (2.0, 8.0),
    "gas_episode_h": (1.0, 12.0),
    "temp_fault_c": (3.0, 15.0),
    "temp_stuck_min": (10.0, 180.0),
    "temp_drift_ramp_min": (20.0, 90.0),
    "temp_drift_min": (30.0, 240.0),
    "neighbour_rise_c": (3.0, 12.0),
    "neighbour_min": (30.0, 180.0),
    "neighbour_ramp_min": (5.0, 15.0),
    "neighbour_avg_share": (0.6, 1.0),  # uniform
    "balancing_v": (0.015, 0.08),
    "balancing_min": (10.0, 60.0),
    "balancing_heat_c": (0.3, 1.5),
}
PLUME_SHARE = {"h2": 0.1, "co": 1.0, "voc": 2.0}
GAS_COLUMNS = ("h2_ppm", "co_ppm", "voc_ppm")


@dataclass(frozen=True)
class Episode:
    """One harmless condition on [start_s, end_s) (true seconds), labelled until label_end_s."""

    kind: str
    start_s: float
    end_s: float
    label_end_s: float
    size: tuple[float, ...] = ()
    label_start_s: float | None = None

    def active(self, t_s: np.ndarray) -> np.ndarray:
        start = self.start_s if self.label_start_s is None else self.label_start_s
        return (t_s >= start) & (t_s < self.label_end_s)


def _bump(t_s: np.ndarray, start_s: float, end_s: float, ramp_s: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 over [start, end], each edge about 4 ramp widths long."""
    return sigmoid((t_s - start_s) / ramp_s) - sigmoid((t_s - end_s) / ramp_s)


def _smooth(kind: str, start: float, end: float, ramp: float, tail: float, *size: float):
    return Episode(
        kind,
        start,
        end,
        end + RAMP_WIDTHS * ramp + tail,
        (ramp, *size),
        label_start_s=start - RAMP_WIDTHS * ramp,
    )


def add_rack_lookalikes(
    sampler: Sampler, config: SimulationConfig, rack: RackProfile
) -> tuple[RackProfile, tuple[Episode, ...]]:
    """Rack-level episodes: they change the rack's air and gas, shared by its modules."""
    rng, r, duration_s = sampler.rng, RANGES, config.duration_s
    grid = rack.grid_s
    ambient, gas = rack.ambient_grid_c.copy(), rack.gas_grid_ppm.copy()
    episodes: list[Episode] = []
    if rack.fast_charge_s is not None:
        start, end = rack.fast_charge_s
        episodes.append(Episode("fast_charge", start, end, end + THERMAL_TAIL_S))
    if rng.random() < config.hvac_failure_rack_fraction:
        # A slow rise of a few degrees across the whole rack, then recovery.
        ramp = rng.uniform(*r["hvac_ramp_min"]) * 60.0
        begin = rng.uniform(0.1, 0.6) * duration_s
        end = begin + rng.uniform(*r["hvac_hold_min"]) * 60.0
        ambient += sampler.uniform(*r["hvac_rise_c"]) * _bump(grid, begin, end, ramp)
        episodes.append(_smooth("hvac_failure", begin, end, ramp, THERMAL_TAIL_S))
    if rng.random() < config.sun_heat_rack_fraction:
        # Solar gain on the enclosure wall: a half-sine over a few hours.
        length = sampler.log_uniform(*r["sun_hours"]) * 3600.0
        begin = rng.uniform(-0.5 * length, duration_s)
        phase = np.clip((grid - begin) / length, 0.0, 1.0)
        ambient += sampler.log_uniform(*r["sun_rise_c"]) * np.sin(np.pi * phase)
        episodes.append(Episode("sun_heat", begin, begin + length, begin + length + THERMAL_TAIL_S))
    if rng.random() < config.gas_plume_rack_fraction:
        # Exhaust (a generator, a truck) drawn in by the rack's air intake.
        length = sampler.log_uniform(*r["plume_min"]) * 60.0
        begin = rng.uniform(0.0, duration_s)
        ramp = 0.1 * length
        shape = _bump(grid, begin, begin + length, ramp) * np.exp(rng.normal(0.0, 0.2, grid.size))
        co = sampler.log_uniform(*r["plume_ppm"])
        for column, gas_name in enumerate(("h2", "co", "voc")):
            gas[:, column] += co * PLUME_SHARE[gas_name] * shape
        episodes.append(_smooth("gas_plume", begin, begin + length, ramp, 0.0))
    return replace(rack, ambient_grid_c=ambient, gas_grid_ppm=gas), tuple(episodes)


def draw_module_lookalikes(
    sampler: Sampler, config: SimulationConfig, rack_episodes: tuple[Episode, ...]
) -> tuple[Episode, ...]:
    """Module-level episodes, each at a random time of the series."""
    rng, r, duration_s = sampler.rng, RANGES, config.duration_s
    episodes: list[Episode] = []

    def at_random(length_s: float) -> tuple[float, float]:
        start = rng.uniform(-0.2 * length_s, duration_s)
        return start, start + length_s

    fast_start = next((e.start_s for e in rack_episodes if e.kind == "fast_charge"), np.inf)
    offsets = tuple(float(sampler.uniform(*r["gas_offset_ppm"])) for _ in GAS_COLUMNS)
    if fast_start < duration_s and rng.random() < config.gas_offset_fast_charge_fraction:
        # The combination that fooled the old model: a fast charge on a module whose gas
        # sensors read high. The offset starts before the charge and stays.
        start = rng.uniform(0.0, fast_start)
        episodes.append(Episode("gas_offset", start, np.inf, np.inf, offsets))
    elif rng.random() < config.gas_offset_module_fraction:
        start, end = at_random(sampler.log_uniform(*r["gas_episode_h"]) * 3600.0)
        episodes.append(Episode("gas_offset", start, end, end, offsets))
    if rng.random() < config.gas_drift_module_fraction:
        start, end = at_random(sampler.log_uniform(*r["gas_episode_h"]) * 3600.0)
        rates = tuple(float(sampler.log_uniform(*r["gas_drift_ppm_per_h"])) for _ in GAS_COLUMNS)
        episodes.append(Episode("gas_drift", start, end, end, rates))
    if rng.random() < config.temp_sensor_fault_module_fraction:
        high = float(sampler.log_uniform(*r["temp_fault_c"]))
        if rng.random() < 0.5:
            start, end = at_random(sampler.log_uniform(*r["temp_stuck_min"]) * 60.0)
            episodes.append(Episode("temp_sensor_stuck", start, end, end, (high,)))
        else:
            start, end = at_random(sampler.log_uniform(*r["temp_drift_min"]) * 60.0)
            ramp = float(sampler.log_uniform(*r["temp_drift_ramp_min"]) * 60.0)
            episodes.append(Episode("temp_sensor_drift", start, end, end, (high, ramp)))
    if rng.random() < config.neighbour_heat_module_fraction:
        ramp = float(sampler.log_uniform(*r["neighbour_ramp_min"]) * 60.0)
        start, end = at_random(sampler.log_uniform(*r["neighbour_min"]) * 60.0)
        rise = float(sampler.log_uniform(*r["neighbour_rise_c"]))
        share = sampler.fraction(*r["neighbour_avg_share"])
        episodes.append(_smooth("neighbour_heat", start, end, ramp, THERMAL_TAIL_S, rise, share))
    if rng.random() < config.balancing_module_fraction:
        length = float(sampler.log_uniform(*r["balancing_min"]) * 60.0)
        start, end = at_random(length)
        low_cell = float(rng.random() < 0.5)
        volts = float(sampler.log_uniform(*r["balancing_v"]))
        heat = float(sampler.log_uniform(*r["balancing_heat_c"]))
        episodes.append(_smooth("balancing", start, end, 0.1 * length, 0.0, volts, low_cell, heat))
    return tuple(episodes)


def apply_physical(
    episodes: tuple[Episode, ...], t_s: np.ndarray, sig: dict[str, np.ndarray], tau_thermal_s: float
) -> None:
    """Module-level episodes that change what the cells do (in place)."""
    dt_s = np.diff(t_s, prepend=t_s[0] - 10.0)
    for episode in episodes:
        if episode.kind == "neighbour_heat":
            # Heat through the module's side wall, not through the rack's inlet air.
            ramp, rise, share = episode.size
            outside = rise * _bump(t_s, episode.start_s, episode.end_s, ramp)
            soaked = first_order_lag(outside, dt_s, 0.5 * tau_thermal_s, 0.0)
            sig["cell_temp_max_c"] += soaked
            sig["cell_temp_avg_c"] += share * soaked
        elif episode.kind == "balancing":
            ramp, volts, low_cell, heat = episode.size
            shape = _bump(t_s, episode.start_s, episode.end_s, ramp)
            if low_cell:
                sig["cell_voltage_min_v"] -= volts * shape
            else:
                sig["cell_voltage_max_v"] += volts * shape
            sig["cell_temp_max_c"] += heat * shape  # the bleed resistors warm the board


def sensor_bias(episodes: tuple[Episode, ...], t_s: np.ndarray) -> dict[str, np.ndarray]:
    """Module-level episodes that only change what the sensors read: additive biases."""
    bias: dict[str, np.ndarray] = {}

    def add(name: str, values: np.ndarray) -> None:
        bias[name] = bias.get(name, 0.0) + values

    for episode in episodes:
        on = (t_s >= episode.start_s) & (t_s < episode.end_s)
        if episode.kind == "gas_offset":
            for name, offset in zip(GAS_COLUMNS, episode.size, strict=True):
                add(name, offset * on)
        elif episode.kind == "gas_drift":
            hours = np.clip(t_s - episode.start_s, 0.0, None) / 3600.0
            for name, rate in zip(GAS_COLUMNS, episode.size, strict=True):
                add(name, rate * hours * on)
        elif episode.kind == "temp_sensor_drift":
            high, ramp = episode.size
            add("cell_temp_max_c", high * np.clip((t_s - episode.start_s) / ramp, 0.0, 1.0) * on)
    return bias


def stuck_high(
    episodes: tuple[Episode, ...], t_s: np.ndarray
) -> list[tuple[str, np.ndarray, float]]:
    """Sensors that freeze at a value above their last reading: (signal, rows, jump)."""
    return [
        ("cell_temp_max_c", (t_s >= e.start_s) & (t_s < e.end_s), e.size[0])
        for e in episodes
        if e.kind == "temp_sensor_stuck"
    ]


def label_bits(episodes: tuple[Episode, ...], t_s: np.ndarray) -> np.ndarray:
    """One bit per LOOKALIKE_KINDS entry, set where that kind's episode is active."""
    bits = np.zeros(t_s.size, dtype=np.int64)
    for episode in episodes:
        bits |= episode.active(t_s).astype(np.int64) << LOOKALIKE_KINDS.index(episode.kind)
    return bits


def spike_bit() -> int:
    return 1 << LOOKALIKE_KINDS.index("sensor_spike")


def labels(bits: np.ndarray) -> np.ndarray:
    """The lookalike column: '+'-joined kind names per reading, '' where none is active."""
    unique, inverse = np.unique(bits, return_inverse=True)
    names = [
        "+".join(kind for i, kind in enumerate(LOOKALIKE_KINDS) if value >> i & 1)
        for value in unique
    ]
    return np.array(names, dtype=object)[inverse]
