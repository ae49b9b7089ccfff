"""The precursor cascade every fault ends in, and the runaway after onset.

Whatever the fault kind, the last minutes before thermal-runaway onset show some mix of
off-gas (H2, CO, VOC), accelerating heat, a failing cell's voltage sag and resistance
rise, enclosure pressure and smoke. Which of them leads, by how much and how strongly is
drawn per event: the *precursor pattern* fixes the gas timing and order, and every
channel's start time and amplitude is drawn over a wide range, so that no single signal
(and no fixed order) is enough to warn of every event. Gas levels scale with chemistry.
All ranges are in the tables below and in docs/simulator.md ("Precursor patterns").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data._draw import Sampler
from src.data._physics import CELLS_PER_MODULE
from src.data.chemistry import Chemistry

GAS_LED_PATTERNS: tuple[str, ...] = ("gas_early", "co_first", "gas_together")
PRECURSOR_PATTERNS: tuple[str, ...] = (
    *GAS_LED_PATTERNS,
    "thermal_led",
    "electrical_led",
    "gas_late",
    "fast",
)
"""Every value of the precursor_pattern column (healthy modules have "")."""

GASES: tuple[str, ...] = ("h2", "co", "voc")
CHANNELS: tuple[str, ...] = (*GASES, "temperature", "voltage", "resistance", "pressure", "smoke")

# When each non-gas channel starts rising, as a share of the span (fault start -> onset)
# before onset: 1.0 = at fault start, 0.0 = at onset. Judgement, chosen wide on purpose.
START_SHARE: dict[str, tuple[float, float]] = {
    "temperature": (0.1, 0.6),
    "voltage": (0.05, 0.5),
    "resistance": (0.05, 0.6),
    "pressure": (0.02, 0.25),
    "smoke": (0.0, 0.1),
}
LEADING_SHARE = (0.6, 1.0)
"""Start share of the channels that lead: temperature in thermal_led, voltage and
resistance in electrical_led, all three in gas_late."""
FIRST_GAS_SHARE = {"early": (0.7, 1.0), "mid": (0.25, 0.5)}
"""Start share of the first gas: gas-led patterns ("early"), thermal/electrical-led ("mid")."""
FOLLOWING_GAS_SHARE = (0.1, 0.4)
"""The later gases start this share of the span after the first one..."""
MIN_GAS_GAP_S = 60.0
"""...and at least this long after it (gas_early, co_first)."""
TOGETHER_S = 30.0
"""gas_together: H2 and CO start within this many seconds of each other."""
LATE_GAS_S = (60.0, 180.0)
"""gas_late: every gas starts only this long before onset."""
MIN_START_S = 10.0
"""Every channel starts at least this long before onset."""

# Level of each precursor at onset (log-uniform unless noted). Gas is one total, at NMC's
# yield, split by the chemistry's vent-gas shares: "some events only tens of ppm" is meant.
AMPLITUDE: dict[str, tuple[float, float]] = {
    "gas_total_ppm": (20.0, 8000.0),
    "temp_avg_share": (0.2, 0.6),  # uniform: avg cell rise as a share of the hottest's
    "voltage_sag_v": (0.02, 0.8),  # the failing cell's drop (the average moves 1/16 of it)
    "resistance_gain": (0.05, 2.0),  # weakest-cell resistance x (1 + gain)
    "pressure_kpa": (0.2, 5.0),
    "smoke_pct_per_m": (0.2, 5.0),
    "growth_k": (1.5, 4.0),  # uniform: small k rises steadily, large k surges at the end
}
GAS_SCATTER_SIGMA = 0.35
"""Each gas's level scatters log-normally around its chemistry share of the total."""
TURBULENCE_SIGMA = 0.1
"""Gas and smoke transport is patchy: multiplicative noise on their rise."""

