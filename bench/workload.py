"""The benchmark's requests: raw readings cut from the project's simulator.

- `one`: a request of one reading (a site posting a module's latest values), of a module
  no other shape sends (`<module>.one`), so with history on it never gains a history.
- `batch`: a request of 1000 readings, 20 modules x 50 consecutive readings (about eight
  minutes of history each; bulk scoring). Four of the modules are the minutes before a
  simulated thermal runaway, so the answers are not all near zero.

Both servers get the same readings: ours as `{"readings": [...]}`, the MLflow scoring
server as `{"dataframe_records": [...]}` (the format it documents for row-oriented data).
A third, extra shape sends the 1000 readings in each server's compact format: ours
`{"columns": {field: [values]}}`, MLflow's `{"dataframe_split": {"columns", "data"}}`.

- `stream` (ours and the ceiling only): one reading per request from STREAM_MODULES
  modules in turn, each module's clock advancing STREAM_STEP_S per round, as a site's
  BMS posts; with history on, each is scored with its module's stored minutes. The body
  is a template that post.lua fills per request (`Stream` keeps the clock between runs).
  The readings' values are `one`'s; the stateless server sees plain one-reading requests.
"""

from __future__ import annotations

import math
import time
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
STREAM_MODULES = 500
STREAM_STEP_S = 10.0
"""The simulator's (and a BMS's) sampling period."""
STREAM_START_AGO_S = 6 * 3600.0
"""The stream's clock starts this far in the past: it runs ~10-30x faster than real time
(500 modules, 1,000-3,000 requests/s) and must never pass the server's clock, which
refuses readings from the future."""


@dataclass(frozen=True)
class Shape:
    name: str
    title: str
    ours_body: bytes
    peer_body: bytes
    required: bool = True
    """False: an extra format, skipped when our service does not accept it."""
    v2_body: bytes = b""
    """MLServer's request: the engineered, scaled rows (filled in by run_bench)."""
    stream: bool = False
    """ours_body is post.lua's template (@MODULE@, @TIMESTAMP@)."""


def batch_readings() -> list[dict]:
    """1000 readings: per module, 50 consecutive readings, modules one after the other."""
    frame = simulate(SIMULATION)
    readings: list[dict] = []
    for _, series in frame.groupby("module_id", sort=True):
        # The simulator repeats a few readings, as gateways retry; the peers would score a
        # repeat as a second reading (training and our service keep one), so each shape
        # holds distinct readings only and every server answers the same question.
        series = series.drop_duplicates(["timestamp_s"], keep="first")
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
    complete = {**complete, "module_id": complete["module_id"] + ".one"}
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


def stream_shape() -> Shape:
    """One reading per request, module and timestamp filled in by post.lua."""
    readings = batch_readings()
    complete = next(r for r in readings if all(value is not None for value in r.values()))
    template = {**complete, "module_id": "@MODULE@", "timestamp": "@TIMESTAMP@"}
    body = orjson.dumps({"readings": [template]})
    return Shape("stream", "1 reading, streaming", body, b"", stream=True)


class Stream:
    """One server's stream clock: where post.lua starts, moved past each run's last round,
    so no (module, timestamp) repeats within a benchmark."""

    def __init__(self, prefix: str = "S-", start: float | None = None) -> None:
        self.prefix = prefix
        self.base = float(int(start if start is not None else time.time() - STREAM_START_AGO_S))

    def env(self) -> dict[str, str]:
        return {
            "WRK_STREAM_MODULES": str(STREAM_MODULES),
            "WRK_STREAM_BASE": str(int(self.base)),
            "WRK_STREAM_STEP_S": str(STREAM_STEP_S),
            "WRK_STREAM_PREFIX": self.prefix,
        }

    def advance(self, requests: int, connections: int) -> None:
        """After a run of `requests` answers: wrk may have sent up to `connections` more."""
        rounds = math.ceil((requests + connections) / STREAM_MODULES) + 1
        self.base += rounds * STREAM_STEP_S

    def render(self, template: bytes, module: int, rounds: int) -> bytes:
        """The body post.lua sends for `module` in round `rounds` (a check's, not load)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.base + rounds * STREAM_STEP_S))
        return template.replace(b"@MODULE@", f"{self.prefix}{module:04d}".encode()).replace(
            b"@TIMESTAMP@", stamp.encode()
        )
