"""`python -m src.training --register NAME --alias ALIAS` (what `make train REGISTER=...
ALIAS=...` runs) and `python -m src.training.runs register|set-alias`: the real commands,
the small model, a file store; the service then serves what they registered."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from src.services.prediction_service import PredictionService
from src.settings import Settings
from tests.conftest import PROJECT_ROOT

RESOLVE = (
    "from src.services.model_loader import load_run_artifacts; from src.settings import "
    "load_settings; print(load_run_artifacts(load_settings()).location.run_id)"
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True
    )


def test_train_registers_and_aliases_and_runs_moves_the_alias(tmp_path):
    mlruns = tmp_path / "mlruns"
    trained = run(
        "src.training", "--small", "--no-holdout", "--mlruns-dir", str(mlruns),
        "--register", "hvs", "--alias", "champion",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    run_id = trained.stdout.strip().splitlines()[-1]
    assert "registered as hvs version 1 (alias champion)" in trained.stderr
    assert "MODEL_URI=models:/hvs@champion" in trained.stderr

    settings = Settings(
        MODEL_URI="models:/hvs@champion", MLFLOW_TRACKING_URI=mlruns.as_uri(), HVS_HISTORY="off"
    )
    assert PredictionService(settings).load().run_id == run_id
    # A fresh process resolving the alias writes nothing where it runs (MLflow's file
    # registry would otherwise open a sqlite mlflow.db there: the container's is read-only).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resolved = subprocess.run(
        [sys.executable, "-c", RESOLVE], cwd=elsewhere, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MODEL_URI": "models:/hvs@champion",
             "MLFLOW_TRACKING_URI": mlruns.as_uri(), "BEST_MLFLOW_RUN_ID": ""},
    )  # fmt: skip
    assert resolved.stdout.strip() == run_id, resolved.stderr
    assert list(elsewhere.iterdir()) == []

    uri = ["--tracking-uri", str(mlruns)]
    registered = run("src.training.runs", "register", run_id, "--name", "hvs", *uri)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.strip() == "2"
    moved = run("src.training.runs", "set-alias", "--name", "hvs", "--alias", "champion",
                "--version", "2", *uri)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    served = PredictionService(settings).load()
    assert served.artifacts.location.registered.version == "2"

    missing = run("src.training.runs", "set-alias", "--name", "hvs", "--alias", "champion",
                  "--version", "9", *uri)  # fmt: skip
    assert missing.returncode == 1
    assert "'hvs' has no version 9" in missing.stderr
    assert "its versions: 1, 2" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--alias", "champion"], "--alias needs --register NAME"),
    ],
)
def test_registering_arguments_are_checked_before_training(tmp_path, args, expected):
    refused = run("src.training", "--small", "--mlruns-dir", str(tmp_path), *args)
    assert refused.returncode != 0
    assert expected in refused.stderr
