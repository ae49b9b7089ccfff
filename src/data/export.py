"""`python -m src.data.export --out DIR`: the simulator's data as operators' files.

Writes exactly what `read_telemetry` and `read_events` read, and only what an operator's
own files would hold:

    DIR/telemetry/rack-R01.csv ...   one telemetry file per rack (module_id, rack_id,
                                     chemistry, timestamp, the 14 signals; empty = missing)
    DIR/events.csv                   one row per fault event (module_id, onset,
                                     fault_type, event_id)

The simulator's own truth stays out (TRUTH_COLUMNS): a reading's true time behind a BMS
clock that jumped, its look-alike labels and its event's precursor pattern are things no
site logs, and training from files must not learn from them. Readings the simulated BMS
sent twice are written twice, as a gateway's retry would be (the reader keeps one).

(`.parquet` with --format parquet). Signals are written so they read back as the very same
float64: Parquet stores float64, and the CSV has each value's shortest round-trip decimal
form (Arrow's writer, as Python's repr). Timestamps and onsets are UTC at microsecond
resolution (ISO 8601 with Z in a CSV, a timestamp[us, UTC] column in Parquet), the API's
own resolution: they read back within 1 µs of the simulator's float seconds.

Progress goes to standard error; the paths written are the last lines of standard output.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate

logger = logging.getLogger(__name__)

TELEMETRY_FOLDER = "telemetry"
EVENTS_NAME = "events"
FORMATS = ("csv", "parquet")
TRUTH_COLUMNS: tuple[str, ...] = ("true_time_s", "lookalike", "precursor_pattern")
"""Simulator columns that are not written: what only the simulator can know."""


def events_of(frame: pd.DataFrame) -> pd.DataFrame:
    """A labelled frame's events: module_id, onset_s, fault_type, event_id (one row each)."""
    faulty = frame[frame["event_id"] != ""]
    return (
        faulty.groupby("event_id", sort=True)[["module_id", "onset_s", "fault_type"]]
        .first()
        .reset_index()[["module_id", "onset_s", "fault_type", "event_id"]]
    )


def _micros(seconds: np.ndarray) -> np.ndarray:
    return np.round(seconds * 1e6).astype(np.int64)


def _moments(seconds: np.ndarray, file_format: str) -> pa.Array:
    """Epoch seconds as the file's timestamp column: ISO 8601 text in CSV, native in Parquet."""
    micros = _micros(seconds)
    if file_format == "parquet":
        return pa.array(micros, pa.timestamp("us", tz="UTC"))
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return pa.array(np.char.add(text.astype(str), "Z"))


def telemetry_table(frame: pd.DataFrame, file_format: str) -> pa.Table:
    """A simulator frame's readings as a telemetry file's columns (no truth, no labels)."""
    columns: dict[str, pa.Array] = {
        "module_id": pa.array(frame["module_id"].to_numpy(dtype=object), pa.string()),
        "rack_id": pa.array(frame["rack_id"].to_numpy(dtype=object), pa.string()),
        "chemistry": pa.array(frame["chemistry"].to_numpy(dtype=object), pa.string()),
        "timestamp": _moments(frame["timestamp_s"].to_numpy(dtype=np.float64), file_format),
    }
    for name in SIGNAL_NAMES:
        # from_pandas: NaN becomes null, an empty cell in the CSV.
        columns[name] = pa.array(frame[name].to_numpy(dtype=np.float64), from_pandas=True)
    return pa.table(columns)


def events_table(events: pd.DataFrame, file_format: str) -> pa.Table:
    """events_of's rows as an events file's columns: module_id, onset, fault_type, event_id."""
    return pa.table(
        {
            "module_id": pa.array(events["module_id"].to_numpy(dtype=object), pa.string()),
            "onset": _moments(events["onset_s"].to_numpy(dtype=np.float64), file_format),
            "fault_type": pa.array(events["fault_type"].to_numpy(dtype=object), pa.string()),
            "event_id": pa.array(events["event_id"].to_numpy(dtype=object), pa.string()),
        }
    )


def _write(table: pa.Table, path: Path, file_format: str) -> None:
    if file_format == "parquet":
        pq.write_table(table, path)
    else:
        # Unquoted, header too: ids and fault types never hold a comma or a quote (Arrow
        # refuses to write one unquoted), and a plain file is easier to read and to diff.
        with path.open("wb") as sink:
            sink.write((",".join(table.column_names) + "\n").encode())
            options = pcsv.WriteOptions(include_header=False, quoting_style="none")
            pcsv.write_csv(table, sink, options)


def export(frame: pd.DataFrame, out: Path, file_format: str = "csv") -> list[Path]:
    """Write a simulator frame's telemetry (one file per rack) and events; the paths written."""
    if file_format not in FORMATS:
        raise ValueError(f"file_format must be one of {', '.join(FORMATS)}")
    folder = out / TELEMETRY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for rack_id, rack in frame.groupby("rack_id", sort=True):
        path = folder / f"rack-{rack_id}.{file_format}"
        _write(telemetry_table(rack, file_format), path, file_format)
        sys.stderr.write(f"wrote {len(rack):,} readings to {path}\n")
        written.append(path)
    events = events_of(frame)
    path = out / f"{EVENTS_NAME}.{file_format}"
    _write(events_table(events, file_format), path, file_format)
    sys.stderr.write(f"wrote {len(events):,} events to {path}\n")
    written.append(path)
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m src.data.export", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="file_format")
    parser.add_argument(
        "--small", action="store_true", help="the small simulation that tests and CI train on"
    )
    parser.add_argument("--seed", type=int, default=None, help="simulation seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    if args.small:
        # Imported here: the training package is heavy (XGBoost) and only --small needs it.
        from src.training.config import small_config

        config = small_config().simulation
    else:
        config = SimulationConfig()
    if args.seed is not None:
        config = replace(config, seed=args.seed)

    def progress(done: int, total: int) -> None:
        if done == total or done % 16 == 0:
            sys.stderr.write(f"simulated {done}/{total} modules\n")

    frame = simulate(config, progress=progress)
    for path in export(frame, args.out, args.file_format):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
