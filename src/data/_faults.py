"""Fault kinds for the simulator: when a fault starts, and what drives it towards runaway.

A fault has two layers. The kind-specific driver (the short's voltage sag, the overcharge
current, the lost cooling, the outside heat, the hot connection) acts from the fault start.
On top, every kind ends in the precursor cascade of ``_precursors.py``, whose timing and
order follow the event's precursor pattern. After onset the readings head for runaway
levels and the module stops reporting 60 s later. Kinds are families: a model can be
tested on one kind after training on the others (leave-one-fault-kind-out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data._draw import Sampler
from src.data._physics import (
    CELLS_PER_MODULE,
    NOMINAL_CAPACITY_AH,
    SECONDS_PER_SOC_PCT_AT_1C,
    first_order_lag,
    sigmoid,
)

FAULT_TYPES: tuple[str, ...] = (
    "internal_short",
    "overcharge",
    "cooling_failure",
    "external_heating",
    "connection_fault",
)
THERMAL_KINDS: tuple[str, ...] = ("cooling_failure", "external_heating")
"""Kinds whose own driver is heat; the others are electrical (their led pattern's name)."""

REPORTING_AFTER_ONSET_S = 60.0
"""A module in runaway stops reporting (its BMS slave burns) this long after onset."""

OVERCHARGE: dict[str, tuple[float, float]] = {
    "c_rate": (0.3, 2.0),  # current past full: a runaway charger or a failed module charge path
    "excess_soc_pct": (10.0, 40.0),  # how far past 100 % SOC runaway starts
    "charge_c_rate": (0.3, 1.0),  # the (normal-looking) charge up to 100 %
}
OVERCHARGE_MAX_REACH_S = 40 * 60.0
"""The normal-looking charge before an overcharge reaches 100 % SOC within this time."""

# Kind-specific driver ranges (log-uniform unless noted). Judgement, chosen wide.
DRIVER: dict[str, tuple[float, float]] = {
    "short_sag_v": (0.01, 0.12),  # self-discharge of the shorted cell
    "short_heat_c": (0.5, 8.0),  # its local hot spot
    "overcharge_heat_c": (1.0, 8.0),  # side reactions once SOC passes 100 %
    "cooling_rise_c": (3.0, 20.0),
    "cooling_tau_min": (10.0, 40.0),
    "cooling_max_factor": (1.05, 1.2),  # uniform
    "outside_rise_c": (5.0, 30.0),
    "outside_avg_factor": (0.7, 1.0),  # uniform
    "outside_max_factor": (1.0, 1.2),  # uniform
    "contact_mohm": (0.3, 3.0),  # a loose busbar or connector, at onset
    "contact_r_th_k_per_w": (1.5, 5.0),  # the heat of a connection stays near the tab
    "contact_tau_min": (3.0, 8.0),
}
SHORT_AVG_SHARE = 0.25
"""A local hot spot moves the average cell temperature by a quarter of the hottest's rise."""
CONTACT_AVG_SHARE = 0.15


@dataclass(frozen=True)
class FaultEvent:
    """One module's fault, with times in seconds from the start of its (true) series."""

    fault_type: str
    pattern: str
    fault_start_s: float
    onset_s: float
    drive_start_s: float = np.inf
    """Overcharge only: when the charge that will not stop begins (SOC is 100 % at fault start)."""
    charge_current_a: float = 0.0
    overcharge_current_a: float = 0.0


def led_pattern(fault_type: str) -> str:
    """The pattern name of a driver-led event: thermal_led or electrical_led, by kind."""
    return "thermal_led" if fault_type in THERMAL_KINDS else "electrical_led"


def plan_fault(
    sampler: Sampler,
    fault_type: str,
    pattern: str,
    span_s: float,
    t_s: np.ndarray,
    soc_pct: np.ndarray,
    string_current_a: np.ndarray,
    capacity_ah: float,
    duration_s: float,
    min_healthy_s: float,
) -> FaultEvent:
    """Place the fault so at least min_healthy_s of healthy data comes first."""
    if fault_type == "overcharge":
        return _plan_overcharge(
            sampler,
            pattern,
            span_s,
            t_s,
            soc_pct,
            string_current_a,
            capacity_ah,
            duration_s,
            min_healthy_s,
        )
    latest = max(min_healthy_s, duration_s - span_s - REPORTING_AFTER_ONSET_S)
    start = float(sampler.rng.uniform(min_healthy_s, latest))
    return FaultEvent(fault_type, pattern, start, start + span_s)


def _plan_overcharge(
    sampler: Sampler,
    pattern: str,
    span_s: float,
    t_s: np.ndarray,
    soc_pct: np.ndarray,
    string_current_a: np.ndarray,
    capacity_ah: float,
    duration_s: float,
    min_healthy_s: float,
) -> FaultEvent:
    """A charge that does not stop: SOC reaches 100 % at fault start, runaway span_s later.

    The current past full follows from how far past full runaway starts (10-40 %) and the
    span, within 0.3-2C; the charge up to full looks normal and starts where it can reach
    100 % within 40 minutes, preferably while the rack is not discharging.
    """
    rng = sampler.rng
    excess = sampler.uniform(*OVERCHARGE["excess_soc_pct"])
    c_rate = float(np.clip(excess * SECONDS_PER_SOC_PCT_AT_1C / span_s, *OVERCHARGE["c_rate"]))
    charge_c = float(rng.uniform(*OVERCHARGE["charge_c_rate"]))
    per_pct_s = SECONDS_PER_SOC_PCT_AT_1C * capacity_ah / NOMINAL_CAPACITY_AH
    reach = np.clip(100.0 - soc_pct, 0.0, None) * per_pct_s / charge_c
    fits = t_s + reach + span_s + REPORTING_AFTER_ONSET_S <= duration_s
    ok = (t_s >= min_healthy_s) & (reach <= OVERCHARGE_MAX_REACH_S) & fits
    preferred = ok & (string_current_a >= 0.0)
    candidates = np.flatnonzero(preferred if preferred.any() else ok)
    if candidates.size:
        index = int(rng.choice(candidates))
    else:
        # Nothing full enough in time: charge harder from the fullest early moment (rare).
        window = np.flatnonzero(
            (t_s >= min_healthy_s) & (t_s <= min_healthy_s + OVERCHARGE_MAX_REACH_S)
        )
        window = window if window.size else np.array([t_s.size - 1])
        index = int(window[np.argmax(soc_pct[window])])
        needed = max(0.0, 100.0 - soc_pct[index]) * per_pct_s / OVERCHARGE_MAX_REACH_S
        charge_c = float(np.clip(needed, charge_c, OVERCHARGE["c_rate"][1]))
    drive_start = float(t_s[index])
    fault_start = drive_start + max(0.0, 100.0 - soc_pct[index]) * per_pct_s / charge_c
    return FaultEvent(
        "overcharge",
        pattern,
        fault_start,
        fault_start + span_s,
        drive_start_s=drive_start,
        charge_current_a=charge_c * NOMINAL_CAPACITY_AH,
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
    driven = t_s >= event.drive_start_s
    if not driven.any():
        return
    start = int(np.argmax(driven))
    soc0 = soc_true_pct[start]
    current_a[driven] = np.where(
        t_s[driven] < event.fault_start_s, event.charge_current_a, event.overcharge_current_a
    )
    before = np.clip(t_s[driven], None, event.fault_start_s) - event.drive_start_s
    after = np.clip(t_s[driven] - event.fault_start_s, 0.0, None)
    charge_as = before * event.charge_current_a + after * event.overcharge_current_a
    soc_true_pct[driven] = soc0 + charge_as / (capacity_ah * 3600.0 / 100.0)  # A*s per SOC %


def apply_driver(
    sampler: Sampler,
    event: FaultEvent,
    t_s: np.ndarray,
    sig: dict[str, np.ndarray],
    soc_true_pct: np.ndarray,
    tau_thermal_s: float,
) -> None:
    """The kind-specific driver that runs from fault start, before the common cascade."""
    d = sampler
    since = np.clip(t_s - event.fault_start_s, 0.0, None)
    span = event.onset_s - event.fault_start_s
    ramp = np.clip(since / span, 0.0, 1.0)
    dt_s = np.diff(t_s, prepend=t_s[0] - 10.0)
    kind = event.fault_type
    if kind == "internal_short":
        sag = d.log_uniform(*DRIVER["short_sag_v"]) * ramp
        sig["cell_voltage_min_v"] -= sag
        sig["cell_voltage_avg_v"] -= sag / CELLS_PER_MODULE
        local = d.log_uniform(*DRIVER["short_heat_c"]) * ramp
        sig["cell_temp_max_c"] += local
        sig["cell_temp_avg_c"] += SHORT_AVG_SHARE * local
    elif kind == "cooling_failure":
        tau_s = d.log_uniform(*DRIVER["cooling_tau_min"]) * 60.0
        rise = d.log_uniform(*DRIVER["cooling_rise_c"]) * -np.expm1(-since / tau_s)
        sig["cell_temp_avg_c"] += rise
        sig["cell_temp_max_c"] += rise * d.uniform(*DRIVER["cooling_max_factor"])
    elif kind == "external_heating":
        outside = d.log_uniform(*DRIVER["outside_rise_c"]) * ramp**2 * (3.0 - 2.0 * ramp)
        sig["ambient_temp_c"] += outside
        soaked = first_order_lag(outside, dt_s, 0.5 * tau_thermal_s, 0.0)
        sig["cell_temp_avg_c"] += soaked * d.uniform(*DRIVER["outside_avg_factor"])
        sig["cell_temp_max_c"] += soaked * d.uniform(*DRIVER["outside_max_factor"])
    elif kind == "overcharge":
        heat = d.log_uniform(*DRIVER["overcharge_heat_c"]) * np.clip(
            (soc_true_pct - 100.0) / 20.0, 0.0, 1.0
        )
        sig["cell_temp_avg_c"] += 0.6 * heat
        sig["cell_temp_max_c"] += heat
    elif kind == "connection_fault":
        _apply_connection(d, ramp, dt_s, sig)
    else:
        raise ValueError(f"unknown fault type {kind!r}")


def _apply_connection(
    d: Sampler, ramp: np.ndarray, dt_s: np.ndarray, sig: dict[str, np.ndarray]
) -> None:
    """A connection whose resistance grows: I*R on one cell's sense path, I^2*R at its tab.

    It shows only under current: at rest the readings look healthy, under load the
    measured resistance and one cell's voltage deviate and the tab heats with I^2.
    """
    contact = d.log_uniform(*DRIVER["contact_mohm"]) * sigmoid(8.0 * (ramp - 0.5)) * (ramp > 0)
    current = sig["current_a"]
    sig["internal_resistance_mohm"] += contact
    ir_drop_v = current * contact * 1e-3
    sig["cell_voltage_min_v"] += np.minimum(ir_drop_v, 0.0)  # discharging: reads low
    sig["cell_voltage_max_v"] += np.maximum(ir_drop_v, 0.0)  # charging: reads high
    sig["cell_voltage_avg_v"] += ir_drop_v / CELLS_PER_MODULE
    heat_w = current**2 * contact * 1e-3
    tau_s = d.log_uniform(*DRIVER["contact_tau_min"]) * 60.0
    r_th = d.log_uniform(*DRIVER["contact_r_th_k_per_w"])
    local = first_order_lag(heat_w * r_th, dt_s, tau_s, 0.0)
    sig["cell_temp_max_c"] += local
    sig["cell_temp_avg_c"] += CONTACT_AVG_SHARE * local
