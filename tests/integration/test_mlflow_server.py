"""MODEL_URI against a real `mlflow server` (sqlite backend, artifact proxy on loopback):
the real training code logs and registers into it, the service resolves the alias and a
version, downloads the run through the proxy into a private folder, checks it exactly as
from a file store, serves it, and removes the copy; gunicorn's start-up check does too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from src.errors import ModelLoadError
from src.services.model_watch import ModelWatch
from src.services.prediction_service import PredictionService
from src.settings import Settings
from src.training.config import small_config
from src.training.tracking import log_run, register_model, set_alias
from tests.mlflow_server import MlflowServer
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(trained_store, tmp_path_factory) -> Iterator[tuple[MlflowServer, dict]]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        config = replace(small_config(), holdout=False)
        runs = {}
        for version in ("1", "2"):  # the trained result logged twice: no second training
            run_id = log_run(trained_store.result, config, tracking_uri=server.url)
            assert register_model(server.url, run_id, "hvs", "champion") == version
            runs[version] = run_id
        set_alias(server.url, "hvs", "champion", "1")
        yield server, runs
    finally:
        server.stop()


def settings_for(url: str, model_uri: str) -> Settings:
    return Settings(
        MODEL_URI=model_uri, MLFLOW_TRACKING_URI=url, HVS_LOG_FORMAT="text", HVS_HISTORY="off"
    )


def test_alias_and_version_are_served_from_the_server(mlflow_server):
    server, runs = mlflow_server
    service = PredictionService(settings_for(server.url, "models:/hvs@champion"))
    assert service.load().run_id == runs["1"]
    described = service.describe()
    assert described["registered_model"] == {"name": "hvs", "version": "1", "alias": "champion"}
    location = service.model.artifacts.location
    assert location.downloaded
    assert not location.store_root.exists()  # the private copy is gone once read

    set_alias(server.url, "hvs", "champion", "2")
    try:
        assert ModelWatch(service, interval_s=3600).check() is True
        assert service.model.run_id == runs["2"]
    finally:
        set_alias(server.url, "hvs", "champion", "1")
    by_version = PredictionService(settings_for(server.url, "models:/hvs/2"))
    assert by_version.load().run_id == runs["2"]


def test_an_unknown_alias_on_the_server_lists_the_ones_there(mlflow_server):
    server, _ = mlflow_server
    service = PredictionService(settings_for(server.url, "models:/hvs@production"))
    with pytest.raises(ModelLoadError, match=r"'hvs' has aliases @champion: version 1 and ver"):
        service.load()


def test_gunicorn_serves_the_alias_from_the_server(mlflow_server, tmp_path):
    server, runs = mlflow_server
    env = {
        "MODEL_URI": "models:/hvs@champion",
        "BEST_MLFLOW_RUN_ID": "",
        "MLFLOW_TRACKING_URI": server.url,
    }
    running = GunicornServer(env, tmp_path / "server.log", workers=1).start()
    try:
        running.wait_all_workers_ready()
        response = requests.get(running.url + "/model", timeout=5)
        assert response.json()["model_version"] == runs["1"]
    finally:
        running.stop()
