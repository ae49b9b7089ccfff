"""label_readings: the simulator's own labels, healthy modules, several events per module."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.export import events_of
from src.data.labels import LABEL_COLUMNS, label_readings, label_times
from src.data.signals import HAZARD_HORIZON_S
from src.data.simulator import SimulationConfig, simulate

CONFIG = SimulationConfig(
    n_racks=2, modules_per_rack=5, duration_s=2 * 3600.0, n_fault_events=4, seed=3
)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(CONFIG)


def _events(rows: list[tuple[str, float, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["module_id", "onset_s", "fault_type", "event_id"])


def test_reproduces_the_simulators_labels(simulated: pd.DataFrame) -> None:
    unlabelled = simulated.drop(columns=list(LABEL_COLUMNS))
    labelled = label_readings(unlabelled, events_of(simulated))
    assert tuple(labelled.columns[-len(LABEL_COLUMNS) :]) == LABEL_COLUMNS  # added at the end
    pd.testing.assert_frame_equal(labelled[list(simulated.columns)], simulated)
    assert simulated["hazardous"].sum() > 0


def test_labels_follow_the_true_time_where_known_else_the_reported_one() -> None:
    """A BMS clock 700 s slow: by its timestamp the reading is 1,000 s before onset, in
    truth 300 s. The simulator knows the truth; an operator's file has the timestamp."""
    onset = 10_000.0
    files = pd.DataFrame({"module_id": ["A"], "timestamp_s": [onset - 1000.0]})
    simulated = files.assign(true_time_s=onset - 300.0)
    events = _events([("A", onset, "overcharge", "E1")])
    assert label_readings(simulated, events)["hazardous"].tolist() == [1]
    assert label_readings(files, events)["hazardous"].tolist() == [0]
    assert label_times(simulated).tolist() == [onset - 300.0]
    assert label_times(files).tolist() == [onset - 1000.0]


def test_the_horizon_is_a_parameter() -> None:
    onset = 10_000.0
    telemetry = pd.DataFrame({"module_id": "A", "timestamp_s": [onset - 900.0, onset - 300.0]})
    events = _events([("A", onset, "overcharge", "E1")])
    assert label_readings(telemetry, events)["hazardous"].tolist() == [0, 1]
    assert label_readings(telemetry, events, horizon_s=900.0)["hazardous"].tolist() == [1, 1]
    assert label_readings(telemetry, events, horizon_s=120.0)["hazardous"].tolist() == [0, 0]


def test_keeps_row_order_and_index_and_replaces_old_labels(simulated: pd.DataFrame) -> None:
    shuffled = simulated.sample(frac=1.0, random_state=0)
    shuffled = shuffled.assign(hazardous=np.int8(1), fault_type="stale")
    labelled = label_readings(shuffled, events_of(simulated))
    pd.testing.assert_frame_equal(labelled, simulated.loc[shuffled.index])


def test_modules_without_an_event_are_healthy() -> None:
    telemetry = pd.DataFrame({"module_id": ["A", "A", "B"], "timestamp_s": [0.0, 10.0, 0.0]})
    labelled = label_readings(telemetry, _events([("A", 10.0, "overcharge", "E1")]))
    b = labelled[labelled["module_id"] == "B"].iloc[0]
    assert (b["fault_type"], b["event_id"], b["hazardous"]) == ("none", "", 0)
    assert np.isnan(b["onset_s"])
    assert labelled["hazardous"].dtype == np.int8
    assert labelled["hazardous"].tolist() == [1, 1, 0]


def test_no_events_at_all() -> None:
    telemetry = pd.DataFrame({"module_id": ["A"], "timestamp_s": [0.0]})
    labelled = label_readings(telemetry, _events([]))
    assert labelled[["fault_type", "event_id", "hazardous"]].iloc[0].tolist() == ["none", "", 0]


def test_horizon_edges() -> None:
    onset = 10_000.0
    times = [onset - HAZARD_HORIZON_S - 0.001, onset - HAZARD_HORIZON_S, onset, onset + 5.0]
    telemetry = pd.DataFrame({"module_id": "A", "timestamp_s": times})
    labelled = label_readings(telemetry, _events([("A", onset, "overcharge", "E1")]))
    assert labelled["hazardous"].tolist() == [0, 1, 1, 1]


def test_several_events_on_one_module() -> None:
    """Each reading belongs to the next onset at or after it; after the last, to the last."""
    times = np.arange(0.0, 4001.0, 100.0)
    telemetry = pd.DataFrame({"module_id": "A", "timestamp_s": times})
    events = _events([("A", 2500.0, "cooling_failure", "E2"), ("A", 1000.0, "overcharge", "E1")])
    labelled = label_readings(telemetry, events)
    by_time = labelled.set_index("timestamp_s")
    assert by_time.loc[0.0, "event_id"] == "E1"
    assert by_time.loc[300.0, "hazardous"] == 0  # 700 s before the first onset
    assert by_time.loc[400.0, "hazardous"] == 1
    assert by_time.loc[1000.0, ["event_id", "hazardous"]].tolist() == ["E1", 1]  # at onset
    # Past the first onset, the readings belong to the second event: not hazardous until
    # 600 s before it, since the module reports normally again (repaired or replaced).
    assert by_time.loc[1100.0, ["event_id", "fault_type", "hazardous"]].tolist() == [
        "E2",
        "cooling_failure",
        0,
    ]
    assert by_time.loc[1800.0, "hazardous"] == 0
    assert by_time.loc[1900.0, "hazardous"] == 1
    assert by_time.loc[4000.0, ["event_id", "onset_s", "hazardous"]].tolist() == ["E2", 2500.0, 1]
    assert labelled["hazardous"].sum() == sum(400 <= t <= 1000 or t >= 1900 for t in times)


def test_events_of_modules_without_readings_label_nothing() -> None:
    telemetry = pd.DataFrame({"module_id": ["A"], "timestamp_s": [0.0]})
    labelled = label_readings(telemetry, _events([("Z", 0.0, "overcharge", "E1")]))
    assert labelled["hazardous"].tolist() == [0]


def test_refuses_events_without_the_needed_columns() -> None:
    telemetry = pd.DataFrame({"module_id": ["A"], "timestamp_s": [0.0]})
    with pytest.raises(ValueError, match="onset_s"):
        label_readings(telemetry, pd.DataFrame({"module_id": ["A"]}))
