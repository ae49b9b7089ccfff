"""Seeded simulator of high-voltage battery storage telemetry, with thermal-runaway events.

There is no public data set of racks burning with 10 s BMS telemetry, so the model is
trained and tested on this simulator. It models LFP and NMC racks in healthy cycling,
sensor realities, harmless look-alikes (alone and combined) and five fault kinds whose
precursors follow one of several patterns before thermal-runaway onset: gas early or
late, H2 or CO first, heat or electrical signals leading (docs/simulator.md has every
choice, rate and source).

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

from src.data import _faults, _lookalikes, _physics, _precursors, _sensors
from src.data._config import SimulationConfig, widened_config
from src.data._draw import Sampler
from src.data._faults import FAULT_TYPES
from src.data._lookalikes import LOOKALIKE_KINDS
from src.data._precursors import PRECURSOR_PATTERNS
from src.data.chemistry import CHEMISTRIES, LFP, NMC, Chemistry
from src.data.signals import HAZARD_HORIZON_S, SIGNAL_INDEX, SIGNAL_NAMES

__all__ = [
    "CHEMISTRIES",
    "COLUMNS",
    "FAULT_TYPES",
    "LOOKALIKE_KINDS",
    "PRECURSOR_PATTERNS",
    "SimulationConfig",
    "fault_plan",
    "simulate",
    "widened_config",
]

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "module_id",
    "rack_id",
    "timestamp_s",
    *SIGNAL_NAMES,
    "fault_type",
    "event_id",
    "onset_s",
    "hazardous",
    "chemistry",
    "precursor_pattern",
    "lookalike",
    "true_time_s",
)
"""Column order of the frame simulate() returns."""

_SITE_STREAM, _PLAN_STREAM, _RACK_STREAM, _MODULE_STREAM, _CHEMISTRY_STREAM = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class FaultPlan:
    """What the site plan decides for one faulty module; the module draws the rest."""

    fault_type: str
    event_id: str
    pattern: str
    span_s: float


def _rng(config: SimulationConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=key))


def _pattern_slots(config: SimulationConfig, n_events: int) -> list[str]:
    """Patterns in their configured shares (largest remainder), 'led' not yet resolved."""
    shares = {
        "fast": config.fast_share,
        "gas_late": config.gas_late_share,
        "led": config.led_share,
        "co_first": config.co_first_share,
        "gas_together": config.gas_together_share,
    }
    shares["gas_early"] = max(0.0, 1.0 - sum(shares.values()))
    exact = {name: share * n_events for name, share in shares.items()}
    counts = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - counts[name], reverse=True)
    for name in by_remainder[: n_events - sum(counts.values())]:
        counts[name] += 1
    return [name for name, count in counts.items() for _ in range(count)]


def _assign_faults(config: SimulationConfig) -> dict[tuple[int, int], FaultPlan]:
    """Pick faulty modules round-robin over shuffled racks; kinds and patterns in shares."""
    rng = _rng(config, _PLAN_STREAM)
    pools = [list(rng.permutation(config.modules_per_rack)) for _ in range(config.n_racks)]
    chosen: list[tuple[int, int]] = []
    while len(chosen) < config.n_fault_events:
        for rack in rng.permutation(config.n_racks):
            if pools[rack] and len(chosen) < config.n_fault_events:
                chosen.append((int(rack), int(pools[rack].pop())))
    kinds = rng.permutation(np.resize(np.arange(len(FAULT_TYPES)), len(chosen)))
    patterns = rng.permutation(_pattern_slots(config, len(chosen)))
    plans: dict[tuple[int, int], FaultPlan] = {}
    for number, module in enumerate(sorted(chosen), start=1):
        index = chosen.index(module)
        kind, pattern = FAULT_TYPES[kinds[index]], str(patterns[index])
        pattern = _faults.led_pattern(kind) if pattern == "led" else pattern
        # Spans are log-uniform: as many events between 3 and 6 min as between 20 and 40.
        low, high = (
            (config.span_min_s, config.fast_span_s)
            if pattern == "fast"
            else (config.fast_span_s, config.span_max_s)
        )
        span = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        plans[module] = FaultPlan(kind, f"E{number:03d}", pattern, span)
    return plans


def fault_plan(config: SimulationConfig) -> pd.DataFrame:
    """The site's fault events as planned: one row per event, by event_id.

    Index event_id; columns module_id, fault_type, precursor_pattern, span_s (fault start ->
    onset, true seconds). For evaluation by span, and for tests that need the fault start.
    """
    rows = [
        {
            "event_id": plan.event_id,
            "module_id": f"R{rack + 1:02d}-M{module + 1:02d}",
            "fault_type": plan.fault_type,
            "precursor_pattern": plan.pattern,
            "span_s": plan.span_s,
        }
        for (rack, module), plan in sorted(_assign_faults(config).items())
    ]
    columns = ["event_id", "module_id", "fault_type", "precursor_pattern", "span_s"]
    return pd.DataFrame(rows, columns=columns).set_index("event_id")


def _rack_chemistry(config: SimulationConfig, rack_index: int) -> Chemistry:
    """LFP or NMC per rack (a rack is one series string of one product), evenly spread.

    Rack i is NMC when the running count floor(i * (1 - lfp_fraction) + phase) steps up at
    i: any n racks then hold floor or ceil of n * (1 - lfp_fraction) NMC racks, and a
    rack's chemistry depends only on its index and the seeded phase, not on how many racks
    there are.
    """
    phase = _rng(config, _CHEMISTRY_STREAM).random()
    share = 1.0 - config.lfp_fraction
    steps = np.floor((rack_index + 1) * share + phase) - np.floor(rack_index * share + phase)
    return NMC if steps >= 1.0 else LFP


def _horizon_s(config: SimulationConfig) -> float:
    """Longest series any module can have (a faulty one may outlast duration_s)."""
    faulty = (
        config.min_healthy_before_fault_s
        + 2 * _faults.OVERCHARGE_MAX_REACH_S  # fallback: a late start, then a long charge
        + config.span_max_s
        + _faults.REPORTING_AFTER_ONSET_S
    )
    return max(config.duration_s, faulty) + 120.0


def _simulate_module(
    config: SimulationConfig,
    rack_index: int,
    module_index: int,
    rack: _physics.RackProfile,
    rack_episodes: tuple[_lookalikes.Episode, ...],
    resolution: np.ndarray,
    pressure: tuple[np.ndarray, np.ndarray],
    plan: FaultPlan | None,
) -> dict[str, np.ndarray]:
    """One module's readings as column arrays (ids and labels included)."""
    rng = _rng(config, _MODULE_STREAM, rack_index, module_index)
    sampler = Sampler(rng, config.spread)
    params = _physics.ModuleParams.draw(sampler)
    calibration = _sensors.Calibration.draw(sampler, config)
    episodes = rack_episodes + _lookalikes.draw_module_lookalikes(sampler, config, rack_episodes)
    horizon = config.duration_s if plan is None else _horizon_s(config)
    t_s = _sensors.sample_times(rng, horizon, config.timestamp_jitter_s, config.lost_reading_rate)
    current = rack.current_a(t_s)
    soc_true = _physics.module_soc_pct(params, rack, t_s)
    event = None
    if plan is not None:
        event = _faults.plan_fault(
            sampler,
            plan.fault_type,
            plan.pattern,
            plan.span_s,
            t_s,
            soc_true,
            current,
            params.capacity_ah,
            config.duration_s,
            config.min_healthy_before_fault_s,
        )
        reporting = t_s <= event.onset_s + _faults.REPORTING_AFTER_ONSET_S
        t_s, current, soc_true = t_s[reporting], current[reporting], soc_true[reporting]
        _faults.apply_drive(event, t_s, current, soc_true, params.capacity_ah)

    signals = _physics.healthy_signals(rng, params, rack, pressure, t_s, current, soc_true)
    _lookalikes.apply_physical(episodes, t_s, signals, params.tau_thermal_s)
    if event is not None:
        _faults.apply_driver(sampler, event, t_s, signals, soc_true, params.tau_thermal_s)
        cascade = _precursors.draw_cascade(sampler, rack.chemistry, event.pattern, plan.span_s)
        _precursors.apply_cascade(sampler, cascade, rack.chemistry, event.onset_s, t_s, signals)
    # A BMS derives min/avg/max from the same cells, so their order holds before sensor errors.
    signals["cell_voltage_min_v"] = np.minimum(
        signals["cell_voltage_min_v"], signals["cell_voltage_avg_v"]
    )
    signals["cell_voltage_max_v"] = np.maximum(
        signals["cell_voltage_max_v"], signals["cell_voltage_avg_v"]
    )
    signals["cell_temp_max_c"] = np.maximum(signals["cell_temp_max_c"], signals["cell_temp_avg_c"])
    clean = np.column_stack([signals[name] for name in SIGNAL_NAMES])
    bias = np.zeros_like(clean)
    for name, values in _lookalikes.sensor_bias(episodes, t_s).items():
        bias[:, SIGNAL_INDEX[name]] = values
    stuck = [
        (SIGNAL_INDEX[name], rows, jump)
        for name, rows, jump in _lookalikes.stuck_high(episodes, t_s)
    ]
    values, spiked = _sensors.read(
        sampler, config, clean, t_s, calibration, resolution, bias, stuck
    )

    # Labels use the true time of each reading; timestamp_s is what the BMS clock said.
    onset = np.nan if event is None else config.start_time_s + event.onset_s
    to_onset = onset - (config.start_time_s + t_s)
    hazardous = ((to_onset >= 0.0) & (to_onset <= HAZARD_HORIZON_S)) | (to_onset < 0.0)
    bits = _lookalikes.label_bits(episodes, t_s) | np.where(spiked, _lookalikes.spike_bit(), 0)
    bits[hazardous] = 0  # a hazardous reading is the fault's, whatever else is going on
    reported, rows = _sensors.reported_times(rng, config, t_s)
    n = rows.size
    rack_id = f"R{rack_index + 1:02d}"
    return {
        "module_id": np.full(n, f"{rack_id}-M{module_index + 1:02d}", dtype=object),
        "rack_id": np.full(n, rack_id, dtype=object),
        "timestamp_s": config.start_time_s + reported[rows],
        **{name: values[rows, i] for i, name in enumerate(SIGNAL_NAMES)},
        "fault_type": np.full(n, "none" if plan is None else plan.fault_type, dtype=object),
        "event_id": np.full(n, "" if plan is None else plan.event_id, dtype=object),
        "onset_s": np.full(n, onset),
        "hazardous": hazardous[rows].astype(np.int8),
        "chemistry": np.full(n, rack.chemistry.name, dtype=object),
        "precursor_pattern": np.full(n, "" if plan is None else plan.pattern, dtype=object),
        "lookalike": _lookalikes.labels(bits[rows]),
        "true_time_s": config.start_time_s + t_s[rows],
    }


