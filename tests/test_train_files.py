"""Training on a site's own files: the simulator's data is exported to CSV, trained on by
`python -m src.training --telemetry ... --events ...` into a real MLflow store, and
compared with training on the same data in memory. Nothing is mocked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.export import TRUTH_COLUMNS, export
from src.data.labels import hazard_labels
from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate
from src.data.telemetry_files import read_telemetry
from src.scoring.batch import load_scoring_service, score_telemetry
from src.settings import Settings
from src.training.__main__ import main
from src.training.config import ModelConfig, small_config
from src.training.data import prepare
from src.training.files import (
    OWN_COLUMNS,
    NotEnoughDataError,
    own_sets,
    read_own_data,
    train_on_own_data,
)
from src.training.train import train_on

SITE = SimulationConfig(
    n_racks=2, modules_per_rack=10, duration_s=5400.0, n_fault_events=14, seed=5
)
"""20 modules for 90 minutes, 14 of them running away: 3 events in each of validation and
test, 8 in training."""

SMALL_SITE = SimulationConfig(
    n_racks=1, modules_per_rack=10, duration_s=5400.0, n_fault_events=7, seed=6
)
"""Too small alone (1 test event of the 3 needed), enough with simulated data added."""

CLI_CONFIG = replace(small_config(), holdout=False)
"""What `--small --no-holdout` trains with."""


def _export(frame: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    export(frame, folder, "csv")
    return folder / "telemetry", folder / "events.csv"


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(SITE)


@pytest.fixture(scope="module")
def site_files(simulated: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    return _export(simulated, tmp_path_factory.mktemp("site-a"))


def in_memory(simulated: pd.DataFrame, horizon_s: float) -> pd.DataFrame:
    """The simulator's frame as the site's files hold it, without the files: no truth
    columns (a hazardous label by the logged clock, as a site's must be), module and time
    order, each reading once."""
    frame = simulated.drop(columns=list(TRUTH_COLUMNS))
    frame["hazardous"] = hazard_labels(
        frame["timestamp_s"].to_numpy(), frame["onset_s"].to_numpy(), horizon_s
    )
    frame = frame.drop_duplicates(["module_id", "timestamp_s", *SIGNAL_NAMES])
    frame = frame.sort_values(["module_id", "timestamp_s"], kind="stable", ignore_index=True)
    return frame[list(OWN_COLUMNS)]


def test_exported_files_give_the_features_and_labels_of_memory(simulated, site_files):
    config = CLI_CONFIG
    own = read_own_data(*site_files, config.label_horizon_s)
    from_files = own_sets(own.frame, config.seed)
    from_memory = own_sets(in_memory(simulated, config.label_horizon_s), config.seed)
    largest = 0.0
    for name in ("train", "validation", "test"):
        files, memory = from_files[name], from_memory[name]
        assert files["module_id"].tolist() == memory["module_id"].tolist(), name
        # Timestamps go through the files at the API's microsecond resolution.
        assert np.abs(files["timestamp_s"] - memory["timestamp_s"]).max() <= 1e-6
        ours, theirs = prepare(files, config), prepare(memory, config)
        assert ours.features.shape == theirs.features.shape
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        np.testing.assert_array_equal(ours.guard_level, theirs.guard_level)
        assert (files["event_id"] == memory["event_id"]).all()
        np.testing.assert_allclose(ours.features, theirs.features, rtol=1e-6, atol=1e-6)
        both = np.isfinite(ours.features) & np.isfinite(theirs.features)
        largest = max(largest, float(np.abs(ours.features - theirs.features)[both].max()))
        assert ours.labels.sum() > 0, name
    print(f"largest feature difference, files vs memory: {largest:.3g}")


@pytest.fixture(scope="module")
def cli_run(site_files, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    mlruns = tmp_path_factory.mktemp("store") / "mlruns"
    telemetry, events = site_files
    argv = ["--telemetry", str(telemetry), "--events", str(events), "--small", "--no-holdout"]
    assert main([*argv, "--mlruns-dir", str(mlruns)]) == 0
    (run_dir,) = [p for p in mlruns.glob("*/*") if (p / "artifacts").is_dir()]
    return mlruns, run_dir.name


def _params(mlruns: Path, run_id: str) -> dict[str, str]:
    (run_dir,) = mlruns.glob(f"*/{run_id}")
    return {path.name: path.read_text() for path in (run_dir / "params").iterdir()}


def _metrics(mlruns: Path, run_id: str) -> dict[str, float]:
    (run_dir,) = mlruns.glob(f"*/{run_id}")
    return {
        path.name: float(path.read_text().split()[1]) for path in (run_dir / "metrics").iterdir()
    }


def test_training_from_files_equals_training_from_memory(simulated, cli_run):
    mlruns, run_id = cli_run
    memory = own_sets(in_memory(simulated, CLI_CONFIG.label_horizon_s), CLI_CONFIG.seed)
    result = train_on(memory, CLI_CONFIG, lambda stage, done, total: None)
    logged = _metrics(mlruns, run_id)
    expected = {k: v for k, v in result.metrics.items() if np.isfinite(v)}
    assert set(logged) == set(expected)
    # Lead times and exposure hours move by the timestamps' microsecond rounding alone.
    assert logged == pytest.approx(expected, rel=1e-8, abs=1e-12)
    unequal = {k for k in expected if logged[k] != expected[k]}
    worst = max((abs(logged[k] - expected[k]) / abs(expected[k]) for k in unequal), default=0.0)
    print(f"{len(expected)} metrics, {len(unequal)} not bit-equal, at most {worst:.2g} relative")
    assert logged["test_warning_events"] == 3


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_run_records_the_data_it_saw(site_files, cli_run):
    mlruns, run_id = cli_run
    telemetry, events = site_files
    params = _params(mlruns, run_id)
    files = sorted(telemetry.iterdir())
    assert params["data.source"] == "files"
    assert params["data.schema_version"] == "1"
    assert params["data.telemetry_path"] == str(telemetry)
    assert params["data.telemetry_files"] == str(len(files))
    # One digest over the files' own digests: equal wherever the same files are mounted.
    digests = "\n".join(sorted(_sha256(path) for path in files))
    assert params["data.telemetry_sha256"] == hashlib.sha256(digests.encode()).hexdigest()
    assert params["data.events_sha256"] == hashlib.sha256(_sha256(events).encode()).hexdigest()
    assert params["data.readings"] == str(len(read_telemetry(telemetry)))
    assert (params["data.test.events"], params["data.validation.events"]) == ("3", "3")
    assert not [key for key in params if key.startswith("simulation.")]  # none was drawn

    (artifacts,) = mlruns.glob(f"*/{run_id}/artifacts")
    report = json.loads((artifacts / "data_report.json").read_text())
    assert {(f["path"], f["sha256"]) for f in report["files"]} == {
        (str(path), _sha256(path)) for path in files
    }
    assert report["events"]["files"][0]["sha256"] == _sha256(events)
    assert report["events"]["count"] == 14
    assert set(report["missing_share"]) == set(SIGNAL_NAMES)
    text = (artifacts / "data_report.txt").read_text()
    assert "test: " in text
    assert str(events) in text


def test_the_run_trained_on_files_serves(site_files, cli_run):
    mlruns, run_id = cli_run
    settings = Settings(
        BEST_MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=mlruns.as_uri(), HVS_LOG_FORMAT="text"
    )
    telemetry = read_telemetry(site_files[0])
    scores = score_telemetry(load_scoring_service(settings), telemetry.iloc[:500])
    assert len(scores) == 500
    assert scores["hazard_probability"].between(0, 1).all()


@pytest.fixture(scope="module")
def small_site_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _export(simulate(SMALL_SITE), tmp_path_factory.mktemp("site-b"))


def test_too_little_data_is_refused_with_what_is_missing(small_site_files, tmp_path, capsys):
    telemetry, events = small_site_files
    mlruns = tmp_path / "mlruns"
    argv = ["--telemetry", str(telemetry), "--events", str(events), "--small"]
    assert main([*argv, "--mlruns-dir", str(mlruns)]) == 2
    message = capsys.readouterr().err
    assert "too little data to train and evaluate honestly" in message
    assert (
        "the test split holds 1 fault event(s) and needs at least 3; 20% of the modules with "
        "an event go to test, so at least 13 modules with an event are needed, and the files "
        "have 7 (6 more)" in message
    )
    assert "the validation split holds 1 fault event(s) and needs at least 2" in message
    assert "pass --mix-simulated" in message
    assert not list(mlruns.glob("*/*/meta.yaml"))  # nothing was trained or logged


def test_mixing_simulated_data_trains_a_small_site_and_tests_on_it_alone(small_site_files):
    config = replace(
        small_config(),
        holdout=False,
        model=ModelConfig(n_estimators=15, early_stopping_rounds=5),
        simulation=SimulationConfig(
            n_racks=1, modules_per_rack=8, duration_s=5400.0, n_fault_events=5, seed=8
        ),
    )
    own = read_own_data(*small_site_files, config.label_horizon_s)
    with pytest.raises(NotEnoughDataError):
        train_on_own_data(own, config)
    result, data = train_on_own_data(own, config, mix_simulated=True)
    splits = data["report"]["splits"]
    assert data["params"]["data.source"] == "files+simulator"
    assert splits["train"]["simulated_events"] == splits["validation"]["simulated_events"] == 5
    assert "simulated_readings" not in splits["test"]
    # The test split, the one the run's numbers come from, is the site's own.
    test_modules = set(result.test_frame["module_id"])
    assert test_modules <= set(own.frame["module_id"])
    assert result.metrics["test_warning_events"] == splits["test"]["events"] >= 3


BAD_ARGUMENTS = [
    pytest.param(["--events", "e.csv"], "--events needs --telemetry", id="events-alone"),
    pytest.param(["--telemetry", "t.csv"], "--telemetry needs --events", id="telemetry-alone"),
    pytest.param(["--mix-simulated"], "--mix-simulated adds simulated data", id="mix-alone"),
    pytest.param(
        ["--telemetry", "nowhere", "--events", "nowhere.csv"],
        "--telemetry nowhere: no such file or folder",
        id="no-such-path",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_ARGUMENTS)
def test_bad_arguments_say_what_to_pass(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--mlruns-dir", str(tmp_path / "mlruns")]) == 2
    assert expected in capsys.readouterr().err


def test_a_bad_file_is_refused_naming_file_and_column(site_files, tmp_path, capsys):
    telemetry, events = site_files
    frame = pd.read_csv(sorted(telemetry.iterdir())[0])
    bad = tmp_path / "kelvin.csv"
    frame.assign(cell_temp_max_c=frame["cell_temp_max_c"] + 273.15).to_csv(bad, index=False)
    argv = ["--telemetry", str(bad), "--events", str(events), "--small"]
    assert main([*argv, "--mlruns-dir", str(tmp_path / "mlruns")]) == 2
    message = capsys.readouterr().err
    assert f"cell_temp_max_c in {bad}" in message
    assert "kelvin" in message
    assert "subtract 273.15" in message


def test_files_without_chemistry_or_fault_kinds_train_with_holdouts_on(site_files, tmp_path):
    """The optional columns left out: chemistry unknown everywhere, every incident of kind
    "unknown". Leave-one-family-out has no family to leave out then, and says so by
    logging no hold-out metric instead of fitting a model without a single event."""
    telemetry, events = site_files
    folder = tmp_path / "telemetry"
    folder.mkdir()
    for path in sorted(telemetry.iterdir()):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.drop(columns=["chemistry"]).to_csv(folder / path.name, index=False)
    bare_events = tmp_path / "events.csv"
    pd.read_csv(events, dtype=str)[["module_id", "onset"]].to_csv(bare_events, index=False)
    config = replace(
        small_config(),
        model=ModelConfig(n_estimators=15, early_stopping_rounds=5),
        holdout_model=ModelConfig(n_estimators=10, early_stopping_rounds=5),
    )
    own = read_own_data(folder, bare_events, config.label_horizon_s)
    assert set(own.frame["fault_type"]) == {"none", "unknown"}
    assert "chemistry" not in own.frame.columns
    result, data = train_on_own_data(own, config)
    assert not [key for key in result.metrics if key.startswith("holdout/")]
    assert result.metrics["test_warning_events"] == data["report"]["splits"]["test"]["events"]


def test_a_simulator_run_says_so(trained_store):
    params = _params(trained_store.mlruns, trained_store.run_id)
    assert (params["data.source"], params["data.schema_version"]) == ("simulator", "1")
    assert "simulation.n_racks" in params
    assert not list(trained_store.mlruns.glob(f"*/{trained_store.run_id}/artifacts/data_report*"))
