"""Reading CSV and Parquet files into Arrow columns, and turning columns into checked arrays.

Shared by telemetry and event files (`src/data/telemetry_files.py`). Each converter takes
one file's column and returns numpy values plus the rows it could not use, reported
through a `ProblemLog` with the file, the 1-based data row and the column.

Timestamps are converted exactly as the API converts a reading's `timestamp`: with
pydantic's own datetime parsing (the same library and version as serving), naive times
taken as UTC, then to float epoch seconds. Numbers (also numbers written in a CSV) are
epoch seconds as a JSON number would be; Parquet timestamp columns are read at
microsecond resolution, as the API reads ISO 8601 (it drops digits past the microsecond).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from pydantic import ConfigDict, TypeAdapter, ValidationError

from src.data.telemetry_checks import Problem, ProblemLog, also_in, quoted, where

logger = logging.getLogger(__name__)

FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File name endings read, and their format."""

NULL_TEXT: tuple[str, ...] = (
    *("", "NA", "na", "N/A", "n/a", "#N/A", "NaN", "nan", "NAN", "-nan", "-NaN"),
    *("null", "NULL", "Null"),
)
"""Cells that mean 'no value' (after surrounding spaces are stripped). Not "none": in an
incident log that would be a fault type (refused: it means healthy)."""

ID_PATTERN = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
"""A module (or rack) id: the API's ModuleId, 1-64 characters of A-Z a-z 0-9 . _ : / -."""

_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_TIMESTAMP_HELP = (
    "write ISO 8601, e.g. 2026-01-01T00:00:00Z or 2026-01-01 00:00:00.5+01:00 "
    "(UTC when there is no offset), or epoch seconds"
)
_DATETIMES = TypeAdapter(list[datetime])
# Serialising to "seconds" gives exactly datetime.timestamp() (naive = UTC), as the API
# computes it, in one Rust call instead of a Python call per value (1.9 s -> 0.3 s per 1M).
_EPOCH_SECONDS = TypeAdapter(list[datetime], config=ConfigDict(ser_json_temporal="seconds"))


@dataclass(frozen=True)
class SourceFile:
    """One file that was read: for messages and the data report."""

    path: str
    """As the caller named it (a folder's files as folder/name)."""
    format: str
    rows: int
    bytes: int
    sha256: str


def list_files(path: str | Path, log: ProblemLog) -> list[tuple[Path, str]]:
    """The files to read: path itself, or a folder's CSV and Parquet files sorted by name.

    Returns (path, shown name) pairs. Hidden files are skipped; other files in a folder are
    skipped with a warning; subfolders are not read.
    """
    path = Path(path)
    if path.is_dir():
        found = []
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.name.startswith(".") or child.is_dir():
                continue
            if child.suffix.lower() in FORMATS:
                found.append((child, str(child)))
            else:
                logger.warning("skipping %s: not a .csv or .parquet file", child)
        if not found:
            log.add(
                Problem(
                    "unreadable_file",
                    f"{path}: the folder has no .csv or .parquet files; point at the folder "
                    "that holds them (subfolders are not read)",
                    file=str(path),
                )
            )
        return found
    if not path.exists():
        log.add(Problem("unreadable_file", f"{path}: no such file or folder", file=str(path)))
        return []
    if path.suffix.lower() not in FORMATS:
        log.add(
            Problem(
                "unreadable_file",
                f"{path}: not a .csv or .parquet file; save it as one of them",
                file=str(path),
            )
        )
        return []
    return [(path, str(path))]


def read_table(
    path: Path, shown: str, float_columns: tuple[str, ...], log: ProblemLog
) -> tuple[pa.Table, SourceFile] | None:
    """One file as an Arrow table (None, with a problem logged, if it cannot be read).

    A CSV is read with float_columns as float64 and everything else as text; if a cell
    does not parse, it is read again all as text so each bad cell can be named.
    """
    raw = path.read_bytes()
    kind = FORMATS[path.suffix.lower()]
    try:
        table = _read_csv(raw, float_columns) if kind == "csv" else _read_parquet(raw)
    except _BadShape as error:
        log.add(Problem("unreadable_file", f"{shown}: {error}", file=shown, row=error.row))
        return None
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        log.add(
            Problem(
                "unreadable_file",
                f"{shown}: cannot read it as {kind.upper()} ({_first_line(error)}); "
                f"check that it is a {kind.upper()} file"
                + (" with a header line and one value per column" if kind == "csv" else ""),
                file=shown,
            )
        )
        return None
    source = SourceFile(shown, kind, table.num_rows, len(raw), hashlib.sha256(raw).hexdigest())
    return table, source


