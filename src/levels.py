"""Alarm levels: the model's two thresholds, physical guard rules beside it, and honest data
quality. One definition, used by the service for every reading and by training to count
false alarms exactly as the service will raise them.

A reading's level is the highest of
- the model's: `alarm` at or above the run's alarm threshold, `warning` at or above its
  warning threshold (both chosen at training on a false-alarm budget);
- the guards': conservative rules from published limits, each with its source below, that
  raise the level whatever the model says (defence in depth, as a BMS's own limits and a
  site's gas detectors are);
and `unknown` instead of `normal` when a key signal group (gas, temperature, voltage) is
missing from the reading and the site has not declared it absent: no data is not "safe".
`hazardous` means `alarm`.

The guards look at one reading and its features; a lone outlier must not raise an alarm,
so a rule fires only when it also held on the module's previous reading (within 120 s),
or when there is no such reading to ask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from src.data.chemistry import CHEMISTRIES
from src.data.signals import KEY_SIGNAL_GROUPS, SIGNAL_INDEX
from src.features.engineering import CHEMISTRY_CODES, FEATURE_NAMES, RATE_MAX_GAP_S

NORMAL, WARNING, ALARM, UNKNOWN = 0, 1, 2, 3
LEVEL_NAMES = ("normal", "warning", "alarm", "unknown")

H2_LFL_PPM = 40_000.0
"""Hydrogen's lower flammable limit, 4 % by volume (NFPA 704; the usual figure)."""

_F = {name: index for index, name in enumerate(FEATURE_NAMES)}
_ABUSE_V = np.array([CHEMISTRIES[name].abuse_v for name in CHEMISTRY_CODES])
_MAX_V = np.array([CHEMISTRIES[name].max_operating_v for name in CHEMISTRY_CODES])


