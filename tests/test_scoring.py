"""Batch scoring gives `/predict`'s scores: exported simulator files are scored by
`src.scoring` (one machine, and Spark in local mode) and compared, reading by reading, with
what the app answers when the same readings are posted one per request, in order, with
history on. The model is the trained_store run; nothing is mocked."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.api import create_app
from src.data.export import export
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate
from src.data.telemetry_files import read_events, read_telemetry
from src.levels import ALARM, NORMAL, WARNING, Thresholds
from src.scoring.batch import (
    KEY_COLUMNS,
    load_scoring_service,
    module_chunks,
    prediction_columns,
    score_telemetry,
)
from src.scoring.report import backtest_report
from src.services.prediction_service import Predictions
from tests.conftest import PROJECT_ROOT

# pyspark 4.3 warns about pandas 3 on every conversion; the tests check the conversions.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

TOLERANCE = 1e-6

FLEET = SimulationConfig(
    n_racks=2, modules_per_rack=3, duration_s=4500.0, n_fault_events=2, seed=11, lfp_fraction=0.5
)
"""Six modules over 75 minutes, two of them running away: ~2,900 readings, two files, one
LFP and one NMC rack (readings carry their chemistry)."""


@dataclass(frozen=True)
class Exported:
    folder: Path

    @property
    def telemetry(self) -> Path:
        return self.folder / "telemetry"

    @property
    def events(self) -> Path:
        return self.folder / "events.csv"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    folder = tmp_path_factory.mktemp("site")
    export(simulate(FLEET), folder, "csv")
    return Exported(folder)


@pytest.fixture(scope="module")
def telemetry(exported: Exported) -> pd.DataFrame:
    return read_telemetry(exported.telemetry)


@pytest.fixture
def batch_scores(settings, telemetry) -> pd.DataFrame:
    return score_telemetry(load_scoring_service(settings), telemetry, chunk_readings=1000)


def file_readings(telemetry: pd.DataFrame) -> list[dict]:
    """Each reading as a BMS would post it, straight from the CSV's text (its timestamp as
    written), in the order the readings were taken across the whole fleet."""
    rows: dict[tuple[str, int], dict] = {}
    for path in sorted({str(name) for name in telemetry["source_file"]}):
        with Path(path).open(newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                reading = {"module_id": row["module_id"], "timestamp": row["timestamp"]}
                if row.get("chemistry"):
                    reading["chemistry"] = row["chemistry"]
                for name in SIGNAL_NAMES:
                    reading[name] = float(row[name]) if row[name] else None
                rows[(path, number)] = reading
    in_time = telemetry.sort_values(["timestamp_s", "module_id"], kind="stable")
    keys = zip(in_time["source_file"].astype(str), in_time["source_row"], strict=True)
    return [rows[(file, int(row))] for file, row in keys]


def assert_same_value(ours, theirs, column: str, where: str) -> None:
    if isinstance(ours, float | np.floating) and not isinstance(ours, bool):
        assert abs(float(ours) - float(theirs)) <= TOLERANCE, f"{column} of {where}"
    elif isinstance(ours, str) and not isinstance(theirs, str):
        assert json.loads(ours) == theirs, f"{column} of {where}"  # a list, as JSON text
    else:
        assert ours == theirs, f"{column} of {where}"


def test_batch_scores_equal_posting_each_reading_in_order(settings, telemetry, batch_scores):
    readings = file_readings(telemetry)
    assert len(readings) == len(telemetry) > 2000
    with create_app(settings).test_client() as client:  # history on: the embedded store
        answers = []
        for reading in readings:
            response = client.post("/predict", json=reading)
            assert response.status_code == 200, response.get_json()
            answers.append(response.get_json()["predictions"][0])
    assert {answer["history_source"] for answer in answers} == {"store"}
    streamed = pd.DataFrame(answers)
    streamed["timestamp_s"] = telemetry.sort_values(["timestamp_s", "module_id"], kind="stable")[
        "timestamp_s"
    ].to_numpy()
    streamed = streamed.sort_values(list(KEY_COLUMNS), kind="stable", ignore_index=True)
    assert (streamed["module_id"] == batch_scores["module_id"]).all()
    assert (streamed["timestamp_s"] == batch_scores["timestamp_s"]).all()

    # Every per-reading column of the scores that /predict also answers, whatever fields
    # Predictions carries by now; the probability to 1e-6, the rest exactly.
    compared = [c for c in batch_scores.columns if c in streamed.columns and c != "module_id"]
    answered = {"hazard_probability", "level", "hazardous", "reasons", "missing", "history_s"}
    assert answered | {"history_readings", "model_version"} <= set(compared)
    difference = np.abs(streamed["hazard_probability"] - batch_scores["hazard_probability"])
    assert difference.max() <= TOLERANCE
    for column in compared:
        for index, (ours, theirs) in enumerate(
            zip(batch_scores[column].tolist(), streamed[column].tolist(), strict=True)
        ):
            assert_same_value(ours, theirs, column, f"reading {index}")
    # The comparison means something: the stream saw long histories, chemistries, every
    # level and reasons of more than one kind.
    assert streamed["history_s"].max() >= 290.0
    assert {reading.get("chemistry") for reading in readings} == {"LFP", "NMC"}
    assert set(batch_scores["level"]) >= {"normal", "warning", "alarm"}
    assert batch_scores["hazardous"].sum() > 10
    reasons = {why for text in batch_scores["reasons"] for why in json.loads(text)}
    assert "model:alarm" in reasons
    assert any(why.startswith("guard:") for why in reasons)


@pytest.fixture(scope="module")
def spark():
    """A small local session (2 cores, 4 shuffle partitions), shared by the Spark tests.

    Runs wherever the suite runs, CI included: a missing Java fails, saying what to do."""
    from src.scoring.spark import SparkUnavailableError, spark_session

    try:
        session = spark_session("local[2]", app_name="hvs-scoring-test")
    except SparkUnavailableError as error:
        pytest.fail(f"the Spark tests cannot run: {error}")
    yield session
    session.stop()


def test_spark_local_scores_equal_the_single_machine_path(spark, settings, telemetry, batch_scores):
    from src.scoring.spark import SparkScorer

    scorer = SparkScorer(spark, settings)
    try:
        spark_scores = scorer.collect(scorer.score(scorer.dataframe(telemetry)))
    finally:
        scorer.close()
    assert list(spark_scores.columns) == list(batch_scores.columns)
    assert len(spark_scores) == len(batch_scores)
    for column in batch_scores.columns:
        ours, theirs = batch_scores[column].to_numpy(), spark_scores[column].to_numpy()
        if batch_scores[column].dtype.kind == "f":
            assert np.max(np.abs(ours - theirs)) <= TOLERANCE, column
        else:
            assert (ours == theirs).all(), column
    assert str(spark_scores["hazardous"].dtype) == "bool"
    assert str(spark_scores["history_readings"].dtype) == "int64"


def test_executors_read_the_files_as_read_telemetry_does(spark, exported, telemetry):
    from src.scoring.spark_files import READ_COLUMNS, read_telemetry_spark

    readings = read_telemetry_spark(spark, exported.telemetry)
    frame = readings.toPandas().sort_values(["module_id", "timestamp_s"], ignore_index=True)
    readings.unpersist()
    expected = telemetry.reset_index(drop=True)
    assert len(frame) == len(expected)
    assert expected["chemistry"].notna().all()  # the exporter writes it
    for column in READ_COLUMNS:
        if column == "file_index":
            continue
        assert frame[column].astype(object).equals(expected[column].astype(object)), column


def test_executors_report_every_problem_of_every_file(spark, exported, tmp_path):
    from src.data.telemetry_files import TelemetryValidationError
    from src.scoring.spark_files import read_telemetry_spark

    first, second = sorted(exported.telemetry.glob("*.csv"))
    folder = tmp_path / "telemetry"
    folder.mkdir()
    lines = first.read_text().splitlines()
    (folder / "a.csv").write_text("\n".join(lines) + "\n")
    # b.csv repeats three of a.csv's readings, the third with another SOC: only a check
    # across files sees the conflict (the two copies are kept once, not reported)
    header = lines[0].split(",")
    changed = lines[3].split(",")
    changed[header.index("soc_pct")] = "42.42"
    (folder / "b.csv").write_text("\n".join([lines[0], *lines[1:3], ",".join(changed)]) + "\n")
    broken = second.read_text().splitlines()
    header = broken[0].split(",")
    cells = broken[5].split(",")
    cells[header.index("co_ppm")] = "n.a."
    broken[5] = ",".join(cells)
    (folder / "c.csv").write_text("\n".join(broken) + "\n")
    with pytest.raises(TelemetryValidationError) as raised:
        read_telemetry_spark(spark, folder)
    error = raised.value
    assert error.counts == {"duplicate_reading": 1, "wrong_type": 1}
    text = str(error)
    assert text.startswith(f"2 problem(s) in the telemetry files at {folder}")
    assert f"co_ppm in {folder / 'c.csv'} row 5: 'n.a.' is not a number" in text
    assert f"timestamp in {folder / 'b.csv'} row 3: " in text
    assert f"is already in {folder / 'a.csv'} row 3 with other values; keep one" in text


def test_executors_keep_a_reading_two_files_hold_alike_once(spark, exported, tmp_path):
    from src.scoring.spark_files import read_telemetry_spark

    first = sorted(exported.telemetry.glob("*.csv"))[0]
    lines = first.read_text().splitlines()
    folder = tmp_path / "telemetry"
    folder.mkdir()
    (folder / "a.csv").write_text("\n".join(lines) + "\n")
    (folder / "b.csv").write_text("\n".join([lines[0], *lines[1:11]]) + "\n")
    expected = read_telemetry(folder)
    readings = read_telemetry_spark(spark, folder)
    frame = readings.toPandas()
    readings.unpersist()
    assert len(frame) == len(expected) == len(read_telemetry(folder / "a.csv"))
    assert set(frame["source_file"]) == {str(folder / "a.csv")}


def test_the_cli_scores_every_reading_and_reports_on_the_events(
    trained_store, exported, telemetry, tmp_path
):
    out = tmp_path / "backtest" / "scores.parquet"
    done = run_cli(trained_store, exported.telemetry, out, "--events", str(exported.events))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    report_file = Path(f"{out}.report.json")
    assert lines[-3:-1] == [str(out), str(report_file)]
    assert lines[-1].startswith(f"scored {len(telemetry):,} readings of 6 modules")
    assert "events warned" in lines[-1]
    assert "false alarms" in lines[-1]
    assert "scoring" in done.stderr  # the progress bar

    scores = pd.read_parquet(out)
    assert len(scores) == len(telemetry)
    assert scores[list(KEY_COLUMNS)].equals(telemetry[list(KEY_COLUMNS)].reset_index(drop=True))
    assert set(scores["model_version"]) == {trained_store.run_id}

    report = json.loads(report_file.read_text())
    metrics = report["metrics"]
    for key in (
        "warning_events",
        "warning_events_warned_fraction",
        "warning_events_warned_5min_fraction",
        "warning_events_warned_10min_fraction",
        "warning_lead_time_min_median",
        "warning_false_alarms_per_1000h",
        "alarm_events_warned_5min_fraction",
        "alarm_false_alarms_per_1000h",
        "healthy_module_hours",
        "pr_auc",
    ):
        assert key in metrics, key
    assert metrics["warning_events"] == metrics["alarm_events"] == 2
    assert [event["event_id"] for event in report["events"]] == ["E001", "E002"]
    assert report["readings"] == len(telemetry)
    thresholds = trained_store.result.thresholds
    assert report["thresholds"] == {"warning": thresholds.warning, "alarm": thresholds.alarm}
    # The same numbers as the library's, from the same scores, and as training measures:
    # flagged where the answer reached a level (model or guard).
    events = read_events(exported.events, telemetry=telemetry)
    again = backtest_report(scores, events, thresholds)
    assert again["metrics"] == pytest.approx(metrics, nan_ok=True)
    assert report["flagged_readings"] == {
        "warning": int(scores["level"].isin(["warning", "alarm"]).sum()),
        "alarm": int(scores["hazardous"].sum()),
    }
    for event in report["events"]:
        # an event the small model never alarmed on has no alarm lead; one it alarmed on
        # was warned at least as early
        if event["alarm_lead_time_min"] is not None:
            assert event["warning_lead_time_min"] >= event["alarm_lead_time_min"] > 0, event
    assert any(event["warning_lead_time_min"] is not None for event in report["events"])


def test_the_cli_refuses_bad_telemetry_with_the_validation_message(
    trained_store, exported, tmp_path
):
    source = next(exported.telemetry.glob("*.csv"))
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("h2_ppm")] = "n.a."
    lines[3] = ",".join(cells)
    bad = tmp_path / "telemetry" / "site.csv"
    bad.parent.mkdir()
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.parquet"
    done = run_cli(trained_store, bad.parent, out)
    assert done.returncode == 2, done.stderr
    assert "1 problem(s) in the telemetry files" in done.stderr
    assert "h2_ppm in" in done.stderr
    assert "row 3: 'n.a.' is not a number" in done.stderr
    assert not out.exists()
    assert done.stdout == ""


def run_cli(trained_store, telemetry: Path, out: Path, *more: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "src.scoring", "--telemetry", str(telemetry)]
    command += ["--run-id", trained_store.run_id, "--tracking-uri", trained_store.tracking_uri]
    command += ["--out", str(out), *more]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False
    )


# -- the pieces -------------------------------------------------------------------------------


def test_chunks_hold_whole_modules_and_stay_within_the_bound():
    modules = ["a"] * 3 + ["b"] * 5 + ["c"] * 2 + ["d"] * 9 + ["e"]
    frame = pd.DataFrame({"module_id": modules})
    chunks = [list(chunk["module_id"]) for chunk in module_chunks(frame, 6)]
    assert chunks == [["a"] * 3, ["b"] * 5, ["c"] * 2, ["d"] * 9, ["e"]]
    assert [len(c) for c in module_chunks(frame, 10)] == [10, 10]
    assert sum(len(c) for c in module_chunks(frame, 1)) == len(frame)
    assert list(module_chunks(frame.iloc[:0], 5)) == []


@dataclass(frozen=True)
class FuturePredictions(Predictions):
    """Predictions with a field a teammate may add, as the output must take it."""

    confidence: np.ndarray | None = None


def test_every_per_reading_field_of_predictions_becomes_a_column():
    n = 3
    predictions = FuturePredictions(
        model_version="run",
        thresholds=Thresholds(warning=0.3, alarm=0.8),
        hazard_probability=np.array([0.1, 0.6, 0.9]),
        level=np.array([NORMAL, WARNING, ALARM], dtype=np.int8),
        reasons=[(), ("model:warning",), ("model:alarm", "guard:smoke")],
        missing=[(), ("gas",), ()],
        history_s=np.zeros(n),
        history_readings=np.zeros(n, dtype=np.int64),
        history_source="request",
        explanations=[None] * n,
        confidence=np.array([0.5, 0.7, 0.9]),
    )
    columns = prediction_columns(predictions, n)
    assert list(columns) == [
        "hazard_probability",
        "level",
        "hazardous",
        "reasons",
        "missing",
        "history_s",
        "history_readings",
        "confidence",
        "model_version",
    ]
    assert list(columns["level"]) == ["normal", "warning", "alarm"]
    assert list(columns["hazardous"]) == [False, False, True]
    assert [json.loads(text) for text in columns["reasons"]] == [
        [],
        ["model:warning"],
        ["model:alarm", "guard:smoke"],
    ]
    assert [json.loads(text) for text in columns["missing"]] == [[], ["gas"], []]
    assert list(columns["confidence"]) == [0.5, 0.7, 0.9]
    assert list(columns["model_version"]) == ["run"] * n
