"""Operators' files: real CSV and Parquet files in tmp_path, good and bad ones.

Each class of bad file must give exactly one message for its one problem, naming the
file, the row (where there is one) and the column, and saying what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.data.export import events_of, events_table, telemetry_table
from src.data.file_columns import ID_PATTERN
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate
from src.data.telemetry_checks import MAX_SHOWN_PER_KIND
from src.data.telemetry_files import TelemetryValidationError, read_events, read_telemetry
from src.data.telemetry_report import data_report, format_report

CONFIG = SimulationConfig(
    n_racks=1, modules_per_rack=4, duration_s=3600.0, n_fault_events=1, seed=3
)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(CONFIG)


@pytest.fixture
def rows(simulated: pd.DataFrame) -> pd.DataFrame:
    """The simulation as a telemetry file's columns (timestamp as ISO 8601 text)."""
    return telemetry_table(simulated, "csv").to_pandas()


def _sent_twice(frame: pd.DataFrame) -> np.ndarray:
    """Rows that repeat an earlier reading exactly (the simulated BMS sends some twice)."""
    return frame.duplicated(["module_id", "timestamp", *SIGNAL_NAMES]).to_numpy()


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    else:
        frame.to_csv(path, index=False)
    return path


def _problems(call: Callable[[], object]) -> TelemetryValidationError:
    with pytest.raises(TelemetryValidationError) as caught:
        call()
    return caught.value


def test_good_files_read_without_problems(tmp_path: Path, rows: pd.DataFrame) -> None:
    path = _write(rows, tmp_path / "site-a.csv")
    frame = read_telemetry(path)
    # A reading sent twice (same module, moment and values) is kept once, and counted.
    sent_twice = int(_sent_twice(rows).sum())
    assert sent_twice > 0
    assert len(frame) == len(rows) - sent_twice
    assert frame.attrs["exact_duplicates_dropped"] == sent_twice
    assert list(frame.columns) == [
        "module_id",
        "rack_id",
        "chemistry",
        "timestamp_s",
        *SIGNAL_NAMES,
        "source_file",
        "source_row",
    ]
    assert frame["timestamp_s"].is_monotonic_increasing is False  # sorted per module, not overall
    per_module = frame.groupby("module_id")["timestamp_s"]
    assert per_module.apply(lambda t: t.is_monotonic_increasing).all()
    assert frame.attrs["source_files"][0]["rows"] == len(rows)


