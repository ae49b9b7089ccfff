"""Healthy battery physics for the simulator: string current, SOC, OCV, heat and ambient.

Kept apart from the fault, look-alike and sensor code so that the healthy baseline can be
read, and tuned against the normal ranges in ``signals.py``, on its own. Chemistry-specific
numbers (OCV curve, limits) come from ``chemistry.py``. Everything here is vectorised over
the samples of one module, on its true (not reported) time axis; the only Python loops run
over charge phases (a handful per hour) and over filter blocks (hundreds of samples each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.data._draw import Sampler
from src.data.chemistry import Chemistry

NOMINAL_CAPACITY_AH = 150.0
"""Module capacity the rack's current profile is planned for (1C = 150 A)."""

CELLS_PER_MODULE = 16
"""Series cells per module; one failing cell moves the module average by 1/16 of its drop."""

TAPER_C_RATE = 0.12
"""Charge current of the constant-voltage tail; it keeps healthy cells under their limit."""

FAST_CHARGE_C_RATE = (1.0, 1.07)
"""The harmless fast charge of a look-alike rack: 150-160 A."""

AMBIENT_GRID_S = 30.0
"""Rack air is smooth, so it is computed on this grid and interpolated."""

SECONDS_PER_SOC_PCT_AT_1C = 36.0
"""1C fills 1 % of capacity in 36 s."""


def first_order_lag(x: np.ndarray, dt_s: np.ndarray, tau_s: float, y0: float) -> np.ndarray:
    """Response of a first-order lag y' = (x - y) / tau to x, exact for x held over each step.

    The recursion y_k = a_k y_(k-1) + (1 - a_k) x_k is solved in closed form with cumulative
    products, block by block so the growing 1/prod(a) factor cannot overflow; this keeps the
    thermal model vectorised instead of looping over every sample.
    """
    out = np.empty_like(x, dtype=float)
    log_a = -dt_s / tau_s
    block = max(1, int(300.0 / max(float(np.max(-log_a, initial=0.0)), 1e-9)))
    y = float(y0)
    for start in range(0, x.size, block):
        part = slice(start, start + block)
        decay = np.exp(np.cumsum(log_a[part]))
        gain = -np.expm1(log_a[part])
        out[part] = decay * (y + np.cumsum(gain * x[part] / decay))
        y = float(out[part][-1])
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic step, written with tanh so large |x| cannot overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class RackProfile:
    """What all modules of one rack share: chemistry, string current, inlet air, rack gas."""

    chemistry: Chemistry
    phase_start_s: np.ndarray
    phase_current_a: np.ndarray
    soc_knot_s: np.ndarray
    soc_knot_pct: np.ndarray
    grid_s: np.ndarray
    ambient_grid_c: np.ndarray
    gas_grid_ppm: np.ndarray
    """Gas in the rack's air on grid_s (H2, CO, VOC columns): zero unless a plume passes."""
    fast_charge_s: tuple[float, float] | None
    """Start and end of the rack's harmless fast charge, if it has one."""

    def current_a(self, t_s: np.ndarray) -> np.ndarray:
        """String current at the given times (piecewise constant, + = charging)."""
        phase = np.searchsorted(self.phase_start_s, t_s, side="right") - 1
        return self.phase_current_a[np.clip(phase, 0, None)]

    def nominal_soc_pct(self, t_s: np.ndarray) -> np.ndarray:
        """SOC of a nominal 150 Ah module: the exact integral of the piecewise-constant current."""
        return np.interp(t_s, self.soc_knot_s, self.soc_knot_pct)

    def ambient_c(self, t_s: np.ndarray) -> np.ndarray:
        """Rack inlet air temperature."""
        return np.interp(t_s, self.grid_s, self.ambient_grid_c)

    def rack_gas_ppm(self, t_s: np.ndarray) -> np.ndarray:
        """Gas carried in by the rack's air, shape (samples, 3)."""
        return np.column_stack(
            [np.interp(t_s, self.grid_s, self.gas_grid_ppm[:, i]) for i in range(3)]
        )


