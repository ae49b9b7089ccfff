"""SimulationConfig: every knob of the simulator, with its default and its reason.

Rates and shares live here; physical ranges live in the module that uses them (and in
chemistry.py); docs/simulator.md lists both. ``widened_config`` derives the harder second
test set. Re-exported by ``simulator.py``, which is where callers import it from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from src.data.signals import SAMPLE_PERIOD_S

WIDENED_SPREAD = 1.5
"""Default spread of widened_config: every drawn range 50 % wider about its centre."""


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated site; equal configs give identical data."""

    # --- site and events -------------------------------------------------------------
    n_racks: int = 8
    """Racks on the site; a rack's modules share chemistry, string current and inlet air."""
    modules_per_rack: int = 16
    duration_s: float = 3 * 3600.0
    """Length of each healthy module's series; a faulty one ends 60 s after its onset."""
    n_fault_events: int = 40
    """Modules that develop a fault, spread across racks and equally over the fault kinds."""
    seed: int = 42
    start_time_s: float = 1_767_225_600.0
    """Epoch seconds of the first reading (2026-01-01T00:00:00Z); sets the diurnal phase."""
    min_healthy_before_fault_s: float = 3600.0
    """Healthy data every faulty module reports before its fault starts."""
    lfp_fraction: float = 0.75
    """Share of racks built from LFP cells (the rest NMC). Grid storage is mostly LFP;
    a quarter NMC keeps both chemistries in every default site (leave-one-out needs it)."""
    spread: float = 1.0
    """Widens every drawn physical range about its centre by this factor (1 = as documented)."""

    # --- fault timing and precursor patterns ----------------------------------------
    span_min_s: float = 180.0
    """Shortest precursor span (fault start -> onset), 3 min; spans are log-uniform..."""
    span_max_s: float = 45 * 60.0
    """...up to 45 min."""
    fast_span_s: float = 360.0
    """Events of the 'fast' pattern have spans below this; all others at or above it."""
    fast_share: float = 0.15
    """Share of events with the 'fast' pattern (everything within a few minutes)."""
    gas_late_share: float = 0.2
    """Share of events whose gas shows only in the last 1-3 minutes."""
    led_share: float = 0.2
    """Share of thermal_led / electrical_led events (the fault's own signals lead the gas)."""
    co_first_share: float = 0.15
    """Share of gas-led events where CO (and VOC) lead H2."""
    gas_together_share: float = 0.1
    """Share of gas-led events where H2 and CO start together; the rest are gas_early."""

    # --- sensor realities (every module) -------------------------------------------
    missing_rate: float = 0.005
    """Probability that any single value is missing (NaN)."""
    outlier_rate: float = 0.0005
    """Probability that any single value is an isolated spike (e.g. H2 +20-200 ppm)."""
    lost_reading_rate: float = 0.005
    """Probability that a whole reading is lost, leaving a gap of 20 s or more."""
    timestamp_jitter_s: float = 0.3
    """Readings arrive up to this far either side of the 10 s grid."""
    clock_jumps_per_module_day: float = 2.0
    """Mean number of steps of a module's BMS clock per day (forward or backward)..."""
    clock_jump_max_s: float = 600.0
    """...each 2 s to this many seconds (log-uniform); steps add up until the series ends."""
    duplicate_rate: float = 0.002
    """Probability that a reading is sent twice (same timestamp, same values)."""
    dropouts_per_module_day: float = 4.0
    """Mean number of drop-outs (one signal NaN for 1-10 min) per module and day."""
    comms_losses_per_module_day: float = 2.0
    """Mean number of BMS comms losses (60-100 % of signals NaN for 30 s-10 min) per day."""
    stuck_per_module_day: float = 1.0
    """Mean number of stuck sensors (one signal repeats its value for 2 min-3 h) per day."""
    gas_offset_mean_ppm: float = 1.0
    """Mean size of each gas sensor's calibration offset (exponential, 70 % positive)..."""
    gas_offset_max_ppm: float = 10.0
    """...capped at this many ppm."""
    gas_drift_sigma_ppm_per_h: float = 0.3
    """Each gas sensor's slow drift: normal, this many ppm per hour (sigma)."""
    temp_offset_max_c: float = 1.0
    """Temperature sensors are off by up to this much, uniform either way."""
    voltage_offset_max_v: float = 0.003
    """Cell voltage channels are off by up to this much, uniform either way."""
    coarse_rack_fraction: float = 0.3
    """Share of racks whose BMS reports temperature in 0.5 or 1 degC and voltage in 5 or
    10 mV steps (others: 0.1 degC, 1 mV). Gas is integer ppm everywhere."""

    # --- harmless look-alikes ----------------------------------------------------------
    fast_charge_rack_fraction: float = 0.25
    """Share of racks whose next charge after a random time is a harmless ~1C fast charge
    that heats cells to ~40-45 degC (it may fall after the end of a short series)."""
    hvac_failure_rack_fraction: float = 0.25
    """Share of racks whose inlet air slowly warms by 3-6 degC for 1-2 h (HVAC fault)."""
    sun_heat_rack_fraction: float = 0.15
    """Share of racks on a sunny enclosure wall: air +2-8 degC for 2-5 h."""
    gas_plume_rack_fraction: float = 0.15
    """Share of racks whose air intake draws in exhaust once (CO/VOC for 3-20 min)."""
    gas_offset_module_fraction: float = 0.04
    """Share of modules whose three gas sensors all read 5-15 ppm high for 1-12 h."""
    gas_offset_fast_charge_fraction: float = 0.25
    """Share of fast-charge-rack modules with that offset during their fast charge."""
    gas_drift_module_fraction: float = 0.04
    """Share of modules whose three gas sensors drift up 2-8 ppm/h for 1-12 h."""
    temp_sensor_fault_module_fraction: float = 0.05
    """Share of modules whose hottest-cell sensor sticks or drifts 3-15 degC high."""
    neighbour_heat_module_fraction: float = 0.05
    """Share of modules warmed 3-12 degC for 0.5-3 h by a neighbour or equipment."""
    balancing_module_fraction: float = 0.1
    """Share of modules with a balancing episode: one cell 15-80 mV off for 10-60 min."""

    def __post_init__(self) -> None:
        if not (1 <= self.n_racks <= 99 and 1 <= self.modules_per_rack <= 99):
            raise ValueError("n_racks and modules_per_rack must be 1-99 (two-digit ids)")
        if not 0 <= self.n_fault_events <= min(999, self.n_racks * self.modules_per_rack):
            raise ValueError("n_fault_events must be between 0 and the number of modules")
        if self.duration_s < 10 * SAMPLE_PERIOD_S:
            raise ValueError("duration_s must cover at least ten readings")
        if not all(0.0 <= getattr(self, name) < 1.0 for name in _fractions()):
            raise ValueError("rates and fractions must be in [0, 1)")
        if any(getattr(self, name) < 0.0 for name in _non_negative()):
            raise ValueError("drop-outs, episode rates, offsets and drifts must be >= 0")
        if not 0.0 <= self.timestamp_jitter_s < 5.0:
            raise ValueError("timestamp_jitter_s must be in [0, 5) so readings stay ordered")
        if not 60.0 <= self.span_min_s <= self.fast_span_s <= self.span_max_s:
            raise ValueError("spans must satisfy 60 <= span_min_s <= fast_span_s <= span_max_s")
        shares = (
            self.fast_share,
            self.gas_late_share,
            self.led_share,
            self.co_first_share,
            self.gas_together_share,
        )
        if sum(shares) > 1.0:
            raise ValueError("pattern shares must add up to at most 1 (the rest is gas_early)")
        if not 0.0 <= self.lfp_fraction <= 1.0 or not 0.5 <= self.spread <= 4.0:
            raise ValueError("lfp_fraction must be in [0, 1] and spread in [0.5, 4]")


