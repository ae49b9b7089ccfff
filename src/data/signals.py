"""The raw telemetry signals of one battery module: names, units and ranges.

This table is the single source of truth for the simulator, the feature code, the
request schema (its range checks) and the README's signal table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    """One raw signal a battery management system reports for a module."""

    name: str
    unit: str
    description: str
    sensor_min: float
    """Lowest value the sensor can report; anything below is rejected as invalid input."""
    sensor_max: float
    """Highest value the sensor can report; anything above is rejected as invalid input."""
    normal_low: float
    """Low end of the range seen in healthy operation."""
    normal_high: float
    """High end of the range seen in healthy operation."""
    reference: float
    """Typical healthy value; the feature code centres rolling sums on it for precision."""


SIGNALS: tuple[Signal, ...] = (
    Signal(
        "cell_voltage_min_v", "V", "Lowest cell voltage in the module", 0.0, 5.0, 3.0, 4.15, 3.6
    ),
    Signal(
        "cell_voltage_max_v", "V", "Highest cell voltage in the module", 0.0, 5.0, 3.05, 4.2, 3.65
    ),
    Signal(
        "cell_voltage_avg_v", "V", "Mean cell voltage in the module", 0.0, 5.0, 3.02, 4.18, 3.62
    ),
    Signal(
        "current_a",
        "A",
        "Module current, positive while charging",
        -1000.0,
        1000.0,
        -160.0,
        160.0,
        0.0,
    ),
    Signal("soc_pct", "%", "State of charge estimated by the BMS", 0.0, 100.0, 10.0, 95.0, 55.0),
    Signal(
        "cell_temp_max_c",
        "°C",
        "Hottest cell temperature sensor in the module",
        -40.0,
        1000.0,
        15.0,
        45.0,
        28.0,
    ),
    Signal(
        "cell_temp_avg_c",
        "°C",
        "Mean of the module's cell temperature sensors",
        -40.0,
        1000.0,
        15.0,
        42.0,
        26.0,
    ),
    Signal(
        "ambient_temp_c", "°C", "Air temperature at the rack inlet", -40.0, 150.0, 10.0, 35.0, 23.0
    ),
    Signal(
        "internal_resistance_mohm",
        "mΩ",
        "Estimated internal resistance of the weakest cell",
        0.0,
        100.0,
        0.6,
        1.6,
        1.0,
    ),
    Signal(
        "h2_ppm", "ppm", "Hydrogen concentration at the module vent", 0.0, 100000.0, 0.0, 5.0, 1.0
    ),
    Signal(
        "co_ppm",
        "ppm",
        "Carbon monoxide concentration at the module vent",
        0.0,
        100000.0,
        0.0,
        8.0,
        2.0,
    ),
    Signal(
        "voc_ppm",
        "ppm",
        "Volatile organic compounds (isobutylene equivalent) at the vent",
        0.0,
        100000.0,
        0.0,
        15.0,
        4.0,
    ),
    Signal(
        "pressure_kpa",
        "kPa",
        "Absolute pressure inside the module enclosure",
        50.0,
        500.0,
        100.5,
        102.5,
        101.3,
    ),
    Signal(
        "smoke_obscuration_pct_per_m",
        "%/m",
        "Optical smoke obscuration in the rack",
        0.0,
        100.0,
        0.0,
        0.2,
        0.0,
    ),
)

SIGNAL_NAMES: tuple[str, ...] = tuple(signal.name for signal in SIGNALS)

KEY_SIGNAL_GROUPS: dict[str, tuple[str, ...]] = {
    "gas": ("h2_ppm", "co_ppm", "voc_ppm"),
    "temperature": ("cell_temp_max_c", "cell_temp_avg_c"),
    "voltage": ("cell_voltage_min_v", "cell_voltage_max_v", "cell_voltage_avg_v"),
}
"""The signal groups a warning rests on: a reading lacking one is `unknown`, not normal."""
SIGNAL_INDEX: dict[str, int] = {name: index for index, name in enumerate(SIGNAL_NAMES)}

SAMPLE_PERIOD_S = 10.0
"""The BMS reports every module every 10 seconds."""

HAZARD_HORIZON_S = 600.0
"""A reading is hazardous when thermal-runaway onset follows within this many seconds."""


def signal_table_markdown() -> str:
    """The README's signal table, generated from SIGNALS so the two cannot drift."""
    lines = [
        "| signal | unit | description | accepted range | healthy range |",
        "|---|---|---|---|---|",
    ]
    for s in SIGNALS:
        lines.append(
            f"| `{s.name}` | {s.unit} | {s.description} | {s.sensor_min:g} to {s.sensor_max:g}"
            f" | {s.normal_low:g} to {s.normal_high:g} |"
        )
    return "\n".join(lines)
