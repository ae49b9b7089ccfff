"""Seeded simulator of high-voltage battery storage telemetry, with thermal-runaway events.

There is no public data set of racks burning with 10 s BMS telemetry, so the model is
trained and tested on this simulator. It models healthy cycling, sensor imperfections,
harmless look-alike events and four fault scenarios whose precursors rise in a realistic
order before thermal-runaway onset (see docs/simulator.md for every choice and rate).

Randomness comes from one ``numpy.random.SeedSequence`` per site, rack and module, keyed by
position rather than drawn in sequence, so a module's data does not depend on the order in
which modules are generated and equal configs give identical frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.data import _faults, _physics, _sensors
from src.data.signals import HAZARD_HORIZON_S, SAMPLE_PERIOD_S, SIGNAL_NAMES

logger = logging.getLogger(__name__)

FAULT_TYPES: tuple[str, ...] = (
    "internal_short",
    "overcharge",
    "cooling_failure",
    "external_heating",
)

COLUMNS: tuple[str, ...] = (
    "module_id",
    "rack_id",
    "timestamp_s",
    *SIGNAL_NAMES,
    "fault_type",
    "event_id",
    "onset_s",
    "hazardous",
)
"""Column order of the frame simulate() returns."""

_SITE_STREAM, _PLAN_STREAM, _RACK_STREAM, _MODULE_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated site; equal configs give identical data."""

    n_racks: int = 8
    """Racks on the site; a rack's modules share one string current and one inlet air."""
    modules_per_rack: int = 16
    duration_s: float = 3 * 3600.0
    """Length of each healthy module's series; a faulty one ends 60 s after its onset."""
    n_fault_events: int = 40
    """Modules that develop a fault, spread across racks and ~equally over FAULT_TYPES."""
    seed: int = 42
    start_time_s: float = 1_767_225_600.0
    """Epoch seconds of the first reading (2026-01-01T00:00:00Z); sets the diurnal phase."""
    min_healthy_before_fault_s: float = 3600.0
    """Healthy data every faulty module reports before its fault starts."""
    missing_rate: float = 0.005
    """Probability that any single value is missing (NaN)."""
    outlier_rate: float = 0.0005
    """Probability that any single value is an isolated spike (e.g. H2 +20-200 ppm)."""
    lost_reading_rate: float = 0.005
    """Probability that a whole reading is lost, leaving a gap of 20 s or more."""
    timestamp_jitter_s: float = 0.3
    """Readings arrive up to this far either side of the 10 s grid."""
    dropouts_per_module_day: float = 4.0
    """Mean number of drop-outs (one signal NaN for 1-10 min) per module and day."""
    fast_charge_rack_fraction: float = 0.25
    """Share of racks whose next charge after a random time is a harmless ~1C fast charge
    that heats cells to ~40-45 degC (it may fall after the end of a short series)."""
    hvac_failure_rack_fraction: float = 0.25
    """Share of racks whose inlet air slowly warms by 3-6 degC for 1-2 h (HVAC fault)."""

    def __post_init__(self) -> None:
        if not (1 <= self.n_racks <= 99 and 1 <= self.modules_per_rack <= 99):
            raise ValueError("n_racks and modules_per_rack must be 1-99 (two-digit ids)")
        if not 0 <= self.n_fault_events <= min(999, self.n_racks * self.modules_per_rack):
            raise ValueError("n_fault_events must be between 0 and the number of modules")
        if self.duration_s < 10 * SAMPLE_PERIOD_S:
            raise ValueError("duration_s must cover at least ten readings")
        rates = (
            self.missing_rate,
            self.outlier_rate,
            self.lost_reading_rate,
            self.fast_charge_rack_fraction,
            self.hvac_failure_rack_fraction,
        )
        if not all(0.0 <= rate < 1.0 for rate in rates) or self.dropouts_per_module_day < 0:
            raise ValueError("rates and fractions must be in [0, 1); drop-outs must be >= 0")
        if not 0.0 <= self.timestamp_jitter_s < 5.0:
            raise ValueError("timestamp_jitter_s must be in [0, 5) so readings stay ordered")


def _rng(config: SimulationConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=key))


def _assign_faults(config: SimulationConfig) -> dict[tuple[int, int], tuple[str, str]]:
    """Pick faulty modules round-robin over shuffled racks, fault types in equal shares."""
    rng = _rng(config, _PLAN_STREAM)
    pools = [list(rng.permutation(config.modules_per_rack)) for _ in range(config.n_racks)]
    chosen: list[tuple[int, int]] = []
    while len(chosen) < config.n_fault_events:
        for rack in rng.permutation(config.n_racks):
            if pools[rack] and len(chosen) < config.n_fault_events:
                chosen.append((int(rack), int(pools[rack].pop())))
    types = rng.permutation(np.resize(np.arange(len(FAULT_TYPES)), len(chosen)))
    by_module = {module: FAULT_TYPES[kind] for module, kind in zip(chosen, types, strict=True)}
    return {
        module: (by_module[module], f"E{number:03d}")
        for number, module in enumerate(sorted(by_module), start=1)
    }


