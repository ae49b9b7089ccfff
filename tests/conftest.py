"""Shared fixtures: one small model trained by the real training code into a real MLflow
store, which is then moved (as a host's mlruns folder is when mounted in a container)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from src.model_artifacts import MANIFEST_FILE, SERVING_CONFIG_FILE, sha256_file
from src.settings import Settings
from src.training.config import small_config
from src.training.tracking import log_run
from src.training.train import TrainingResult, train

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
    config = replace(small_config(), holdout=False)  # hold-outs: tests/test_train.py
    written = tmp_path_factory.mktemp("training-host") / "mlruns"
    result = train(config)
    run_id = log_run(result, config, tracking_uri=written.as_uri())
    served = tmp_path_factory.mktemp("serving-host") / "mlruns"
    shutil.copytree(written, served)
    shutil.rmtree(written)  # the recorded artifact locations now point nowhere
    return TrainedStore(mlruns=served, run_id=run_id, result=result)


@dataclass(frozen=True)
class RegistryStore:
    """A file store whose registered model `hvs` has version 1 (the trained run, alias
    `champion`) and version 2 (the same training result logged again as a second run)."""

    mlruns: Path
    run_ids: dict[str, str]
    """Version -> run id."""
    name: str = "hvs"

    @property
    def tracking_uri(self) -> str:
        return self.mlruns.as_uri()


@pytest.fixture(scope="session")
def registry_store(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> RegistryStore:
    from src.training.tracking import register_model

    # Logged (twice, no second training) and registered where training runs, then moved.
    written = tmp_path_factory.mktemp("registry-training-host") / "mlruns"
    config = replace(small_config(), holdout=False)
    first, second = (
        log_run(trained_store.result, config, tracking_uri=written.as_uri()) for _ in range(2)
    )
    assert register_model(written.as_uri(), first, "hvs", "champion") == "1"
    assert register_model(written.as_uri(), second, "hvs") == "2"
    mlruns = tmp_path_factory.mktemp("registry") / "mlruns"
    shutil.copytree(written, mlruns)
    shutil.rmtree(written)
    return RegistryStore(mlruns=mlruns, run_ids={"1": first, "2": second})


@pytest.fixture
def copied_registry(registry_store: RegistryStore, tmp_path: Path) -> RegistryStore:
    """A copy of the registry store that a test may move aliases in or damage."""
    copy = tmp_path / "registry" / "mlruns"
    shutil.copytree(registry_store.mlruns, copy)
    return replace(registry_store, mlruns=copy)


def run_file(store: Path, run_id: str, name: str) -> Path:
    """One of the run's own artifacts (not the logged model's) in a file store."""
    return next(store.glob(f"*/{run_id}/artifacts/{name}"))


def edit_serving_config(store: Path, run_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the run's serving_config.json and re-digest it in the manifest, as someone
    who can write to the store could: the digests still match, the content is new."""
    path = run_file(store, run_id, SERVING_CONFIG_FILE)
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    manifest_path = run_file(store, run_id, MANIFEST_FILE)
    manifest = json.loads(manifest_path.read_text())
    manifest["run_artifacts"][SERVING_CONFIG_FILE] = sha256_file(path)
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture
def copied_store(trained_store: TrainedStore, tmp_path: Path) -> Path:
    """A copy of the trained store that a test may damage."""
    copy = tmp_path / "mlruns"
    shutil.copytree(trained_store.mlruns, copy)
    return copy


@pytest.fixture
def settings(trained_store: TrainedStore) -> Settings:
    return Settings(
        BEST_MLFLOW_RUN_ID=trained_store.run_id,
        MLFLOW_TRACKING_URI=trained_store.tracking_uri,
        HVS_LOG_FORMAT="text",
    )


@pytest.fixture
def app(settings: Settings):
    from src.api import create_app

    return create_app(settings, load="now")


@pytest.fixture
def client(app) -> Iterator:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def payload_normal() -> bytes:
    return (PROJECT_ROOT / "test_payload.json").read_bytes()


@pytest.fixture(scope="session")
def payload_hazardous() -> bytes:
    return (PROJECT_ROOT / "test_payload_hazardous.json").read_bytes()
