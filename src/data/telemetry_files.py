"""Operators' own telemetry and incident logs: read, validate, and hand over as frames.

    telemetry = read_telemetry("site-a/telemetry")            # a file, or a folder of them
    events = read_events("site-a/events.csv", telemetry=telemetry)
    print(format_report(data_report(telemetry, events)))      # src/data/telemetry_report.py
    labelled = label_readings(telemetry, events)              # src/data/labels.py

**Telemetry** files (CSV or Parquet; a folder may mix them; read in name order) hold one
reading per row with the fields of a `/predict` reading: `module_id`, `timestamp` and the
14 signals of `src/data/signals.py` (empty = missing), plus optional `rack_id` and
`chemistry` (LFP or NMC). **Event** files hold one thermal-runaway incident per row:
`module_id`, `onset` (when runaway began; the same timestamp forms), and optional
`fault_type` (default "unknown"), `event_id` (made when absent or empty) and `notes`.
The format, and every message, is described in docs/own-data.md.

Nothing is returned until every file has been checked: all problems (the first
MAX_SHOWN_PER_KIND of each kind, and a count) are raised together in one
`TelemetryValidationError`.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from src.data import file_columns as fc
from src.data.file_columns import SourceFile
from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.data.telemetry_checks import (
    Problem,
    ProblemLog,
    TelemetryValidationError,
    also_in,
    check_signal_values,
    quoted,
    where,
)

logger = logging.getLogger(__name__)

__all__ = [
    "EVENT_COLUMNS",
    "FILE_SCHEMA_VERSION",
    "TELEMETRY_COLUMNS",
    "Problem",
    "TelemetryValidationError",
    "read_events",
    "read_telemetry",
]

FILE_SCHEMA_VERSION = "1"
"""The file format of docs/own-data.md (columns, units, timestamp forms), as training runs
record it: raised when a change makes older files read differently."""

TELEMETRY_REQUIRED: tuple[str, ...] = ("module_id", "timestamp", *SIGNAL_NAMES)
TELEMETRY_OPTIONAL: tuple[str, ...] = ("rack_id", "chemistry")
TELEMETRY_COLUMNS = TELEMETRY_REQUIRED + TELEMETRY_OPTIONAL
EVENT_REQUIRED: tuple[str, ...] = ("module_id", "onset")
EVENT_OPTIONAL: tuple[str, ...] = ("fault_type", "event_id", "notes")
EVENT_COLUMNS = EVENT_REQUIRED + EVENT_OPTIONAL

CHEMISTRIES: tuple[str, ...] = ("LFP", "NMC")
DEFAULT_FAULT_TYPE = "unknown"
"""fault_type of an event whose file says none; "none" itself is reserved for healthy data."""
ONSET_AFTER_LAST_READING_MAX_S = 3600.0
"""An onset may follow its module's last reading by this much: a burning module stops
reporting, and incident logs are written by people after the fact."""
SOURCE_COLUMNS: tuple[str, ...] = ("source_file", "source_row")
"""Every returned row's file (as named) and 1-based data row, for later messages."""

_HINTS: dict[str, str] = {
    "timestamp_s": "timestamp",
    "time": "timestamp",
    "ts": "timestamp",
    "module": "module_id",
    "rack": "rack_id",
    "onset_s": "onset",
    "onset_time": "onset",
}
_LABEL_COLUMNS = ("fault_type", "event_id", "onset_s", "hazardous")
_COLUMN_SUMMARY = {
    "reading": "module_id, timestamp, the 14 signals of docs/own-data.md, optional rack_id "
    "and chemistry",
    "event": "module_id, onset, optional fault_type, event_id and notes",
}


def read_telemetry(path: str | Path, *, check_units: bool = True) -> pd.DataFrame:
    """Every reading of a CSV or Parquet file, or of a folder of them, checked.

    Returns one row per reading sorted by (module_id, timestamp_s): `module_id`, then
    `rack_id` and `chemistry` when the files have them, `timestamp_s` (float epoch
    seconds, as the API computes them), the 14 signals (float64, NaN = missing),
    `source_file` and `source_row`. `frame.attrs["source_files"]` lists each file read
    (path, format, rows, bytes, sha256). check_units=False skips the wrong-unit heuristics
    (for a file that holds only a fault, where healthy ranges say nothing).

    Raises TelemetryValidationError with every problem found.
    """
    log = ProblemLog()
    parts, sources = [], []
    for file_path, shown in fc.list_files(path, log):
        loaded = fc.read_table(file_path, shown, SIGNAL_NAMES, log)
        if loaded is None:
            continue
        table, source = loaded
        sources.append(source)
        part = _telemetry_part(table, shown, log, check_units)
        if part is not None:
            parts.append(part)
    if not log and not sum(source.rows for source in sources):
        log.add(Problem("unreadable_file", f"{path}: no readings; the files are empty"))
    if parts:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        # Checked across files even when some file failed, so one run tells everything.
        frame = _check_duplicates(frame, log)
        _check_modules(frame, log)
    log.raise_if_any(f"telemetry files at {path}")
    frame = _finish(frame, ("module_id", "timestamp_s"), sources)
    logger.info(
        "read %d readings of %d modules from %d file(s) at %s",
        len(frame),
        frame["module_id"].nunique(),
        len(sources),
        path,
    )
    return frame


