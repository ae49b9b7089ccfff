"""The exporter's files read back, validated and labelled, equal the simulator's own frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from src.data.export import TRUTH_COLUMNS, main
from src.data.labels import hazard_labels, label_readings
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import simulate
from src.data.telemetry_files import read_events, read_telemetry
from src.training.config import small_config

TIMESTAMP_TOLERANCE_S = 1e-6
"""Files hold times at the API's microsecond resolution; the simulator's are finer."""


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(small_config().simulation)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_round_trip(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    simulated: pd.DataFrame,
    file_format: str,
) -> None:
    assert main(["--out", str(tmp_path), "--small", "--format", file_format]) == 0
    printed = capsys.readouterr()
    racks = sorted(simulated["rack_id"].unique())
    assert printed.out.splitlines() == [
        *(str(tmp_path / "telemetry" / f"rack-{rack}.{file_format}") for rack in racks),
        str(tmp_path / f"events.{file_format}"),
    ]
    modules = simulated["module_id"].nunique()
    assert f"simulated {modules}/{modules} modules" in printed.err

    # The files hold what an operator's would, and none of the simulator's truth.
    for path in [*(tmp_path / "telemetry").iterdir(), tmp_path / f"events.{file_format}"]:
        assert set(_columns(path)).isdisjoint(TRUTH_COLUMNS), path
    telemetry = read_telemetry(tmp_path / "telemetry")  # raises if there is any problem
    events = read_events(tmp_path / f"events.{file_format}", telemetry=telemetry)
    assert list(telemetry.columns) == [
        "module_id",
        "rack_id",
        "chemistry",
        "timestamp_s",
        *SIGNAL_NAMES,
        "source_file",
        "source_row",
    ]
    assert list(events.columns[:4]) == ["module_id", "onset_s", "fault_type", "event_id"]

    # A reading the simulated BMS sent twice is in the files twice, and read once.
    sent_twice = simulated.duplicated(["module_id", "timestamp_s", *SIGNAL_NAMES]).to_numpy()
    assert sent_twice.sum() > 0
    assert telemetry.attrs["exact_duplicates_dropped"] == sent_twice.sum()
    expected = simulated[~sent_twice].reset_index(drop=True)
    labelled = label_readings(telemetry, events)

    # Signals, ids, chemistry and the events' labels: identical (float64 to the bit).
    exact = ["module_id", "rack_id", "chemistry", *SIGNAL_NAMES, "fault_type", "event_id"]
    pd.testing.assert_frame_equal(labelled[exact], expected[exact], check_dtype=False)
    for name in SIGNAL_NAMES:
        assert np.array_equal(
            labelled[name].to_numpy(), expected[name].to_numpy(), equal_nan=True
        ), name
    # Times: within the microsecond the files are written at.
    for name in ("timestamp_s", "onset_s"):
        got, want = labelled[name].to_numpy(), expected[name].to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.nanmax(np.abs(got - want)) <= TIMESTAMP_TOLERANCE_S

    # Files have only the BMS clock, so labels follow it: the simulator's own labels
    # (true time) differ exactly where that clock had jumped by the reading.
    reported = expected["timestamp_s"].to_numpy()
    by_clock = hazard_labels(reported, expected["onset_s"].to_numpy())
    assert np.array_equal(labelled["hazardous"].to_numpy(), by_clock)
    differs = labelled["hazardous"].to_numpy() != expected["hazardous"].to_numpy()
    clock_off = np.abs(reported - expected["true_time_s"].to_numpy()) > 1.0
    assert clock_off.any()
    assert not (differs & ~clock_off).any()
    assert labelled["hazardous"].sum() > 0


def _columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return pq.read_schema(path).names
    return path.read_text().splitlines()[0].split(",")
