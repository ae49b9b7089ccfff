"""Fault scenarios for the simulator: when a fault starts, and how it leads to thermal runaway.

A fault has two layers. The scenario-specific driver (the short's voltage sag, the
overcharge current, the lost cooling, the outside heat) runs from the fault start. On top,
every scenario ends in the same precursor cascade before onset: H2, then CO and VOC, then
temperature, then cell voltage and resistance, then pressure, then smoke. After onset the
readings head for runaway levels and the module stops reporting 60 s later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data._physics import NOMINAL_CAPACITY_AH, first_order_lag

MIN_LEAD_S = 15 * 60.0
MAX_LEAD_S = 45 * 60.0
REPORTING_AFTER_ONSET_S = 60.0
"""A module in runaway stops reporting (its BMS slave burns) this long after onset."""

# Nominal start of each precursor's rise, in minutes before onset: (low, high).
PRECURSOR_START_MIN: dict[str, tuple[float, float]] = {
    "h2": (20.0, 30.0),
    "co": (10.0, 15.0),
    "voc": (10.0, 15.0),
    "temperature": (8.0, 10.0),
    "voltage": (5.0, 8.0),
    "pressure": (3.0, 5.0),
    "smoke": (1.0, 2.0),
}


@dataclass(frozen=True)
class FaultEvent:
    """One module's fault, with times in seconds from the start of its series."""

    fault_type: str
    fault_start_s: float
    onset_s: float
    precursor_start_s: dict[str, float]
    """Seconds before onset at which each precursor starts to rise."""
    overcharge_current_a: float = 0.0


def _draw_precursor_starts(
    rng: np.random.Generator, room_s: float, h2_s: float | None = None
) -> dict[str, float]:
    """Precursor start times; H2 starts at most room_s before onset (the fault must come first).

    In short faults that caps H2 below its nominal 20-30 min; CO and VOC then stay at least a
    minute behind it, so the order of the cascade holds in every event.
    """
    starts = {name: rng.uniform(*bounds) * 60.0 for name, bounds in PRECURSOR_START_MIN.items()}
    starts["h2"] = min(starts["h2"] if h2_s is None else h2_s, room_s)
    for gas in ("co", "voc"):
        starts[gas] = min(starts[gas], starts["h2"] - 60.0)
    return starts


def plan_fault(
    rng: np.random.Generator,
    fault_type: str,
    t_s: np.ndarray,
    soc_pct: np.ndarray,
    string_current_a: np.ndarray,
    duration_s: float,
    min_healthy_s: float,
) -> FaultEvent:
    """Choose fault start and onset so at least min_healthy_s of healthy data comes first."""
    if fault_type == "overcharge":
        return _plan_overcharge(rng, t_s, soc_pct, string_current_a, duration_s, min_healthy_s)
    lead = rng.uniform(MIN_LEAD_S, MAX_LEAD_S)
    latest = max(min_healthy_s, duration_s - lead - REPORTING_AFTER_ONSET_S)
    start = rng.uniform(min_healthy_s, latest)
    # The short, the lost cooling or the outside heat acts for 2-5 min before any off-gas.
    room = lead - rng.uniform(2.0, 5.0) * 60.0
    return FaultEvent(fault_type, start, start + lead, _draw_precursor_starts(rng, room))


