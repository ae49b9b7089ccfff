"""Cell chemistries of the simulated site: one table for every chemistry-dependent number.

Grid storage today is mostly LFP (LiFePO4 / graphite); older and some compact systems use
NMC (LiNiMnCoO2 / graphite). The two differ in ways an early-warning model must not
confuse: LFP sits on a flat 3.2-3.35 V plateau and vents less, hydrogen-rich gas; NMC
spans 3.0-4.2 V and vents more, CO-rich gas. The simulator, and later the physical guard
rules, read these numbers from here only. Sources are in the comments and, at length, in
docs/simulator.md ("Chemistries"); values marked "judgement" are mine, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chemistry:
    """The chemistry-dependent facts of one cell type (voltages per cell)."""

    name: str
    ocv_soc_pct: tuple[float, ...]
    """SOC points of the open-circuit-voltage curve, 0-100 %."""
    ocv_v: tuple[float, ...]
    """Open-circuit cell voltage at those points."""
    nominal_v: float
    min_operating_v: float
    """Discharge cut-off of the datasheet: a healthy cell never reads below it."""
    max_operating_v: float
    """Charge cut-off of the datasheet: a healthy cell never reads above it."""
    abuse_v: float
    """Cell voltage that is abuse, not operation (a guard rule may alarm on it alone)."""
    overcharge_rise_v: float
    """How far the OCV climbs above its 100 % value when charging goes on past full..."""
    overcharge_scale_pct: float
    """...reaching 63 % of that rise after this many SOC percent of overcharge."""
    gas_yield: float
    """Vent gas per Ah relative to NMC (= 1): scales every off-gas level."""
    h2_fraction: float
    co_fraction: float
    voc_fraction: float
    """Molar shares of H2, CO and VOC (electrolyte vapour, hydrocarbons) in the vent gas."""
    onset_temp_rise_c: tuple[float, float]
    """Rise of the hottest cell sensor by runaway onset (log-uniform range)."""
    peak_temp_c: tuple[float, float]
    """Hottest cell sensor during runaway (uniform range)."""

    def ocv(self, soc_pct: np.ndarray) -> np.ndarray:
        """Open-circuit cell voltage; past 100 % SOC (overcharge) it keeps climbing."""
        base = np.interp(soc_pct, self.ocv_soc_pct, self.ocv_v)
        over = np.clip(soc_pct - 100.0, 0.0, None)
        return base + self.overcharge_rise_v * -np.expm1(-over / self.overcharge_scale_pct)

    def gas_shares(self) -> dict[str, float]:
        """Vent-gas shares keyed as the precursor channels are: h2, co, voc."""
        return {"h2": self.h2_fraction, "co": self.co_fraction, "voc": self.voc_fraction}

    def ocv_slope_v_per_pct(self, soc_pct: np.ndarray) -> np.ndarray:
        """dOCV/dSOC within 0-100 %: a fixed SOC imbalance shows as more spread where steep."""
        slope = np.gradient(np.asarray(self.ocv_v), np.asarray(self.ocv_soc_pct))
        return np.interp(np.clip(soc_pct, 0.0, 100.0), self.ocv_soc_pct, slope)


LFP = Chemistry(
    name="LFP",
    # Flat two-step plateau (~3.29 and ~3.33 V) between 10 and 90 % SOC, steep at both ends:
    # the shape of published LFP/graphite OCV measurements; the points are my reading of it.
    ocv_soc_pct=(0.0, 3.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0),
    ocv_v=(2.60, 2.98, 3.10, 3.20, 3.25, 3.27, 3.285, 3.29, 3.30, 3.32, 3.33, 3.34, 3.36, 3.45),
    nominal_v=3.2,  # datasheets: 3.2 V nominal, 3.65 V charge limit, 2.5 V cut-off
    min_operating_v=2.5,
    max_operating_v=3.65,
    abuse_v=3.8,  # judgement: clear of 3.65 V plus I*R and sensor error
    # Overcharged LFP leaves its plateau fast: with the I*R drop the cell peaks at about
    # 4.05-4.35 V before onset (judgement; Golubkov et al. 2015 overcharged LFP cells).
    overcharge_rise_v=0.55,
    overcharge_scale_pct=6.0,
    # Ferdigg & Mair 2025 (same rig, both chemistries): LFP 0.02 mol/Ah with 41 % H2 and
    # 8 % CO, NMC 0.07 mol/Ah with 19 % H2 and 36 % CO. The VOC share is judgement.
    gas_yield=0.3,
    h2_fraction=0.41,
    co_fraction=0.08,
    voc_fraction=0.2,
    # LFP starts self-heating and runs away at higher temperatures and burns cooler than
    # NMC (Feng et al. 2018; vent gas 446 vs 1050 degC in Ferdigg & Mair 2025); the
    # sensor-level numbers are judgement.
    onset_temp_rise_c=(6.0, 90.0),
    peak_temp_c=(300.0, 550.0),
)

NMC = Chemistry(
    name="NMC",
    ocv_soc_pct=(0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0),
    ocv_v=(3.00, 3.33, 3.43, 3.53, 3.59, 3.63, 3.67, 3.74, 3.83, 3.93, 4.04, 4.10, 4.18),
    nominal_v=3.65,  # datasheets: 3.6-3.7 V nominal, 4.2 V charge limit
    min_operating_v=3.0,  # grid BMSs stop NMC at 3.0 V although some cells allow 2.5-2.75 V
    max_operating_v=4.2,
    abuse_v=4.3,  # judgement
    overcharge_rise_v=0.5,
    overcharge_scale_pct=12.0,
    gas_yield=1.0,
    h2_fraction=0.19,
    co_fraction=0.36,
    voc_fraction=0.2,
    onset_temp_rise_c=(4.0, 70.0),
    peak_temp_c=(500.0, 900.0),
)

CHEMISTRIES: dict[str, Chemistry] = {chemistry.name: chemistry for chemistry in (LFP, NMC)}