def read_events(path: str | Path, *, telemetry: pd.DataFrame | None = None) -> pd.DataFrame:
    """The incident log: one thermal-runaway event per row, checked.

    Returns `module_id`, `onset_s` (float epoch seconds), `fault_type`, `event_id`,
    `notes` (when the files have it), `source_file`, `source_row`, sorted by onset.
    With telemetry, every event must name a module of it and an onset within that
    module's readings (or up to ONSET_AFTER_LAST_READING_MAX_S after the last one).

    Raises TelemetryValidationError with every problem found.
    """
    log = ProblemLog()
    parts, sources = [], []
    for file_path, shown in fc.list_files(path, log):
        loaded = fc.read_table(file_path, shown, (), log)
        if loaded is None:
            continue
        table, source = loaded
        sources.append(source)
        part = _events_part(table, shown, log)
        if part is not None:
            parts.append(part)
    if parts:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    else:
        frame = pd.DataFrame({name: [] for name in ("module_id", "onset_s", *SOURCE_COLUMNS)})
    frame = _with_event_ids(frame, log)
    if telemetry is not None:
        # Only the rows that passed their own checks: each problem is reported once.
        usable = frame["module_id"].notna() & frame["onset_s"].notna()
        check_events_against(frame[usable], telemetry, log)
    log.raise_if_any(f"event files at {path}")
    frame = _finish(frame, ("onset_s", "module_id"), sources)
    logger.info("read %d event(s) from %d file(s) at %s", len(frame), len(sources), path)
    return frame


# -- one file ---------------------------------------------------------------------------------


def _check_columns(
    names: list[str], required: tuple[str, ...], known: tuple[str, ...], file: str, what: str
) -> list[Problem]:
    """Missing and unknown columns; a misnamed column is one problem, not two."""
    problems, explained = [], set()
    for name in names:
        if name in known:
            continue
        if name in _LABEL_COLUMNS and what == "reading":
            advice = "labels are made from the events file; remove the column"
        else:
            guess = _HINTS.get(name.strip().lower()) or next(
                iter(difflib.get_close_matches(name.strip().lower(), known, n=1)), None
            )
            if guess in required and guess not in names:
                explained.add(guess)
                advice = f"did you mean {guess}? rename it (the file has no {guess} column)"
            else:
                hint = f"did you mean {guess}? " if guess else ""
                advice = f"{hint}rename or remove it (the columns: {_COLUMN_SUMMARY[what]})"
        problems.append(
            Problem(
                "unknown_column",
                f"{where(quoted(name), file)}: unknown column; {advice}",
                file=file,
                column=name,
            )
        )
    for name in required:
        if name not in names and name not in explained:
            needs = (
                f"{name} (leave cells empty where the sensor reported nothing)"
                if name in SIGNAL_NAMES
                else name
            )
            problems.append(
                Problem(
                    "missing_column",
                    f"{where(name, file)}: missing column; every {what} needs {needs}",
                    file=file,
                    column=name,
                )
            )
    return problems


def _telemetry_part(
    table: pa.Table, file: str, log: ProblemLog, check_units: bool
) -> pd.DataFrame | None:
    names = table.column_names
    column_problems = _check_columns(names, TELEMETRY_REQUIRED, TELEMETRY_COLUMNS, file, "reading")
    for problem in column_problems:
        log.add(problem)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for column in ("module_id", "rack_id"):
        if column in names:
            out[column] = fc.check_ids(table[column], column, file, rows, log)
    if "chemistry" in names:
        out["chemistry"] = _chemistry(table["chemistry"], file, rows, log)
    if "timestamp" in names:
        out["timestamp_s"] = fc.to_epoch_seconds(table["timestamp"], "timestamp", file, rows, log)
    for signal in SIGNALS:
        if signal.name not in names:
            continue
        values = fc.to_floats(table[signal.name], signal.name, signal.unit, file, rows, log)
        check_signal_values(log, signal, values, file, rows, units=check_units)
        out[signal.name] = values
    if column_problems:
        return None
    return _frame(out, file, rows)