def _plan_overcharge(
    rng: np.random.Generator,
    t_s: np.ndarray,
    soc_pct: np.ndarray,
    string_current_a: np.ndarray,
    duration_s: float,
    min_healthy_s: float,
) -> FaultEvent:
    """Start the overcharge where charging on can reach 100 % SOC before off-gassing begins.

    The storyline is 'SOC hits 100, max cell voltage passes 4.25 V, then gas', so the fault
    starts at a fairly full, not-discharging moment: the charge current needed to reach 100 %
    then leaves 3 minutes of overvoltage before H2, and the lead stays within 15-45 min.
    """
    c_rate = rng.uniform(0.7, 1.0)
    min_h2_s = PRECURSOR_START_MIN["h2"][0] * 60.0
    reach_s = np.clip(100.0 - soc_pct, 0.0, None) * 36.0 / c_rate  # 1C fills 1 % in 36 s
    lead = reach_s + 180.0 + min_h2_s
    latest = np.maximum(min_healthy_s, duration_s - lead - REPORTING_AFTER_ONSET_S)
    ok = (t_s >= min_healthy_s) & (t_s <= latest + 10.0) & (lead <= MAX_LEAD_S)
    preferred = ok & (string_current_a >= 0.0)
    candidates = np.flatnonzero(preferred if preferred.any() else ok)
    if candidates.size:
        index = int(rng.choice(candidates))
    else:
        # No full enough moment in the window: charge harder from the fullest one (rare).
        latest_start = max(min_healthy_s, duration_s - MAX_LEAD_S - REPORTING_AFTER_ONSET_S)
        window = np.flatnonzero((t_s >= min_healthy_s) & (t_s <= latest_start + 10.0))
        if window.size == 0:  # a lost reading fell on the only slot
            window = np.flatnonzero(t_s >= min_healthy_s)[:1]
        index = int(window[np.argmax(soc_pct[window])])
        room_s = MAX_LEAD_S - 180.0 - min_h2_s
        c_rate = min(1.5, max(c_rate, (100.0 - soc_pct[index]) * 36.0 / room_s))
    reach = max(0.0, 100.0 - soc_pct[index]) * 36.0 / c_rate
    h2_s = rng.uniform(min_h2_s, max(min_h2_s, min(30.0 * 60.0, MAX_LEAD_S - 180.0 - reach)))
    lead = float(np.clip(reach + 180.0 + h2_s, MIN_LEAD_S, MAX_LEAD_S))
    start = float(t_s[index])
    return FaultEvent(
        "overcharge",
        start,
        start + lead,
        _draw_precursor_starts(rng, lead, h2_s),
        overcharge_current_a=c_rate * NOMINAL_CAPACITY_AH,
    )


def apply_drive(
    event: FaultEvent,
    t_s: np.ndarray,
    current_a: np.ndarray,
    soc_true_pct: np.ndarray,
    capacity_ah: float,
) -> None:
    """Overcharge only: the module keeps charging (in place), so true SOC passes 100 %."""
    if event.fault_type != "overcharge":
        return
    after = t_s >= event.fault_start_s
    current_a[after] = event.overcharge_current_a
    charged_pct = (t_s[after] - event.fault_start_s) * event.overcharge_current_a
    soc_true_pct[after] = soc_true_pct[after][0] + charged_pct / (capacity_ah * 36.0)


def _growth(t_s: np.ndarray, onset_s: float, lead_s: float, k: float) -> np.ndarray:
    """0 before onset - lead, then exponential growth to 1 at onset (held after onset)."""
    u = np.clip((t_s - (onset_s - lead_s)) / lead_s, 0.0, 1.0)
    return np.expm1(k * u) / np.expm1(k)


def _blend_after_onset(
    values: np.ndarray, target: float | np.ndarray, t_s: np.ndarray, onset_s: float, tau_s: float
) -> None:
    """Move values towards their runaway level with time constant tau after onset (in place)."""
    weight = -np.expm1(-np.clip(t_s - onset_s, 0.0, None) / tau_s)
    values *= 1.0 - weight
    values += weight * target


def _apply_scenario(
    rng: np.random.Generator,
    event: FaultEvent,
    t_s: np.ndarray,
    sig: dict[str, np.ndarray],
    soc_true_pct: np.ndarray,
    tau_thermal_s: float,
) -> None:
    """The scenario-specific driver that runs from fault start, before the common cascade."""
    since = np.clip(t_s - event.fault_start_s, 0.0, None)
    ramp = np.clip(since / (event.onset_s - event.fault_start_s), 0.0, 1.0)
    if event.fault_type == "internal_short":
        # The shorted cell self-discharges (early min-cell sag) and heats locally.
        sag = rng.uniform(0.02, 0.08) * ramp
        sig["cell_voltage_min_v"] -= sag
        sig["cell_voltage_avg_v"] -= sag / 16.0
        local = rng.uniform(1.5, 4.0) * ramp
        sig["cell_temp_max_c"] += local
        sig["cell_temp_avg_c"] += 0.25 * local
    elif event.fault_type == "cooling_failure":
        rise = rng.uniform(6.0, 15.0) * -np.expm1(-since / (rng.uniform(20.0, 40.0) * 60.0))
        sig["cell_temp_avg_c"] += rise
        sig["cell_temp_max_c"] += rise * rng.uniform(1.05, 1.2)
    elif event.fault_type == "external_heating":
        outside = rng.uniform(8.0, 20.0) * ramp**2 * (3.0 - 2.0 * ramp)  # smoothstep
        sig["ambient_temp_c"] += outside
        dt_s = np.diff(t_s, prepend=t_s[0] - 10.0)
        soaked = first_order_lag(outside, dt_s, 0.5 * tau_thermal_s, 0.0)
        sig["cell_temp_avg_c"] += soaked * rng.uniform(0.7, 1.0)
        sig["cell_temp_max_c"] += soaked * rng.uniform(1.0, 1.2)
    elif event.fault_type == "overcharge":
        # Side reactions in overcharged cells add heat once SOC passes 100 %.
        heat = rng.uniform(2.0, 5.0) * np.clip((soc_true_pct - 100.0) / 20.0, 0.0, 1.0)
        sig["cell_temp_avg_c"] += 0.6 * heat
        sig["cell_temp_max_c"] += heat
    else:
        raise ValueError(f"unknown fault type {event.fault_type!r}")