def _plan_current(
    sampler: Sampler, horizon_s: float, fast_charge_after_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[float, float] | None]:
    """Charge / rest / discharge / rest phases whose durations follow from SOC targets.

    Planning by SOC target (not by time) keeps SOC inside 12-93 % without a feedback loop,
    and a constant-voltage-like taper at 0.12C ends each charge so cells stay below their
    charge limit. The first charge after fast_charge_after_s is a fast one. Returns the
    phases, the SOC knots and the fast charge's (start, end).
    """
    rng = sampler.rng
    q_as = NOMINAL_CAPACITY_AH * 3600.0 / 100.0  # ampere-seconds per SOC percent
    soc = rng.uniform(25.0, 75.0)
    t = 0.0
    starts: list[float] = []
    currents: list[float] = []
    knot_t, knot_soc = [0.0], [soc]
    fast_after = fast_charge_after_s
    fast_interval: tuple[float, float] | None = None

    def add(duration_s: float, current_a: float) -> None:
        nonlocal t, soc
        starts.append(t)
        currents.append(current_a)
        t += duration_s
        soc += current_a * duration_s / q_as
        knot_t.append(t)
        knot_soc.append(soc)

    mode = int(rng.integers(3))  # 0 charge, 1 discharge, 2 rest
    next_active = int(rng.integers(2))
    while t < horizon_s:
        if mode == 2:
            add(rng.uniform(5.0, 40.0) * 60.0, 0.0)
            mode = next_active
            continue
        if mode == 0:
            is_fast = t >= fast_after
            fast_after = np.inf if is_fast else fast_after
            c_rate = rng.uniform(*FAST_CHARGE_C_RATE) if is_fast else rng.uniform(0.3, 0.7)
            target = rng.uniform(87.0, 93.0)
            cc_end = min(target, rng.uniform(82.0, 87.0))
            charge_start = t
            for end, rate in ((cc_end, c_rate), (target, TAPER_C_RATE)):
                if soc < end:
                    amps = rate * NOMINAL_CAPACITY_AH
                    add((end - soc) * q_as / amps, amps)
            if is_fast:
                fast_interval = (charge_start, t)
            next_active = 1
        else:
            c_rate = rng.uniform(0.3, 0.8)
            target = rng.uniform(12.0, 30.0)
            if soc > target:
                amps = c_rate * NOMINAL_CAPACITY_AH
                add((soc - target) * q_as / amps, -amps)
            next_active = 0
        mode = 2
    return np.array(starts), np.array(currents), np.array(knot_t), np.array(knot_soc), fast_interval


def _ambient(sampler: Sampler, grid_s: np.ndarray, start_time_s: float) -> np.ndarray:
    """Inlet air: set point + diurnal swing + HVAC on/off ripple + slow wander."""
    rng = sampler.rng
    hour_of_day = ((start_time_s + grid_s) % 86400.0) / 3600.0
    diurnal = sampler.log_uniform(0.8, 2.0) * np.cos(2 * np.pi * (hour_of_day - 15.0) / 24.0)
    hvac_period_s = sampler.log_uniform(12.0, 25.0) * 60.0
    hvac_phase = rng.uniform(0.0, 2 * np.pi)
    ripple = sampler.log_uniform(0.3, 0.8) * np.sin(2 * np.pi * grid_s / hvac_period_s + hvac_phase)
    coarse_s = np.arange(0.0, grid_s[-1] + 600.0, 600.0)
    wander = np.interp(grid_s, coarse_s, np.cumsum(sampler.normal(0.12, coarse_s.size)))
    return sampler.uniform(21.0, 24.0) + diurnal + ripple + wander


def make_rack_profile(
    sampler: Sampler,
    chemistry: Chemistry,
    horizon_s: float,
    start_time_s: float,
    fast_charge_after_s: float,
) -> RackProfile:
    """One rack's shared current plan and inlet air over [0, horizon_s], before look-alikes.

    fast_charge_after_s: the rack's first charge after this time is a harmless fast charge
    (np.inf: none).
    """
    starts, currents, knot_t, knot_soc, fast_interval = _plan_current(
        sampler, horizon_s, fast_charge_after_s
    )
    grid_s = np.arange(0.0, horizon_s + 2 * AMBIENT_GRID_S, AMBIENT_GRID_S)
    return RackProfile(
        chemistry,
        starts,
        currents,
        knot_t,
        knot_soc,
        grid_s,
        _ambient(sampler, grid_s, start_time_s),
        np.zeros((grid_s.size, 3)),
        fast_interval,
    )