def _chemistry(column: pa.ChunkedArray, file: str, rows: np.ndarray, log: ProblemLog) -> np.ndarray:
    values = fc.check_ids(column, "chemistry", file, rows, ProblemLog())
    values = np.where(values == None, "", values)  # noqa: E711 (elementwise)
    upper = np.array([value.upper() for value in values], dtype=object)
    bad = ~np.isin(upper, CHEMISTRIES)
    for value in pd.unique(values[bad]):
        hit = rows[bad & (values == value)]
        log.add(
            Problem(
                "bad_value",
                f"{where('chemistry', file, int(hit[0]))}: {quoted(value)} is not a chemistry"
                f"{also_in(hit)}; write {' or '.join(CHEMISTRIES)}, or leave the column out if "
                "it is not known",
                file=file,
                row=int(hit[0]),
                column="chemistry",
            )
        )
    upper[bad] = None  # reported here, not again as a module with two chemistries
    return upper


def _events_part(table: pa.Table, file: str, log: ProblemLog) -> pd.DataFrame | None:
    names = table.column_names
    column_problems = _check_columns(names, EVENT_REQUIRED, EVENT_COLUMNS, file, "event")
    for problem in column_problems:
        log.add(problem)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    if "module_id" in names:
        out["module_id"] = fc.check_ids(table["module_id"], "module_id", file, rows, log)
    if "onset" in names:
        out["onset_s"] = fc.to_epoch_seconds(table["onset"], "onset", file, rows, log)
    for name in EVENT_OPTIONAL:
        if name in names:
            text = fc.text_values(table[name])
            if name == "fault_type":
                text = _fault_types(text, file, rows, log)
            out[name] = text
    if column_problems:
        return None
    return _frame(out, file, rows)


def _fault_types(values: np.ndarray, file: str, rows: np.ndarray, log: ProblemLog) -> np.ndarray:
    values = np.where(values == "", DEFAULT_FAULT_TYPE, values)
    bad = (values == "none") | np.array([len(v) > 64 for v in values], dtype=bool)
    for i in np.flatnonzero(bad)[: log.limit]:
        log.add(
            Problem(
                "bad_value",
                f"{where('fault_type', file, int(rows[i]))}: {quoted(values[i])}; a fault type "
                "is 1-64 characters and not 'none' (that means healthy); leave it empty for "
                f"{DEFAULT_FAULT_TYPE!r}",
                file=file,
                row=int(rows[i]),
                column="fault_type",
            )
        )
    return values