# After onset every signal heads for its runaway level with a time constant of seconds.
RUNAWAY: dict[str, tuple[float, float]] = {
    "vent_gas_total_ppm": (20000.0, 80000.0),  # at NMC's yield, split by vent-gas shares
    "temp_avg_share": (0.5, 0.8),
    "ambient_rise_c": (15.0, 60.0),
    "v_min": (0.0, 1.0),
    "v_avg": (1.5, 3.0),
    "v_max_share": (0.85, 1.0),  # of the chemistry's nominal voltage: intact cells
    "resistance_mohm": (20.0, 100.0),
    "pressure_kpa": (115.0, 200.0),
    "smoke_pct_per_m": (20.0, 80.0),
    "gas_tau_s": (10.0, 20.0),
    "temp_tau_s": (10.0, 25.0),
    "voltage_tau_s": (5.0, 15.0),
    "pressure_tau_s": (5.0, 15.0),
    "smoke_tau_s": (10.0, 30.0),
}
CONTACTOR_TAU_S = 3.0
AMBIENT_TAU_S = 30.0


@dataclass(frozen=True)
class Cascade:
    """One event's precursor plan: start (s before onset) and level at onset per channel."""

    start_s: dict[str, float]
    level: dict[str, float]
    growth_k: dict[str, float]


def _gas_starts(sampler: Sampler, pattern: str, span_s: float) -> dict[str, float]:
    """Gas start times for a pattern: the gas order is part of the pattern."""
    rng = sampler.rng
    if pattern == "gas_late":
        return {gas: rng.uniform(*LATE_GAS_S) for gas in GASES}
    if pattern == "fast":
        return {gas: rng.uniform(0.0, 1.0) * span_s for gas in GASES}
    first_share = FIRST_GAS_SHARE["early" if pattern in GAS_LED_PATTERNS else "mid"]
    first = rng.uniform(*first_share) * span_s
    follow = max(MIN_GAS_GAP_S, rng.uniform(*FOLLOWING_GAS_SHARE) * span_s)
    later = max(MIN_START_S, first - follow)
    if pattern == "gas_together":
        together = first - rng.uniform(0.0, TOGETHER_S)
        return {"h2": first, "co": together, "voc": rng.uniform(later, first)}
    # Thermal- and electrical-led events put H2 first two times in three.
    co_leads = pattern == "co_first" or (pattern not in GAS_LED_PATTERNS and rng.random() < 1 / 3)
    if co_leads:
        return {"co": first, "voc": first - rng.uniform(0.0, TOGETHER_S), "h2": later}
    return {"h2": first, "co": later, "voc": later - rng.uniform(0.0, TOGETHER_S)}


def _leading_channels(pattern: str) -> tuple[str, ...]:
    return {
        "thermal_led": ("temperature",),
        "electrical_led": ("voltage", "resistance"),
        "gas_late": ("temperature", "voltage", "resistance"),
    }.get(pattern, ())


def draw_cascade(sampler: Sampler, chemistry: Chemistry, pattern: str, span_s: float) -> Cascade:
    """Draw when each channel starts and how far it has risen by onset."""
    rng = sampler.rng
    leading = _leading_channels(pattern)
    starts = _gas_starts(sampler, pattern, span_s)
    for channel, share in START_SHARE.items():
        if pattern == "fast":
            share = (0.0, 1.0)
        elif channel in leading:
            share = LEADING_SHARE
        starts[channel] = rng.uniform(*share) * span_s
    starts = {name: float(np.clip(start, MIN_START_S, span_s)) for name, start in starts.items()}

    def amplitude(name: str, channel: str) -> float:
        low, high = AMPLITUDE[name]
        if channel in leading:  # a leading channel must carry the warning: upper half
            low = float(np.sqrt(low * high))
        return float(sampler.log_uniform(low, high))

    total = amplitude("gas_total_ppm", "gas") * chemistry.gas_yield
    levels = {
        gas: total * share * float(np.exp(sampler.normal(GAS_SCATTER_SIGMA)))
        for gas, share in chemistry.gas_shares().items()
    }
    rise_low, rise_high = chemistry.onset_temp_rise_c
    if "temperature" in leading:
        rise_low = float(np.sqrt(rise_low * rise_high))
    levels["temperature"] = float(sampler.log_uniform(rise_low, rise_high))
    levels["voltage"] = amplitude("voltage_sag_v", "voltage")
    levels["resistance"] = amplitude("resistance_gain", "resistance")
    levels["pressure"] = amplitude("pressure_kpa", "pressure")
    levels["smoke"] = amplitude("smoke_pct_per_m", "smoke")
    # The gases share one growth shape (one source, one vent path), so their order at any
    # relative level is their start order; the other channels grow each in their own way.
    gas_k = float(rng.uniform(*AMPLITUDE["growth_k"]))
    k = {
        channel: gas_k if channel in GASES else float(rng.uniform(*AMPLITUDE["growth_k"]))
        for channel in CHANNELS
    }
    return Cascade(starts, levels, k)


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