def _horizon_s(config: SimulationConfig) -> float:
    """Longest series any module can have (a faulty one may outlast duration_s)."""
    faulty = (
        config.min_healthy_before_fault_s + _faults.MAX_LEAD_S + _faults.REPORTING_AFTER_ONSET_S
    )
    return max(config.duration_s, faulty) + 120.0


def _simulate_module(
    config: SimulationConfig,
    rack_index: int,
    module_index: int,
    rack: _physics.RackProfile,
    pressure: tuple[np.ndarray, np.ndarray],
    fault: tuple[str, str] | None,
) -> dict[str, np.ndarray]:
    """One module's readings as column arrays (ids and labels included)."""
    rng = _rng(config, _MODULE_STREAM, rack_index, module_index)
    params = _physics.ModuleParams.draw(rng)
    horizon = config.duration_s if fault is None else _horizon_s(config)
    t_s = _sensors.sample_times(rng, horizon, config.timestamp_jitter_s, config.lost_reading_rate)
    current = rack.current_a(t_s)
    soc_true = _physics.module_soc_pct(params, rack, t_s)
    event = None
    if fault is not None:
        event = _faults.plan_fault(
            rng,
            fault[0],
            t_s,
            soc_true,
            current,
            config.duration_s,
            config.min_healthy_before_fault_s,
        )
        reporting = t_s <= event.onset_s + _faults.REPORTING_AFTER_ONSET_S
        t_s, current, soc_true = t_s[reporting], current[reporting], soc_true[reporting]
        _faults.apply_drive(event, t_s, current, soc_true, params.capacity_ah)

    signals = _physics.healthy_signals(rng, params, rack, pressure, t_s, current, soc_true)
    if event is not None:
        _faults.apply_fault(rng, event, t_s, signals, soc_true, params.tau_thermal_s)
    # A BMS derives min/avg/max from the same cells, so their order holds before sensor glitches.
    signals["cell_voltage_min_v"] = np.minimum(
        signals["cell_voltage_min_v"], signals["cell_voltage_avg_v"]
    )
    signals["cell_voltage_max_v"] = np.maximum(
        signals["cell_voltage_max_v"], signals["cell_voltage_avg_v"]
    )
    signals["cell_temp_max_c"] = np.maximum(signals["cell_temp_max_c"], signals["cell_temp_avg_c"])
    clean = np.column_stack([signals[name] for name in SIGNAL_NAMES])
    values = _sensors.corrupt(
        rng, clean, config.missing_rate, config.outlier_rate, config.dropouts_per_module_day
    )

    timestamp = config.start_time_s + t_s
    onset = np.nan if event is None else config.start_time_s + event.onset_s
    to_onset = onset - timestamp
    hazardous = ((to_onset >= 0.0) & (to_onset <= HAZARD_HORIZON_S)) | (timestamp > onset)
    rack_id = f"R{rack_index + 1:02d}"
    columns = {
        "module_id": np.full(t_s.size, f"{rack_id}-M{module_index + 1:02d}", dtype=object),
        "rack_id": np.full(t_s.size, rack_id, dtype=object),
        "timestamp_s": timestamp,
        **{name: values[:, i] for i, name in enumerate(SIGNAL_NAMES)},
        "fault_type": np.full(t_s.size, "none" if fault is None else fault[0], dtype=object),
        "event_id": np.full(t_s.size, "" if fault is None else fault[1], dtype=object),
        "onset_s": np.full(t_s.size, onset),
        "hazardous": hazardous.astype(np.int8),
    }
    return columns


def simulate(
    config: SimulationConfig, progress: Callable[[int, int], None] | None = None
) -> pd.DataFrame:
    """Generate the site's telemetry: one row per reading, sorted by (module_id, timestamp_s).

    progress(done_modules, total_modules) is called after each module, for progress bars.
    """
    faults = _assign_faults(config)
    horizon = _horizon_s(config)
    pressure = _physics.make_site_pressure(_rng(config, _SITE_STREAM), horizon)
    total = config.n_racks * config.modules_per_rack
    parts: list[dict[str, np.ndarray]] = []
    for rack_index in range(config.n_racks):
        rack_rng = _rng(config, _RACK_STREAM, rack_index)
        fast_charge = bool(rack_rng.random() < config.fast_charge_rack_fraction)
        hvac_failure = bool(rack_rng.random() < config.hvac_failure_rack_fraction)
        rack = _physics.make_rack_profile(
            rack_rng, horizon, config.start_time_s, fast_charge, hvac_failure
        )
        for module_index in range(config.modules_per_rack):
            parts.append(
                _simulate_module(
                    config,
                    rack_index,
                    module_index,
                    rack,
                    pressure,
                    faults.get((rack_index, module_index)),
                )
            )
            if progress is not None:
                progress(len(parts), total)
    frame = pd.DataFrame({name: np.concatenate([part[name] for part in parts]) for name in COLUMNS})
    logger.info(
        "simulated %d readings from %d modules with %d fault events", len(frame), total, len(faults)
    )
    return frame