# (change to a good file, kind, row named or None, column, words of what to do)
BAD_TELEMETRY = [
    pytest.param(
        lambda f: f.assign(cell_temp_max_c=f["cell_temp_max_c"] + 273.15),
        "wrong_unit",
        None,
        "cell_temp_max_c",
        "this looks like kelvin; convert to °C: subtract 273.15",
        id="kelvin",
    ),
    pytest.param(
        lambda f: f.assign(ambient_temp_c=f["ambient_temp_c"] * 1.8 + 32),
        "wrong_unit",
        None,
        "ambient_temp_c",
        "this looks like °F; convert to °C",
        id="fahrenheit",
    ),
    pytest.param(
        lambda f: f.assign(cell_voltage_min_v=f["cell_voltage_min_v"] * 1000),
        "wrong_unit",
        None,
        "cell_voltage_min_v",
        "this looks like millivolts; convert to V: divide by 1000",
        id="millivolts",
    ),
    pytest.param(
        lambda f: f.assign(h2_ppm=f["h2_ppm"] / 1e4),
        "wrong_unit",
        None,
        "h2_ppm",
        "this looks like % vol; convert to ppm: multiply by 10000",
        id="percent-vol-gas",
    ),
    pytest.param(
        lambda f: f.assign(pressure_kpa=f["pressure_kpa"] * 1000),
        "wrong_unit",
        None,
        "pressure_kpa",
        "this looks like pascals; convert to kPa",
        id="pascals",
    ),
    pytest.param(
        lambda f: f.assign(current_a=f["current_a"] * 1000),
        "wrong_unit",
        None,
        "current_a",
        "this looks like milliamperes",
        id="milliamperes",
    ),
    pytest.param(
        lambda f: f.drop(columns="co_ppm"),
        "missing_column",
        None,
        "co_ppm",
        "missing column; every reading needs co_ppm (leave cells empty",
        id="missing-column",
    ),
    pytest.param(
        lambda f: f.assign(temperature=1.0),
        "unknown_column",
        None,
        "'temperature'",
        "unknown column; rename or remove it",
        id="unknown-column",
    ),
    pytest.param(
        lambda f: f.rename(columns={"timestamp": "timestamp_s"}),
        "unknown_column",
        None,
        "'timestamp_s'",
        "did you mean timestamp? rename it (the file has no timestamp column)",
        id="misnamed-column",
    ),
    pytest.param(
        lambda f: f.assign(timestamp=f["timestamp"].where(f.index != 4, "01/02/2026 10:00")),
        "bad_timestamp",
        5,
        "timestamp",
        "'01/02/2026 10:00' is not a timestamp (invalid character in year); write ISO 8601",
        id="unparsable-timestamp",
    ),
    pytest.param(
        lambda f: pd.concat([f, f.iloc[[2]].assign(soc_pct=42.42)], ignore_index=True),
        "duplicate_reading",
        "last",
        "timestamp",
        "is already in {file} row 3 with other values; keep one reading per module and moment",
        id="conflicting-duplicate-reading",
    ),
    pytest.param(
        lambda f: f.astype({"h2_ppm": object}).assign(
            h2_ppm=lambda g: g["h2_ppm"].where(g.index != 2, "abc")
        ),
        "wrong_type",
        3,
        "h2_ppm",
        "'abc' is not a number; write a number in ppm, or leave the cell empty",
        id="not-a-number",
    ),
    pytest.param(
        lambda f: f.assign(co_ppm=f["co_ppm"].where(f.index != 9, -3.0)),
        "out_of_range",
        10,
        "co_ppm",
        "-3 is outside the accepted range 0 to 100000 ppm; correct it, or leave the cell empty",
        id="out-of-range",
    ),
    pytest.param(
        lambda f: f.assign(co_ppm=f["co_ppm"].where(~f.index.isin([3, 5, 7]), -9999.0)),
        "placeholder_value",
        None,  # one message for the column; it lists the rows
        "co_ppm",
        "3 values are exactly -9999 (rows 4, 6, 8), outside the accepted range 0 to 100000 ppm:"
        " this looks like a 'no reading' code; leave those cells empty",
        id="placeholder-code",
    ),
    pytest.param(
        lambda f: f.assign(module_id=f["module_id"].where(f.index != 0, "R01 M01")),
        "bad_module_id",
        1,
        "module_id",
        "'R01 M01' is not a valid id; an id is 1-64 characters of A-Z a-z 0-9 . _ : / -",
        id="bad-module-id",
    ),
    pytest.param(
        lambda f: f.assign(chemistry=np.where(f.index == 6, "LiPo", "NMC")),
        "bad_value",
        7,
        "chemistry",
        "'LiPo' is not a chemistry; write LFP or NMC, or leave the column out",
        id="bad-chemistry",
    ),
    pytest.param(
        lambda f: f.assign(
            rack_id=np.where((f["module_id"] == "R01-M02") & (f.index % 2 == 0), "R01", "R09")
        ),
        "inconsistent_module",
        None,
        "rack_id",
        "module R01-M02 has more than one rack_id: R01 (",
        id="module-in-two-racks",
    ),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(("change", "kind", "row", "column", "advice"), BAD_TELEMETRY)
def test_each_bad_file_gives_one_clear_message(
    tmp_path: Path,
    rows: pd.DataFrame,
    suffix: str,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    kind: str,
    row: int | str | None,
    column: str,
    advice: str,
) -> None:
    bad = change(rows.copy())
    if suffix == ".parquet" and kind == "wrong_type":
        bad["h2_ppm"] = bad["h2_ppm"].astype(str).replace("nan", "")  # a text column
    path = _write(bad, tmp_path / "telemetry" / f"site-a{suffix}")
    error = _problems(lambda: read_telemetry(tmp_path / "telemetry"))
    assert dict(error.counts) == {kind: 1}, str(error)
    (problem,) = error.problems
    assert problem.file == str(path)
    assert problem.column == column.strip("'")
    expected_row = len(bad) if row == "last" else row
    assert problem.row == expected_row or (problem.row is None and expected_row is None)
    located = f"{column} in {path}" + (f" row {expected_row}" if expected_row else "")
    assert problem.message.startswith(located), problem.message
    assert advice.format(file=path) in problem.message
    assert problem.message in str(error)


def test_unit_message_says_ranges_and_observed_values(tmp_path: Path, rows: pd.DataFrame) -> None:
    path = _write(rows.assign(cell_temp_max_c=rows["cell_temp_max_c"] + 273.15), tmp_path / "a.csv")
    (problem,) = _problems(lambda: read_telemetry(path)).problems
    observed = rows["cell_temp_max_c"].dropna() + 273.15
    low, high = np.quantile(observed, [0.01, 0.99])
    # The central 98 %, bounds included: coarse sensors repeat the bounds' values, so the
    # share said is what lies within them (here, more than 98 %).
    share = ((observed >= low) & (observed <= high)).mean()
    assert share >= 0.98
    assert f"{share * 100:.0f} % of values are {low:.0f}–{high:.0f}" in problem.message
    assert "the accepted range is -40 to 1000 and healthy 15 to 45 °C" in problem.message


def test_check_units_false_skips_the_heuristics(tmp_path: Path, rows: pd.DataFrame) -> None:
    path = _write(rows.assign(h2_ppm=rows["h2_ppm"] / 1e4), tmp_path / "a.csv")
    assert len(read_telemetry(path, check_units=False)) == len(rows) - _sent_twice(rows).sum()
    with pytest.raises(TelemetryValidationError, match="this looks like % vol"):
        read_telemetry(path)


def test_problems_are_collected_across_files_and_bounded(
    tmp_path: Path, rows: pd.DataFrame
) -> None:
    folder = tmp_path / "telemetry"
    rows = rows[~_sent_twice(rows)]  # each reading once: a distinct -n is no conflict
    _write(rows.assign(co_ppm=-np.arange(len(rows)) - 1.0), folder / "a.csv")
    _write(rows.drop(columns="voc_ppm"), folder / "b.parquet")
    error = _problems(lambda: read_telemetry(folder))
    assert error.counts["out_of_range"] == len(rows)
    assert error.counts["missing_column"] == 1
    assert error.counts["duplicate_reading"] == 0  # b.parquet could not be used at all
    shown = [p for p in error.problems if p.kind == "out_of_range"]
    assert len(shown) == MAX_SHOWN_PER_KIND
    assert f"and {len(rows) - MAX_SHOWN_PER_KIND:,} more out of range" in str(error)


def test_overlapping_files(tmp_path: Path, rows: pd.DataFrame) -> None:
    """Files that overlap with the same readings (an export run twice) are read, each
    reading once; an overlap with other values is a problem naming both places."""
    rows = rows[~_sent_twice(rows)].reset_index(drop=True)
    folder = tmp_path / "telemetry"
    _write(rows.iloc[:100], folder / "a.csv")
    _write(rows.iloc[90:], folder / "b.csv")
    same = read_telemetry(folder)
    assert len(same) == len(rows)
    assert same.attrs["exact_duplicates_dropped"] == 10

    changed = rows.iloc[90:].copy()
    changed.loc[99, "soc_pct"] = 42.42
    _write(changed, folder / "b.csv")
    (problem,) = _problems(lambda: read_telemetry(folder)).problems
    assert problem.message.startswith(f"timestamp in {folder / 'b.csv'} row 10:")
    assert f"already in {folder / 'a.csv'} row 100 with other values" in problem.message


# pyarrow reads a tz-aware pandas column through the deprecated Series.values.
@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
def test_folder_of_mixed_csv_and_parquet(tmp_path: Path, rows: pd.DataFrame) -> None:
    folder = tmp_path / "telemetry"
    _write(rows.iloc[:700], folder / "1-first.csv")
    parquet = rows.iloc[700:].assign(
        timestamp=pd.to_datetime(rows["timestamp"].iloc[700:], utc=True)
    )
    _write(parquet, folder / "2-second.parquet")
    (folder / "notes.txt").write_text("not telemetry")
    whole = read_telemetry(_write(rows, tmp_path / "whole.csv"))
    mixed = read_telemetry(folder)
    assert [f["path"] for f in mixed.attrs["source_files"]] == [
        str(folder / "1-first.csv"),
        str(folder / "2-second.parquet"),
    ]
    data = ["module_id", "rack_id", "timestamp_s", *SIGNAL_NAMES]
    pd.testing.assert_frame_equal(mixed[data], whole[data])
    # Each reading remembers where it came from (a reading sent twice: the first copy).
    last = mixed[mixed["source_file"] == str(folder / "2-second.parquet")]
    kept = np.flatnonzero(~_sent_twice(rows)[700:]) + 1
    assert len(kept) < len(rows) - 700
    assert sorted(last["source_row"]) == kept.tolist()


def test_timestamps_are_converted_exactly_as_the_api_converts_them(tmp_path: Path) -> None:
    forms = [
        "2026-01-01T00:00:00Z",
        "2026-01-01 00:00:10.5",
        "2026-01-01T02:00:20+02:00",
        "2026-01-01T00:00:30.1234567Z",
        "2026-01-01",
        "1767225640.25",
        "1767225650000",
        "1767225660.0000015",
    ]
    frame = pd.DataFrame({"module_id": [f"M{i}" for i in range(len(forms))], "timestamp": forms})
    for name in SIGNAL_NAMES:
        frame[name] = np.nan
    read = read_telemetry(_write(frame, tmp_path / "a.csv")).set_index("module_id")

    from src.api import schemas

    as_sent = [float(v) if v[0].isdigit() and "-" not in v else v for v in forms]
    body = {"columns": {"module_id": list(frame["module_id"]), "timestamp": as_sent}}
    body["columns"].update({name: [None] * len(forms) for name in SIGNAL_NAMES})
    api = schemas.parse_predict_request(json.loads(json.dumps(body)), 100)
    expected = dict(zip(api.module_ids, api.timestamps_s, strict=True))
    assert {m: read.loc[m, "timestamp_s"] for m in expected} == expected


@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")
def test_parquet_timestamp_columns(tmp_path: Path, rows: pd.DataFrame) -> None:
    moments = pd.to_datetime(rows["timestamp"], utc=True)
    expected = read_telemetry(_write(rows, tmp_path / "text.csv"))["timestamp_s"]
    for name, values in {
        "aware-ns": moments,
        "naive-us": moments.dt.tz_localize(None).astype("datetime64[us]"),
        "berlin": moments.dt.tz_convert("Europe/Berlin"),
    }.items():
        path = _write(rows.assign(timestamp=values), tmp_path / f"{name}.parquet")
        pd.testing.assert_series_equal(read_telemetry(path)["timestamp_s"], expected)


def test_module_id_pattern_is_the_apis() -> None:
    from src.api import schemas

    constraint = next(m for m in schemas.ModuleId.__metadata__ if hasattr(m, "pattern"))
    assert constraint.pattern == f"^{ID_PATTERN.pattern}+$".replace("{1,64}+", "+")
    assert (constraint.min_length, constraint.max_length) == (1, 64)


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / "empty").mkdir()
    header = ",".join(["module_id", "timestamp", *SIGNAL_NAMES])
    (tmp_path / "semicolons.csv").write_text(header.replace(",", ";") + "\n")
    good = "R01-M01,2026-01-01T00:00:00Z," + ",".join(["1"] * len(SIGNAL_NAMES))
    (tmp_path / "ragged.csv").write_text(f"{header}\n{good}\n{good},7\n")
    for path, words in (
        (tmp_path / "semicolons.csv", "separated by semicolons; save it comma-separated"),
        (tmp_path / "ragged.csv", "row 2 has 17 values, the header 16 columns; give every row"),
        (tmp_path / "x.xlsx", "not a .csv or .parquet file; save it as one of them"),
        (tmp_path / "broken.parquet", "cannot read it as PARQUET"),
        (tmp_path / "empty", "the folder has no .csv or .parquet files"),
        (tmp_path / "missing.csv", "no such file or folder"),
    ):
        (problem,) = _problems(lambda path=path: read_telemetry(path)).problems
        assert problem.kind == "unreadable_file"
        assert problem.message.startswith(str(path))
        assert words in problem.message