def _frame(columns: dict[str, np.ndarray], file: str, rows: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame["source_file"] = file
    frame["source_row"] = rows
    return frame


# -- across files -----------------------------------------------------------------------------


def _origin(frame: pd.DataFrame, index: int) -> str:
    return f"{frame['source_file'].iat[index]} row {frame['source_row'].iat[index]}"


def _check_duplicates(frame: pd.DataFrame, log: ProblemLog) -> pd.DataFrame:
    """A reading sent twice (same module, moment and values: a BMS or gateway retry) is
    kept once, and counted; two different readings of one module at one moment are a
    problem."""
    keys = ["module_id", "timestamp_s"]
    exact = frame.duplicated([*keys, *SIGNAL_NAMES], keep="first").to_numpy()
    if exact.any():
        dropped = int(exact.sum())
        frame = frame[~exact].reset_index(drop=True)
        frame.attrs["exact_duplicates_dropped"] = dropped
        logger.info("%d reading(s) sent twice, kept once", dropped)
    known = (frame["timestamp_s"].notna() & frame["module_id"].notna()).to_numpy()
    repeated = np.flatnonzero(frame.duplicated(keys, keep="first").to_numpy() & known)
    if repeated.size == 0:
        return frame
    module_ids = frame["module_id"].to_numpy()
    timestamps = frame["timestamp_s"].to_numpy()

    def problems() -> Iterable[Problem]:
        for i in repeated:
            same = (module_ids == module_ids[i]) & (timestamps == timestamps[i])
            first = int(np.argmax(same))
            file, row = str(frame["source_file"].iat[i]), int(frame["source_row"].iat[i])
            yield Problem(
                "duplicate_reading",
                f"{where('timestamp', file, row)}: {module_ids[i]} at {_iso(timestamps[i])} is "
                f"already in {_origin(frame, first)} with other values; keep one reading per "
                "module and moment (do two files overlap in time?)",
                file=file,
                row=row,
                column="timestamp",
            )

    log.extend("duplicate_reading", repeated.size, problems())
    return frame


def _check_modules(frame: pd.DataFrame, log: ProblemLog) -> None:
    """A module belongs to one rack and has one chemistry."""
    for column in ("rack_id", "chemistry"):
        if column not in frame.columns:
            continue
        counts = frame.groupby("module_id", sort=True)[column].nunique()  # bad ones are NaN
        for module_id in counts.index[counts > 1]:
            rows = frame[frame["module_id"] == module_id]
            firsts = rows.groupby(column, sort=True).head(1).sort_values(column)
            seen = ", ".join(
                f"{value} ({file} row {row})"
                for value, file, row in zip(
                    firsts[column], firsts["source_file"], firsts["source_row"], strict=True
                )
            )
            log.add(
                Problem(
                    "inconsistent_module",
                    f"{where(column, str(firsts['source_file'].iat[0]))}: module {module_id} "
                    f"has more than one {column}: {seen}; give each module one {column}",
                    file=str(firsts["source_file"].iat[0]),
                    column=column,
                )
            )


def _with_event_ids(frame: pd.DataFrame, log: ProblemLog) -> pd.DataFrame:
    """Make ids for events without one (E001, ... in onset order); refuse repeated events."""
    frame = frame.copy()
    if "fault_type" not in frame.columns:
        frame["fault_type"] = DEFAULT_FAULT_TYPE
    ids = (
        frame["event_id"].to_numpy(dtype=object)
        if "event_id" in frame.columns
        else np.full(len(frame), "", dtype=object)
    )
    used = set(ids) - {""}
    modules = frame["module_id"].fillna("").to_numpy(dtype=object)
    order = np.lexsort((modules, frame["onset_s"].to_numpy()))
    width = max(3, len(str(len(frame))))
    number = 0
    for i in order:
        if ids[i] == "":
            number += 1
            while f"E{number:0{width}d}" in used:
                number += 1
            ids[i] = f"E{number:0{width}d}"
    frame["event_id"] = ids
    for kind, keys, what in (
        ("duplicate_event", ["event_id"], "event_id"),
        ("duplicate_event", ["module_id", "onset_s"], "module and onset"),
    ):
        repeated = frame.duplicated(keys, keep="first") & frame[keys].notna().all(axis=1)
        for i in np.flatnonzero(repeated.to_numpy()):
            first = int(np.argmax((frame[keys] == frame[keys].iloc[i]).all(axis=1).to_numpy()))
            column = "event_id" if what == "event_id" else "onset"
            log.add(
                Problem(
                    kind,
                    f"{where(column, frame['source_file'].iat[i], int(frame['source_row'].iat[i]))}"
                    f": the same {what} as {_origin(frame, first)}; list each event once",
                    file=str(frame["source_file"].iat[i]),
                    row=int(frame["source_row"].iat[i]),
                    column=column,
                )
            )
    return frame


def check_events_against(events: pd.DataFrame, telemetry: pd.DataFrame, log: ProblemLog) -> None:
    """Each event names a module of the telemetry and an onset within its readings."""
    spans = telemetry.groupby("module_id", sort=True)["timestamp_s"].agg(["min", "max"])
    known = spans.index.to_list()
    for i in range(len(events)):
        module_id = events["module_id"].iat[i]
        onset = float(events["onset_s"].iat[i])
        file, row = str(events["source_file"].iat[i]), int(events["source_row"].iat[i])
        if module_id not in spans.index:
            close = difflib.get_close_matches(module_id, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            log.add(
                Problem(
                    "unknown_module",
                    f"{where('module_id', file, row)}: event {events['event_id'].iat[i]} names "
                    f"module {module_id}, which has no readings in the telemetry "
                    f"({len(known):,} modules, e.g. {', '.join(known[:3])}); {hint}correct "
                    "the id or drop the event",
                    file=file,
                    row=row,
                    column="module_id",
                )
            )
            continue
        first, last = spans.loc[module_id, "min"], spans.loc[module_id, "max"]
        if first <= onset <= last + ONSET_AFTER_LAST_READING_MAX_S:
            continue
        side = "before the module's first" if onset < first else "long after the module's last"
        log.add(
            Problem(
                "onset_outside_readings",
                f"{where('onset', file, row)}: {_iso(onset)} is {side} reading "
                f"({module_id} reports from {_iso(first)} to {_iso(last)}; an onset may follow "
                f"the last reading by up to {ONSET_AFTER_LAST_READING_MAX_S / 60:g} min); check "
                "the onset and its time zone (no offset = UTC)",
                file=file,
                row=row,
                column="onset",
            )
        )


def _finish(frame: pd.DataFrame, order: tuple[str, ...], sources: list[SourceFile]) -> pd.DataFrame:
    """Sort, give text columns the str dtype, and remember the files read."""
    keys = [
        frame[name]
        if pd.api.types.is_numeric_dtype(frame[name])
        else pd.factorize(frame[name], sort=True)[0]
        for name in order
    ]
    frame = frame.iloc[np.lexsort([np.asarray(k) for k in reversed(keys)])].reset_index(drop=True)
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].astype("str")
    frame["source_file"] = frame["source_file"].astype("category")
    frame.attrs["source_files"] = [asdict(source) for source in sources]
    return frame


def _iso(seconds: float) -> str:
    moment = np.datetime64(round(seconds * 1e6), "us")
    return np.datetime_as_string(moment, unit="ms") + "Z"