def _fractions() -> list[str]:
    return [
        f.name
        for f in fields(SimulationConfig)
        if f.name.endswith(("_rate", "_fraction", "_share")) and f.name != "lfp_fraction"
    ]


def _non_negative() -> list[str]:
    return [
        f.name
        for f in fields(SimulationConfig)
        if f.name.endswith(("_per_module_day", "_ppm", "_per_h", "_max_c", "_max_v", "_max_s"))
    ]


def widened_config(
    seed: int, spread: float = WIDENED_SPREAD, **overrides: object
) -> SimulationConfig:
    """The second, harder test set: another seed, every range and rate widened.

    Besides ``spread`` (every physical range wider about its centre), the knobs whose
    values are limits, not ranges, move outwards too: spans of 2-60 min, larger calibration
    offsets and drifts, and imperfections and look-alikes more often (times spread).
    """
    base = SimulationConfig(seed=seed)
    more_often = {
        name: min(0.9, getattr(base, name) * spread)
        for name in _fractions()
        if name.endswith("_fraction")
    }
    return replace(
        base,
        spread=spread,
        span_min_s=120.0,
        span_max_s=60 * 60.0,
        gas_offset_mean_ppm=base.gas_offset_mean_ppm * spread,
        gas_offset_max_ppm=base.gas_offset_max_ppm * spread,
        gas_drift_sigma_ppm_per_h=base.gas_drift_sigma_ppm_per_h * spread,
        temp_offset_max_c=base.temp_offset_max_c * spread,
        voltage_offset_max_v=base.voltage_offset_max_v * spread,
        missing_rate=base.missing_rate * spread,
        outlier_rate=base.outlier_rate * spread,
        dropouts_per_module_day=base.dropouts_per_module_day * spread,
        comms_losses_per_module_day=base.comms_losses_per_module_day * spread,
        stuck_per_module_day=base.stuck_per_module_day * spread,
        clock_jumps_per_module_day=base.clock_jumps_per_module_day * spread,
        **{**more_often, **overrides},
    )