def apply_fault(
    rng: np.random.Generator,
    event: FaultEvent,
    t_s: np.ndarray,
    sig: dict[str, np.ndarray],
    soc_true_pct: np.ndarray,
    tau_thermal_s: float,
) -> None:
    """Overlay the scenario driver, the precursor cascade and the runaway on clean signals."""
    _apply_scenario(rng, event, t_s, sig, soc_true_pct, tau_thermal_s)
    onset = event.onset_s
    lead = event.precursor_start_s

    def grow(name: str) -> np.ndarray:
        return _growth(t_s, onset, lead[name], rng.uniform(2.5, 3.5))

    def turbulence() -> np.ndarray:
        return np.exp(rng.normal(0.0, 0.1, t_s.size))  # gas/smoke transport is patchy

    for gas, precursor, at_onset, saturated in (
        ("h2_ppm", "h2", (300.0, 3000.0), (10000.0, 40000.0)),
        ("co_ppm", "co", (150.0, 1000.0), (3000.0, 15000.0)),
        ("voc_ppm", "voc", (300.0, 2000.0), (5000.0, 30000.0)),
    ):
        level = np.exp(rng.uniform(*np.log(at_onset)))  # log-uniform: spans an order of magnitude
        sig[gas] += level * grow(precursor) * turbulence()
        _blend_after_onset(
            sig[gas], rng.uniform(*saturated) * turbulence(), t_s, onset, rng.uniform(10.0, 20.0)
        )

    heating = grow("temperature")
    rise_at_onset = rng.uniform(30.0, 70.0)
    sig["cell_temp_max_c"] += rise_at_onset * heating
    sig["cell_temp_avg_c"] += rise_at_onset * heating * rng.uniform(0.3, 0.6)
    peak, tau = rng.uniform(350.0, 750.0), rng.uniform(10.0, 25.0)
    _blend_after_onset(sig["cell_temp_max_c"], peak, t_s, onset, tau)
    _blend_after_onset(sig["cell_temp_avg_c"], peak * rng.uniform(0.5, 0.8), t_s, onset, tau)
    _blend_after_onset(
        sig["ambient_temp_c"], sig["ambient_temp_c"] + rng.uniform(15.0, 60.0), t_s, onset, 30.0
    )

    # The failing cell's voltage drops (spread widens) while its resistance rises.
    weakening = grow("voltage")
    drop = rng.uniform(0.3, 1.0) * weakening
    sig["cell_voltage_min_v"] -= drop
    sig["cell_voltage_avg_v"] -= drop / 16.0
    sig["internal_resistance_mohm"] *= 1.0 + rng.uniform(0.5, 2.0) * weakening
    tau = rng.uniform(5.0, 15.0)
    for name, low, high in (
        ("cell_voltage_min_v", 0.0, 1.0),
        ("cell_voltage_avg_v", 1.5, 3.0),
        ("cell_voltage_max_v", 3.0, 3.8),
        ("internal_resistance_mohm", 20.0, 100.0),
    ):
        _blend_after_onset(sig[name], rng.uniform(low, high), t_s, onset, tau)
    _blend_after_onset(sig["current_a"], 0.0, t_s, onset, 3.0)  # contactors open

    sig["pressure_kpa"] += rng.uniform(1.0, 5.0) * grow("pressure")
    _blend_after_onset(
        sig["pressure_kpa"], rng.uniform(115.0, 200.0), t_s, onset, rng.uniform(5.0, 15.0)
    )
    sig["smoke_obscuration_pct_per_m"] += rng.uniform(1.0, 5.0) * grow("smoke") * turbulence()
    _blend_after_onset(
        sig["smoke_obscuration_pct_per_m"],
        rng.uniform(20.0, 80.0),
        t_s,
        onset,
        rng.uniform(10.0, 30.0),
    )