class _BadShape(ValueError):
    """A CSV that is not one table: the message says what to do."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


def _ragged_row(raw: bytes, width: int) -> _BadShape | None:
    """The first data row whose number of values differs from the header's (error path only)."""
    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace")))
    next(reader, None)
    for row, values in enumerate(reader, start=1):
        if values and len(values) != width:
            return _BadShape(
                f"row {row} has {len(values)} values, the header {width} columns; give every "
                "row one value per column (empty where missing)",
                row,
            )
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _read_csv(raw: bytes, float_columns: tuple[str, ...]) -> pa.Table:
    text_head = raw[:65536].decode("utf-8-sig", errors="replace").splitlines()
    header = next(csv.reader(text_head[:1]), [])
    header = [name.strip() for name in header]
    if not header:
        raise _BadShape("the file is empty; a CSV needs a header line naming its columns")
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        separator = "semicolons" if ";" in header[0] else "tabs"
        raise _BadShape(f"its columns are separated by {separator}; save it comma-separated")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise _BadShape(
            f"the header names {', '.join(duplicated)} more than once; keep one column each"
        )
    read = pcsv.ReadOptions(column_names=header, skip_rows=1)
    floats = set(float_columns)

    def convert(as_float: bool) -> pcsv.ConvertOptions:
        types = {n: pa.float64() if as_float and n in floats else pa.string() for n in header}
        return pcsv.ConvertOptions(
            column_types=types, null_values=list(NULL_TEXT), strings_can_be_null=True
        )

    try:
        return pcsv.read_csv(pa.BufferReader(raw), read_options=read, convert_options=convert(True))
    except pa.ArrowInvalid as error:
        if "conversion error" not in str(error):
            raise _ragged_row(raw, len(header)) or error from None
    # A cell that is not a plain number: read all as text so every such cell can be named.
    return pcsv.read_csv(pa.BufferReader(raw), read_options=read, convert_options=convert(False))


def _read_parquet(raw: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(raw))


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text with surrounding spaces stripped and the NULL_TEXT cells as nulls."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    column = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.is_in(column, pa.array(NULL_TEXT)), None, column)


def _is_text(column: pa.ChunkedArray) -> bool:
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _rows(mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return rows[np.flatnonzero(mask)]


def to_floats(
    column: pa.ChunkedArray, name: str, unit: str, file: str, rows: np.ndarray, log: ProblemLog
) -> np.ndarray:
    """float64 values, NaN where missing; cells that are not numbers are logged (and NaN)."""
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return column.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
    if not _is_text(column):
        log.add(
            Problem(
                "wrong_type",
                f"{where(name, file)}: the column holds {kind} values, not numbers; "
                f"write the values as numbers in {unit}",
                file=file,
                column=name,
            )
        )
        return np.full(len(column), np.nan)
    text = _as_text(column)
    try:  # the usual case: every cell a number (the regexes below cost 10x more)
        return text.cast(pa.float64()).to_numpy().astype(np.float64, copy=False)
    except pa.ArrowInvalid:
        pass
    numeric = pc.fill_null(pc.match_substring_regex(text, _NUMBER, ignore_case=True), True)
    special = pc.is_in(pc.utf8_lower(text), pa.array(["inf", "+inf", "-inf", "infinity"]))
    good = pc.or_(numeric, pc.fill_null(special, False))
    values = pc.if_else(good, text, None).cast(pa.float64()).to_numpy()
    bad_mask = ~good.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(bad_mask)
    if bad.size:
        cells = text.take(pa.array(bad[: log.limit])).to_pylist()
        log.extend(
            "wrong_type",
            bad.size,
            (
                Problem(
                    "wrong_type",
                    f"{where(name, file, int(rows[i]))}: {quoted(cell)} is not a number; write "
                    f"a number in {unit}, or leave the cell empty if the sensor reported nothing",
                    file=file,
                    row=int(rows[i]),
                    column=name,
                )
                for i, cell in zip(bad, cells, strict=False)
            ),
        )
    return values.astype(np.float64, copy=False)


def to_epoch_seconds(
    column: pa.ChunkedArray, name: str, file: str, rows: np.ndarray, log: ProblemLog
) -> np.ndarray:
    """Float epoch seconds as the API computes them; NaN (and a logged problem) where unusable."""
    kind = column.type
    seconds = np.full(len(column), np.nan)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        # Arrow keeps instants as UTC (naive ones as they are, taken as UTC): cut to µs.
        micros = column.cast(pa.timestamp("us"), safe=False).cast(pa.int64())
        present = ~micros.is_null().to_numpy(zero_copy_only=False)
        seconds[present] = micros.drop_null().to_numpy() / 1e6
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        present = ~column.is_null().to_numpy(zero_copy_only=False)
        values = column.cast(pa.float64()).to_numpy()
        at = np.flatnonzero(present)
        _parse_with_pydantic(values[present].tolist(), at, seconds, (name, file, rows), log)
    elif _is_text(column):
        text = _as_text(column)
        present = ~text.is_null().to_numpy(zero_copy_only=False)
        numeric = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False).to_numpy(
            zero_copy_only=False
        )
        as_number = np.flatnonzero(numeric)
        as_text = np.flatnonzero(present & ~numeric)
        numbers = pc.if_else(pa.array(numeric), text, None).cast(pa.float64()).to_numpy()
        context = (name, file, rows)
        _parse_with_pydantic(numbers[as_number].tolist(), as_number, seconds, context, log)
        cells = text.take(pa.array(as_text)).to_pylist() if as_text.size else []
        _parse_with_pydantic(cells, as_text, seconds, context, log)
    else:
        log.add(
            Problem(
                "bad_timestamp",
                f"{where(name, file)}: the column holds {kind} values; {_TIMESTAMP_HELP}",
                file=file,
                column=name,
            )
        )
        return seconds
    empty = np.flatnonzero(~present)
    log.extend(
        "bad_timestamp",
        empty.size,
        (
            Problem(
                "bad_timestamp",
                f"{where(name, file, int(rows[i]))}: empty; every row needs its {name}",
                file=file,
                row=int(rows[i]),
                column=name,
            )
            for i in empty
        ),
    )
    return seconds