def simulate(
    config: SimulationConfig, progress: Callable[[int, int], None] | None = None
) -> pd.DataFrame:
    """Generate the site's telemetry: one row per reading, sorted by (module_id, timestamp_s).

    timestamp_s is the module's BMS clock, which jitters and sometimes jumps, so a module's
    rows are in reported, not always true, time order. progress(done_modules,
    total_modules) is called after each module, for progress bars.
    """
    faults = _assign_faults(config)
    horizon = _horizon_s(config)
    pressure = _physics.make_site_pressure(_rng(config, _SITE_STREAM), horizon)
    total = config.n_racks * config.modules_per_rack
    parts: list[dict[str, np.ndarray]] = []
    for rack_index in range(config.n_racks):
        rack_rng = _rng(config, _RACK_STREAM, rack_index)
        rack_sampler = Sampler(rack_rng, config.spread)
        # A fast charge starts with the first charge after a time in the series' first half.
        fast_charge = bool(rack_rng.random() < config.fast_charge_rack_fraction)
        fast_after = rack_rng.uniform(0.0, 0.5 * config.duration_s) if fast_charge else np.inf
        resolution = _sensors.draw_resolution(rack_rng, config.coarse_rack_fraction)
        rack = _physics.make_rack_profile(
            rack_sampler,
            _rack_chemistry(config, rack_index),
            horizon,
            config.start_time_s,
            fast_after,
        )
        rack, rack_episodes = _lookalikes.add_rack_lookalikes(rack_sampler, config, rack)
        for module_index in range(config.modules_per_rack):
            parts.append(
                _simulate_module(
                    config,
                    rack_index,
                    module_index,
                    rack,
                    rack_episodes,
                    resolution,
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