def make_site_pressure(rng: np.random.Generator, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Barometric pressure shared by the site: 101.3 kPa plus a slow weather drift."""
    grid_s = np.arange(0.0, horizon_s + 1200.0, 600.0)
    drift = np.cumsum(rng.normal(0.0, 0.05, grid_s.size))
    return grid_s, 101.3 + rng.uniform(-0.3, 0.3) + drift - drift[0]


@dataclass(frozen=True)
class ModuleParams:
    """Manufacturing and installation spread that makes each module slightly different."""

    capacity_ah: float
    r0_mohm: float
    weak_cell_factor: float
    r_th_k_per_w: float
    tau_thermal_s: float
    position_offset_c: float
    hotspot_c: float
    soc_offset_pct: float
    imbalance_lo_pct: float
    imbalance_hi_pct: float
    gas_base_ppm: tuple[float, float, float]
    pressure_offset_kpa: float
    smoke_base: float

    @classmethod
    def draw(cls, sampler: Sampler) -> ModuleParams:
        return cls(
            capacity_ah=NOMINAL_CAPACITY_AH * sampler.uniform(0.97, 1.03),
            r0_mohm=sampler.log_uniform(0.8, 1.05),
            weak_cell_factor=1.0 + sampler.log_uniform(0.05, 0.2),
            r_th_k_per_w=0.7 * sampler.log_uniform(0.85, 1.25),
            tau_thermal_s=sampler.log_uniform(25.0, 40.0) * 60.0,
            position_offset_c=sampler.uniform(0.0, 1.5),
            hotspot_c=sampler.log_uniform(0.5, 2.0),
            soc_offset_pct=sampler.normal(1.0),
            imbalance_lo_pct=sampler.log_uniform(0.3, 1.2),
            imbalance_hi_pct=sampler.log_uniform(0.3, 1.2),
            gas_base_ppm=(
                sampler.log_uniform(0.4, 1.5),
                sampler.log_uniform(1.0, 3.0),
                sampler.log_uniform(2.0, 6.0),
            ),
            pressure_offset_kpa=sampler.normal(0.08),
            smoke_base=sampler.uniform(0.0, 0.02),
        )


def module_soc_pct(params: ModuleParams, rack: RackProfile, t_s: np.ndarray) -> np.ndarray:
    """True module SOC: the string's charge scaled by this module's own capacity."""
    nominal = rack.nominal_soc_pct(t_s)
    ratio = NOMINAL_CAPACITY_AH / params.capacity_ah
    return rack.soc_knot_pct[0] + params.soc_offset_pct + (nominal - rack.soc_knot_pct[0]) * ratio


def _random_walk(rng: np.random.Generator, dt_s: np.ndarray, sigma_per_sqrt_h: float):
    return np.cumsum(rng.normal(0.0, 1.0, dt_s.size) * sigma_per_sqrt_h * np.sqrt(dt_s / 3600.0))


def healthy_signals(
    rng: np.random.Generator,
    params: ModuleParams,
    rack: RackProfile,
    pressure_grid: tuple[np.ndarray, np.ndarray],
    t_s: np.ndarray,
    current_a: np.ndarray,
    soc_true_pct: np.ndarray,
) -> dict[str, np.ndarray]:
    """Noise-free healthy readings (sensor effects come later, after any fault overlay)."""
    chemistry = rack.chemistry
    dt_s = np.diff(t_s, prepend=t_s[0] - 10.0)
    ambient = rack.ambient_c(t_s)
    # Resistance rises in the cold and at low SOC (Arrhenius-like and diffusion-limited).
    soc_factor = 1.0 + 0.5 * np.exp(-np.clip(soc_true_pct, 0.0, None) / 8.0)
    r_at_ambient = params.r0_mohm * np.exp(-0.02 * (ambient - 25.0)) * soc_factor
    # Ohmic plus polarisation losses (~1.2 x ohmic) heat the cells through the cooling path.
    heat_w = current_a**2 * 1.2 * r_at_ambient * 1e-3
    rise = first_order_lag(heat_w * params.r_th_k_per_w, dt_s, params.tau_thermal_s, 0.0)
    base = ambient + params.position_offset_c
    air = first_order_lag(base, dt_s, params.tau_thermal_s, base[0])
    temp_avg = air + rise
    temp_max = temp_avg + params.hotspot_c + 0.15 * rise

    r_cell = params.r0_mohm * np.exp(-0.02 * (temp_avg - 25.0)) * soc_factor
    r_weak = r_cell * params.weak_cell_factor
    polarisation = first_order_lag(current_a * 0.5 * r_cell * 1e-3, dt_s, 120.0, 0.0)
    v_avg = chemistry.ocv(soc_true_pct) + current_a * r_cell * 1e-3 + polarisation
    slope = chemistry.ocv_slope_v_per_pct(soc_true_pct)
    weak_drop = np.abs(current_a) * (r_weak - r_cell) * 1e-3
    v_min = v_avg - 0.004 - slope * params.imbalance_lo_pct - weak_drop * (current_a < 0)
    v_max = v_avg + 0.004 + slope * params.imbalance_hi_pct + weak_drop * (current_a > 0)

    h2_base, co_base, voc_base = params.gas_base_ppm
    rack_gas = rack.rack_gas_ppm(t_s)
    pressure = (
        np.interp(t_s, *pressure_grid) + params.pressure_offset_kpa + 0.02 * (temp_avg - 25.0)
    )
    return {
        "cell_voltage_min_v": v_min,
        "cell_voltage_max_v": v_max,
        "cell_voltage_avg_v": v_avg,
        "current_a": current_a.astype(float),
        "soc_pct": np.clip(
            np.minimum(soc_true_pct, 100.0) + _random_walk(rng, dt_s, 0.3), 0.0, 100.0
        ),
        "cell_temp_max_c": temp_max,
        "cell_temp_avg_c": temp_avg,
        "ambient_temp_c": ambient,
        "internal_resistance_mohm": r_weak,
        "h2_ppm": np.clip(h2_base + _random_walk(rng, dt_s, 0.3), 0.0, None) + rack_gas[:, 0],
        "co_ppm": np.clip(co_base + _random_walk(rng, dt_s, 0.3), 0.0, None) + rack_gas[:, 1],
        "voc_ppm": np.clip(
            voc_base + _random_walk(rng, dt_s, 0.6) + 0.05 * (ambient - 23.0), 0.0, None
        )
        + rack_gas[:, 2],
        "pressure_kpa": pressure,
        "smoke_obscuration_pct_per_m": np.full(t_s.size, params.smoke_base),
    }
