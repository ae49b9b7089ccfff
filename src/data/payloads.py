"""`python -m src.data.payloads`: write test_payload.json and test_payload_hazardous.json.

Both are cut from the simulator's default telemetry: two minutes of a healthy module, and
the three minutes of a failing module that end two minutes before thermal-runaway onset.
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
    healthy = frame[frame["fault_type"] == "none"]
    module = healthy["module_id"].iloc[0]
    series = healthy[healthy["module_id"] == module]
    start = series["timestamp_s"].iloc[len(series) // 2]
    return series[
        (series["timestamp_s"] >= start) & (series["timestamp_s"] < start + HEALTHY_SECONDS)
    ]


def hazardous_rows(frame: pd.DataFrame, fault_type: str = "internal_short") -> pd.DataFrame:
    series = frame[frame["fault_type"] == fault_type]
    series = series[series["event_id"] == series["event_id"].iloc[0]]
    onset = series["onset_s"].iloc[0]
    early, late = HAZARD_WINDOW
    return series[
        (series["timestamp_s"] >= onset - early) & (series["timestamp_s"] <= onset - late)
    ]


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
