"""The exporter's files read back, validated and labelled, equal the simulator's own frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.export import main
from src.data.labels import label_readings
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import COLUMNS, simulate
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
    assert "simulated 20/20 modules" in printed.err

    telemetry = read_telemetry(tmp_path / "telemetry")  # raises if there is any problem
    events = read_events(tmp_path / f"events.{file_format}", telemetry=telemetry)
    labelled = label_readings(telemetry, events)[list(COLUMNS)]

    # Signals, ids and labels: identical (float64 to the bit, also from the CSV).
    exact = [name for name in COLUMNS if name not in ("timestamp_s", "onset_s")]
    pd.testing.assert_frame_equal(labelled[exact], simulated[exact])
    for name in SIGNAL_NAMES:
        assert np.array_equal(
            labelled[name].to_numpy(), simulated[name].to_numpy(), equal_nan=True
        ), name
    # Times: within the microsecond the files are written at.
    for name in ("timestamp_s", "onset_s"):
        got, want = labelled[name].to_numpy(), simulated[name].to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.nanmax(np.abs(got - want)) <= TIMESTAMP_TOLERANCE_S
    assert labelled["hazardous"].sum() > 0