def _parse_with_pydantic(
    values: list[object],
    positions: np.ndarray,
    seconds: np.ndarray,
    context: tuple[str, str, np.ndarray],
    log: ProblemLog,
) -> None:
    """seconds[positions] = the API's epoch seconds of values; unparsable ones are logged."""
    if not values:
        return
    try:
        moments = _DATETIMES.validate_python(values)
        bad: dict[int, str] = {}
    except ValidationError as error:
        bad = {
            int(item["loc"][0]): item["msg"]
            for item in error.errors(include_url=False, include_input=False)
        }
        moments = _DATETIMES.validate_python([v for i, v in enumerate(values) if i not in bad])
    good = np.ones(len(values), dtype=bool)
    good[list(bad)] = False
    seconds[positions[good]] = np.asarray(
        _EPOCH_SECONDS.dump_python(moments, mode="json"), dtype=np.float64
    )
    name, file, rows = context
    log.extend(
        "bad_timestamp",
        len(bad),
        (
            Problem(
                "bad_timestamp",
                f"{where(name, file, int(rows[positions[i]]))}: {quoted(values[i])} is not a "
                f"timestamp ({reason.removeprefix('Input should be a valid datetime or date, ')})"
                f"; {_TIMESTAMP_HELP}",
                file=file,
                row=int(rows[positions[i]]),
                column=name,
            )
            for i, reason in bad.items()
        ),
    )


def text_values(column: pa.ChunkedArray) -> np.ndarray:
    """Free text as an object array of str ("" where empty)."""
    return pc.fill_null(_as_text(column), "").to_numpy(zero_copy_only=False).astype(object)


def check_ids(
    column: pa.ChunkedArray, name: str, file: str, rows: np.ndarray, log: ProblemLog
) -> np.ndarray:
    """Ids as an object array of str, None where bad; one problem per distinct bad id."""
    if pa.types.is_integer(column.type):
        column = column.cast(pa.string())  # 7 in Parquet is "7", as in a CSV
    if not _is_text(column):
        log.add(
            Problem(
                "bad_module_id",
                f"{where(name, file)}: the column holds {column.type} values; write ids as "
                "text, 1-64 characters of A-Z a-z 0-9 . _ : / -",
                file=file,
                column=name,
            )
        )
        return np.full(len(column), None, dtype=object)
    text = pc.fill_null(_as_text(column), "")
    distinct = pc.unique(text).to_pylist()
    bad = [value for value in distinct if not ID_PATTERN.fullmatch(value)]
    values = text.to_numpy(zero_copy_only=False).astype(object)
    if bad:
        is_bad = pc.is_in(text, pa.array(bad, pa.string())).to_numpy(zero_copy_only=False)
        for value in bad:
            hit = _rows(is_bad & (values == value), rows)
            what = "empty" if value == "" else f"{quoted(value)} is not a valid id"
            log.add(
                Problem(
                    "bad_module_id",
                    f"{where(name, file, int(hit[0]))}: {what}{also_in(hit)}; an id is 1-64 "
                    "characters of A-Z a-z 0-9 . _ : / - with no spaces",
                    file=file,
                    row=int(hit[0]),
                    column=name,
                )
            )
        values[is_bad] = None  # reported once here, not again by later checks
    return values
