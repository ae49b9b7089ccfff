"""Shared fixtures: one small model trained by the real training code into a real MLflow
store, which is then moved (as a host's mlruns folder is when mounted in a container)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.settings import ServiceSettings
from src.training.tracking import log_run
from src.training.train import TrainingResult, small_config, train

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TrainedStore:
    mlruns: Path
    """The store as served: a copy, away from where training wrote it."""
    run_id: str
    result: TrainingResult

    @property
    def tracking_uri(self) -> str:
        return self.mlruns.as_uri()


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    config = small_config()
    written = tmp_path_factory.mktemp("training-host") / "mlruns"
    result = train(config)
    run_id = log_run(result, config, tracking_uri=written.as_uri())
    served = tmp_path_factory.mktemp("serving-host") / "mlruns"
    shutil.copytree(written, served)
    shutil.rmtree(written)  # the recorded artifact locations now point nowhere
    return TrainedStore(mlruns=served, run_id=run_id, result=result)


@pytest.fixture
def settings(trained_store: TrainedStore) -> ServiceSettings:
    return ServiceSettings(
        BEST_MLFLOW_RUN_ID=trained_store.run_id,
        MLFLOW_TRACKING_URI=trained_store.tracking_uri,
        HVS_LOG_FORMAT="text",
    )


@pytest.fixture
def app(settings: ServiceSettings):
    from src.api import create_app

    return create_app(settings, load="now")


@pytest.fixture
def client(app) -> Iterator:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture(scope="session")
def payload_normal() -> bytes:
    return (PROJECT_ROOT / "test_payload.json").read_bytes()


@pytest.fixture(scope="session")
def payload_hazardous() -> bytes:
    return (PROJECT_ROOT / "test_payload_hazardous.json").read_bytes()
