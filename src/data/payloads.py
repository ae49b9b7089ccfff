"""`python -m src.data.payloads`: write test_payload.json and test_payload_hazardous.json.

Both are cut from the simulator's default telemetry: two minutes of a healthy module that
no look-alike touches, and the three minutes ending two minutes before thermal-runaway
onset of the failing module whose hydrogen is then highest (a pattern one can see).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate

HEALTHY_SECONDS = 120.0
HAZARD_WINDOW = (300.0, 120.0)
"""From 5 to 2 minutes before onset."""


def to_payload(rows: pd.DataFrame) -> dict:
    readings = []
    for row in rows.itertuples(index=False):
        reading = {
            "module_id": row.module_id,
            "timestamp": datetime.fromtimestamp(round(row.timestamp_s, 3), tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        for name in SIGNAL_NAMES:
            value = getattr(row, name)
            reading[name] = None if math.isnan(value) else round(float(value), 4)
        readings.append(reading)
    return {"readings": readings}


def healthy_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The first healthy module's first two minutes, from its middle on, that no look-alike
    touches (every module meets one some time in six hours)."""
    healthy = frame[frame["fault_type"] == "none"]
    for _, series in healthy.groupby("module_id", sort=True):
        quiet = (series["lookalike"] == "").to_numpy()
        times = series["timestamp_s"].to_numpy()
        for start in range(len(series) // 2, len(series)):
            inside = (times >= times[start]) & (times < times[start] + HEALTHY_SECONDS)
            if times[-1] >= times[start] + HEALTHY_SECONDS and quiet[inside].all():
                return series[inside]
    raise ValueError("no healthy module has two minutes without a look-alike")


def hazardous_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Five to two minutes before onset, of the event whose H2 is highest at the end."""
    early, late = HAZARD_WINDOW
    failing = frame[frame["event_id"] != ""]
    window = failing[
        (failing["timestamp_s"] >= failing["onset_s"] - early)
        & (failing["timestamp_s"] <= failing["onset_s"] - late)
    ]
    event = window.groupby("event_id")["h2_ppm"].last().idxmax()
    return window[window["event_id"] == event]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.data.payloads", description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    frame = simulate(SimulationConfig())
    for name, rows in (
        ("test_payload.json", healthy_rows(frame)),
        ("test_payload_hazardous.json", hazardous_rows(frame)),
    ):
        path = args.out_dir / name
        path.write_text(json.dumps(to_payload(rows), indent=2) + "\n", encoding="utf-8")
        sys.stderr.write(f"wrote {len(rows)} readings to {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
