"""The benchmark's requests: raw readings cut from the project's simulator, two shapes.

- `one`: a request of one reading (a site posting a module's latest values).
- `batch`: a request of 1000 readings, 20 modules x 50 consecutive readings (about eight
  minutes of history each; bulk scoring). Four of the modules are the minutes before a
  simulated thermal runaway, so the answers are not all near zero.

Both servers get the same readings: ours as `{"readings": [...]}`, the MLflow scoring
server as `{"dataframe_records": [...]}` (the format it documents for row-oriented data).
A third, extra shape sends the 1000 readings in each server's compact format: ours
`{"columns": {field: [values]}}`, MLflow's `{"dataframe_split": {"columns", "data"}}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from src.data.payloads import to_payload
from src.data.simulator import SimulationConfig, simulate

SIMULATION = SimulationConfig(
    n_racks=2, modules_per_rack=10, duration_s=2 * 3600.0, n_fault_events=4, seed=42
)
READINGS_PER_MODULE = 50
ONSET_MARGIN_S = 120.0
"""A failing module's slice ends this long before its runaway onset."""


@dataclass(frozen=True)
class Shape:
    name: str
    title: str
    ours_body: bytes
    peer_body: bytes
    required: bool = True
    """False: an extra format, skipped when our service does not accept it."""


def batch_readings() -> list[dict]:
    """1000 readings: per module, 50 consecutive readings, modules one after the other."""
    frame = simulate(SIMULATION)
    readings: list[dict] = []
    for _, series in frame.groupby("module_id", sort=True):
        onset = series["onset_s"].iloc[0]
        if onset == onset:  # a failing module: the minutes before onset
            series = series[series["timestamp_s"] <= onset - ONSET_MARGIN_S]
            rows = series.iloc[-READINGS_PER_MODULE:]
        else:
            middle = len(series) // 2
            rows = series.iloc[middle : middle + READINGS_PER_MODULE]
        readings.extend(to_payload(rows)["readings"])
    return readings


def shapes() -> list[Shape]:
    readings = batch_readings()
    complete = next(r for r in readings if all(value is not None for value in r.values()))
    names = list(readings[0])
    rows = [list(reading.values()) for reading in readings]
    return [
        Shape(
            "one",
            "1 reading",
            orjson.dumps({"readings": [complete]}),
            orjson.dumps({"dataframe_records": [complete]}),
        ),
        Shape(
            "batch",
            "1000 readings",
            orjson.dumps({"readings": readings}),
            orjson.dumps({"dataframe_records": readings}),
        ),
        Shape(
            "columns",
            "1000 readings, compact",
            orjson.dumps({"columns": {name: [r[name] for r in readings] for name in names}}),
            orjson.dumps({"dataframe_split": {"columns": names, "data": rows}}),
            required=False,
        ),
    ]