def _per_chemistry(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A chemistry's limit per reading; unknown chemistry: the highest (fewest alarms)."""
    known = ~np.isnan(codes)
    return np.where(known, values[np.where(known, codes, 0).astype(np.int64)], values.max())


@dataclass(frozen=True)
class Guard:
    name: str
    level: int
    source: str
    holds: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """holds(features, chemistry_codes) -> bool per reading."""


GUARDS: tuple[Guard, ...] = (
    Guard(
        "cell_overvoltage",
        ALARM,
        "Highest cell at or above its chemistry's abuse voltage (LFP 3.8 V, NMC 4.3 V; "
        "datasheet charge limits 3.65 / 4.2 V plus margin: src/data/chemistry.py)",
        lambda f, c: f[:, _F["cell_voltage_max_v"]] >= _per_chemistry(_ABUSE_V, c),
    ),
    Guard(
        "cell_over_charge_limit",
        WARNING,
        "Highest cell 50 mV above its chemistry's datasheet charge limit",
        lambda f, c: f[:, _F["cell_voltage_max_v"]] >= _per_chemistry(_MAX_V, c) + 0.05,
    ),
    Guard(
        "cell_overtemperature",
        ALARM,
        "Hottest cell's 5-minute mean at or above 70 °C: beyond every Li-ion datasheet's "
        "operating limit (55-60 °C) by a margin no healthy rack reaches",
        lambda f, c: f[:, _F["cell_temp_max_c_mean_5min"]] >= 70.0,
    ),
    Guard(
        "cell_heating_fast",
        WARNING,
        "Hottest cell rising 2 °C/min or faster over both the last 1 and 5 minutes, with at "
        "least 4 minutes of history (two noisy readings are not a slope): self-heating far "
        "beyond charging or HVAC effects (Feng et al. 2018 put runaway's own onset at "
        "0.02 °C/min in calorimetry; 2 °C/min at module level is judgement)",
        lambda f, c: (
            (f[:, _F["cell_temp_max_c_slope_per_min_1min"]] >= 2.0)
            & (f[:, _F["cell_temp_max_c_slope_per_min_5min"]] >= 2.0)
            & (f[:, _F["history_s"]] >= 240.0)
        ),
    ),
    Guard(
        "h2_10pct_lfl",
        ALARM,
        "H2 at 10 % of its LFL (4,000 ppm), well before the 25 % of LFL that NFPA 855's "
        "explosion prevention (through NFPA 69) must keep a space below",
        lambda f, c: f[:, _F["h2_ppm"]] >= 0.10 * H2_LFL_PPM,
    ),
    Guard(
        "h2_1pct_lfl",
        WARNING,
        "H2 at 1 % of its LFL (400 ppm): twenty times more than a healthy module's vent",
        lambda f, c: f[:, _F["h2_ppm"]] >= 0.01 * H2_LFL_PPM,
    ),
    Guard(
        "smoke",
        ALARM,
        "Smoke obscuration of 4 %/m (1.2 %/ft), within UL 268's 0.5-4 %/ft sensitivity "
        "range for smoke detectors",
        lambda f, c: f[:, _F["smoke_obscuration_pct_per_m"]] >= 4.0,
    ),
)


@dataclass(frozen=True)
class Thresholds:
    warning: float
    alarm: float


@dataclass(frozen=True)
class Levels:
    level: np.ndarray
    """NORMAL, WARNING, ALARM or UNKNOWN per reading (int8)."""
    reasons: list[tuple[str, ...]]
    """Per reading: `model:<level>`, `guard:<name>`, `missing:<group>`; () when normal."""
    missing: list[tuple[str, ...]]
    """Per reading: the key signal groups it lacks."""


def model_levels(probabilities: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    return np.where(
        probabilities >= thresholds.alarm,
        ALARM,
        np.where(probabilities >= thresholds.warning, WARNING, NORMAL),
    ).astype(np.int8)


def guard_hits(features: np.ndarray, chemistry: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """bool (n_readings, len(GUARDS)): each rule, persistent over two readings.

    features: all FEATURE_NAMES; previous: each reading's previous reading of the same
    module (a row index), or -1 when there is none within RATE_MAX_GAP_S."""
    raw = np.column_stack([guard.holds(features, chemistry) for guard in GUARDS])
    has_previous = previous >= 0
    return raw & np.where(has_previous[:, None], raw[np.maximum(previous, 0)], True)


def previous_readings(module_ids: Sequence[str], timestamps_s: np.ndarray) -> np.ndarray:
    """Each reading's previous reading of the same module within RATE_MAX_GAP_S, or -1."""
    _, group = np.unique(np.asarray(module_ids, dtype=object), return_inverse=True)
    order = np.lexsort((timestamps_s, group))
    previous = np.full(len(timestamps_s), -1, dtype=np.int64)
    same = (group[order][1:] == group[order][:-1]) & (
        timestamps_s[order][1:] - timestamps_s[order][:-1] <= RATE_MAX_GAP_S
    )
    previous[order[1:][same]] = order[:-1][same]
    return previous


def missing_groups(signals: np.ndarray, absent: frozenset[str]) -> np.ndarray:
    """bool (n_readings, len(KEY_SIGNAL_GROUPS)): the group's every (non-absent) signal is
    missing. A group whose signals are all declared absent is never "missing"."""
    columns = []
    for members in KEY_SIGNAL_GROUPS.values():
        present = [SIGNAL_INDEX[name] for name in members if name not in absent]
        if present:
            columns.append(np.isnan(signals[:, present]).all(axis=1))
        else:
            columns.append(np.zeros(signals.shape[0], dtype=bool))
    return np.column_stack(columns)


def combine(
    model: np.ndarray, guards: np.ndarray, missing: np.ndarray, with_reasons: bool = True
) -> Levels:
    """The reading's level and why (see the module docstring)."""
    guard_level = np.where(guards, np.array([g.level for g in GUARDS]), NORMAL).max(axis=1)
    level = np.maximum(model, guard_level).astype(np.int8)
    unknown = (level == NORMAL) & missing.any(axis=1)
    level[unknown] = UNKNOWN
    if not with_reasons:
        return Levels(level, [], [])
    group_names = list(KEY_SIGNAL_GROUPS)
    n_rows = level.shape[0]
    reasons: list[tuple[str, ...]] = [()] * n_rows
    missing_names: list[tuple[str, ...]] = [()] * n_rows
    # Most readings are normal and complete: only the others get a Python loop.
    for row in np.flatnonzero((model != NORMAL) | guards.any(axis=1) | missing.any(axis=1)):
        gone = tuple(group_names[i] for i in np.flatnonzero(missing[row]))
        why = () if model[row] == NORMAL else (f"model:{LEVEL_NAMES[model[row]]}",)
        why += tuple(f"guard:{GUARDS[i].name}" for i in np.flatnonzero(guards[row]))
        reasons[row] = why + tuple(f"missing:{name}" for name in gone)
        missing_names[row] = gone
    return Levels(level, reasons, missing_names)