# -- events -------------------------------------------------------------------------------------


@pytest.fixture
def telemetry(tmp_path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    return read_telemetry(_write(rows, tmp_path / "telemetry.csv"))


@pytest.fixture
def event_rows(simulated: pd.DataFrame) -> pd.DataFrame:
    return events_table(events_of(simulated), "csv").to_pandas()


def test_good_events(tmp_path: Path, telemetry: pd.DataFrame, event_rows: pd.DataFrame) -> None:
    events = read_events(_write(event_rows, tmp_path / "events.csv"), telemetry=telemetry)
    assert events[["module_id", "fault_type", "event_id"]].values.tolist() == (
        event_rows[["module_id", "fault_type", "event_id"]].values.tolist()
    )


def test_event_ids_and_fault_types_are_made_when_absent(
    tmp_path: Path, telemetry: pd.DataFrame
) -> None:
    start = datetime.fromtimestamp(telemetry["timestamp_s"].min(), tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    path = _write(
        pd.DataFrame(
            {
                "module_id": ["R01-M03", "R01-M01"],
                "onset": [f"{start:%Y-%m-%d} 00:40:00", f"{start:%Y-%m-%d} 00:30:00"],
            }
        ),
        tmp_path / "events.csv",
    )
    events = read_events(path, telemetry=telemetry)
    assert events[["module_id", "event_id", "fault_type"]].values.tolist() == [
        ["R01-M01", "E001", "unknown"],
        ["R01-M03", "E002", "unknown"],
    ]
    assert events["onset_s"].tolist() == [start.timestamp() + 1800, start.timestamp() + 2400]


BAD_EVENTS = [
    pytest.param(
        lambda e: e.assign(module_id=e["module_id"].where(e.index != 0, "R01-M99")),
        "unknown_module",
        "module_id",
        "names module R01-M99, which has no readings in the telemetry (4 modules, e.g. "
        "R01-M01, R01-M02, R01-M03); did you mean R01-M0",
        id="unknown-module",
    ),
    pytest.param(
        lambda e: e.assign(onset=e["onset"].where(e.index != 0, "2025-06-01T00:00:00Z")),
        "onset_outside_readings",
        "onset",
        "2025-06-01T00:00:00.000Z is before the module's first reading",
        id="onset-before-readings",
    ),
    pytest.param(
        lambda e: e.assign(onset=e["onset"].where(e.index != 0, "yesterday")),
        "bad_timestamp",
        "onset",
        "'yesterday' is not a timestamp",
        id="unparsable-onset",
    ),
    pytest.param(
        lambda e: pd.concat([e, e.assign(event_id="E999")], ignore_index=True),
        "duplicate_event",
        "onset",
        "the same module and onset as",
        id="event-listed-twice",
    ),
    pytest.param(
        lambda e: e.assign(fault_type="none"),
        "bad_value",
        "fault_type",
        "not 'none' (that means healthy)",
        id="fault-type-none",
    ),
]


@pytest.mark.parametrize(("change", "kind", "column", "advice"), BAD_EVENTS)
def test_each_bad_event_file_gives_one_clear_message(
    tmp_path: Path,
    telemetry: pd.DataFrame,
    event_rows: pd.DataFrame,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    kind: str,
    column: str,
    advice: str,
) -> None:
    path = _write(change(event_rows.copy()), tmp_path / "events.csv")
    error = _problems(lambda: read_events(path, telemetry=telemetry))
    assert dict(error.counts) == {kind: 1}, str(error)
    (problem,) = error.problems
    assert problem.message.startswith(f"{column} in {path} row {problem.row}: ")
    assert problem.row is not None
    assert problem.column == column
    assert advice in problem.message


# -- the data report ----------------------------------------------------------------------------


def test_report_numbers_on_a_tiny_file(tmp_path: Path) -> None:
    """Two modules: A at 0, 10, 20, 200 s (one 180 s gap), B at 0 and 10 s."""
    base = 1_767_225_600.0
    frame = pd.DataFrame(
        {
            "module_id": ["A", "A", "A", "A", "B", "B"],
            "chemistry": ["NMC"] * 4 + ["lfp"] * 2,
            "timestamp": [base + t for t in (0.0, 10.0, 20.0, 200.0, 0.0, 10.0)],
        }
    )
    for name in SIGNAL_NAMES:
        frame[name] = 1.0 if name != "pressure_kpa" else 101.3
    frame["h2_ppm"] = [1.0, np.nan, 1.0, 1.0, 1.0, 1.0]
    frame["cell_temp_max_c"] = [25.0, 25.0, 50.0, 25.0, np.nan, 25.0]
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)  # B's last, sent twice
    path = _write(frame, tmp_path / "tiny.csv")
    events_path = _write(
        pd.DataFrame({"module_id": ["A"], "onset": [base + 300.0], "fault_type": ["overcharge"]}),
        tmp_path / "events.csv",
    )
    telemetry = read_telemetry(path)
    report = data_report(telemetry, read_events(events_path, telemetry=telemetry))

    assert report["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (report["readings"], report["modules"]) == (6, 2)
    assert (report["files"][0]["rows"], report["readings_sent_twice"]) == (7, 1)
    assert report["time_span"] == {
        "first": "2026-01-01T00:00:00Z",
        "last": "2026-01-01T00:03:20Z",
        "hours": round(200 / 3600, 3),
    }
    assert report["sampling"] == {
        "intervals": 4,
        "median_s": 10.0,
        "p95_s": 154.5,  # steps 10, 10, 180, 10: linear quantile at 0.95
        "gap_threshold_s": 120.0,
        "gaps": 1,
        "gap_hours": 0.05,
        "longest_gap_s": 180.0,
    }
    assert report["missing_share"]["h2_ppm"] == round(1 / 6, 6)
    assert report["missing_share"]["co_ppm"] == 0.0
    assert report["outside_healthy_share"]["cell_temp_max_c"] == 0.2  # 50 °C of 5 values
    assert report["outside_healthy_share"]["cell_voltage_min_v"] == 1.0  # 1 V: not healthy
    assert report["chemistry_modules"] == {"LFP": 1, "NMC": 1}
    events = report["events"]
    assert (events["count"], events["by_fault_type"]) == (1, {"overcharge": 1})
    assert events["hazardous_readings"] == 4  # every reading of A is within 600 s of onset

    text = format_report(report)
    assert "telemetry: 6 readings of 2 modules (1 more sent twice, kept once)" in text
    assert "sampling: median 10 s, p95 154.5 s, 1 gaps over 120 s (0.05 h in all" in text
    assert "events: 1 on 1 modules (overcharge 1); hazardous readings 4 (66.67 %)" in text
    json.dumps(report)  # plain JSON, for logging


def test_event_problems_are_collected_in_one_error(tmp_path: Path, telemetry: pd.DataFrame) -> None:
    path = _write(
        pd.DataFrame(
            {
                "module_id": ["R01 M01", "R01-M01", "R09-M01", "R01-M02"],
                "onset": ["2026-01-01T00:30:00Z", "soon", "2026-01-01T00:30:00Z", None],
            }
        ),
        tmp_path / "events.csv",
    )
    error = _problems(lambda: read_events(path, telemetry=telemetry))
    assert dict(error.counts) == {"bad_module_id": 1, "bad_timestamp": 2, "unknown_module": 1}
    assert sorted(p.row for p in error.problems) == [1, 2, 3, 4]


def test_the_examples_in_docs_own_data_md_read(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "own-data.md").read_text("utf-8")
    telemetry_csv, events_csv = [block.split("```")[0] for block in text.split("```csv\n")[1:]]
    (tmp_path / "telemetry.csv").write_text(telemetry_csv, encoding="utf-8")
    (tmp_path / "events.csv").write_text(events_csv, encoding="utf-8")
    telemetry = read_telemetry(tmp_path / "telemetry.csv")
    assert len(telemetry) == 2
    assert np.isnan(telemetry["internal_resistance_mohm"].iloc[1])
    assert read_events(tmp_path / "events.csv")["event_id"].tolist() == ["E001", "E002"]