def apply_cascade(
    sampler: Sampler,
    cascade: Cascade,
    chemistry: Chemistry,
    onset_s: float,
    t_s: np.ndarray,
    sig: dict[str, np.ndarray],
) -> None:
    """Overlay the precursors and the runaway after onset on the signals (in place)."""
    rng = sampler.rng

    def grow(channel: str) -> np.ndarray:
        return _growth(t_s, onset_s, cascade.start_s[channel], cascade.growth_k[channel])

    def turbulence() -> np.ndarray:
        return np.exp(rng.normal(0.0, TURBULENCE_SIGMA, t_s.size))

    def runaway(name: str) -> float:
        return float(sampler.uniform(*RUNAWAY[name]))

    vent_total = sampler.log_uniform(*RUNAWAY["vent_gas_total_ppm"]) * chemistry.gas_yield
    for gas, share in chemistry.gas_shares().items():
        signal = sig[f"{gas}_ppm"]
        signal += cascade.level[gas] * grow(gas) * turbulence()
        _blend_after_onset(
            signal, vent_total * share * turbulence(), t_s, onset_s, runaway("gas_tau_s")
        )

    heating = grow("temperature")
    sig["cell_temp_max_c"] += cascade.level["temperature"] * heating
    sig["cell_temp_avg_c"] += (
        cascade.level["temperature"] * heating * sampler.fraction(*AMPLITUDE["temp_avg_share"])
    )
    peak, tau = sampler.uniform(*chemistry.peak_temp_c), runaway("temp_tau_s")
    _blend_after_onset(sig["cell_temp_max_c"], peak, t_s, onset_s, tau)
    _blend_after_onset(sig["cell_temp_avg_c"], peak * runaway("temp_avg_share"), t_s, onset_s, tau)
    _blend_after_onset(
        sig["ambient_temp_c"],
        sig["ambient_temp_c"] + runaway("ambient_rise_c"),
        t_s,
        onset_s,
        AMBIENT_TAU_S,
    )

    # The failing cell's voltage drops (spread widens) while its resistance rises.
    drop = cascade.level["voltage"] * grow("voltage")
    sig["cell_voltage_min_v"] -= drop
    sig["cell_voltage_avg_v"] -= drop / CELLS_PER_MODULE
    sig["internal_resistance_mohm"] *= 1.0 + cascade.level["resistance"] * grow("resistance")
    tau = runaway("voltage_tau_s")
    for name, level in (
        ("cell_voltage_min_v", runaway("v_min")),
        ("cell_voltage_avg_v", runaway("v_avg")),
        ("cell_voltage_max_v", runaway("v_max_share") * chemistry.nominal_v),
        ("internal_resistance_mohm", runaway("resistance_mohm")),
    ):
        _blend_after_onset(sig[name], level, t_s, onset_s, tau)
    _blend_after_onset(sig["current_a"], 0.0, t_s, onset_s, CONTACTOR_TAU_S)  # contactors open

    sig["pressure_kpa"] += cascade.level["pressure"] * grow("pressure")
    _blend_after_onset(
        sig["pressure_kpa"], runaway("pressure_kpa"), t_s, onset_s, runaway("pressure_tau_s")
    )
    sig["smoke_obscuration_pct_per_m"] += cascade.level["smoke"] * grow("smoke") * turbulence()
    _blend_after_onset(
        sig["smoke_obscuration_pct_per_m"],
        runaway("smoke_pct_per_m"),
        t_s,
        onset_s,
        runaway("smoke_tau_s"),
    )
