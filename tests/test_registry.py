"""MODEL_URI against a file store's model registry: runs:/, models:/<name>/<version> and
models:/<name>@<alias> resolve to the run training logged; what does not exist is named
with what does; an alias that moves is followed, a version that fails is refused."""

from __future__ import annotations

import pytest

from src.errors import ModelLoadError
from src.model_uri import parse_model_uri
from src.services.model_watch import ModelWatch
from src.services.prediction_service import PredictionService
from src.settings import Settings, SettingsError, load_settings
from src.training.tracking import set_alias
from tests.conftest import edit_serving_config


def settings_for(store, model_uri: str, **more) -> Settings:
    return Settings(
        MODEL_URI=model_uri,
        MLFLOW_TRACKING_URI=store.tracking_uri,
        HVS_LOG_FORMAT="text",
        HVS_HISTORY="off",
        **more,
    )


@pytest.mark.parametrize(
    ("uri", "version"),
    [("models:/hvs@champion", "1"), ("models:/hvs/2", "2"), ("models:/hvs/1", "1")],
)
def test_registered_uris_serve_the_run_they_name(registry_store, uri, version):
    service = PredictionService(settings_for(registry_store, uri))
    model = service.load()
    assert model.run_id == registry_store.run_ids[version]
    described = service.describe()
    assert described["model_uri"] == uri
    assert described["registered_model"]["name"] == "hvs"
    assert described["registered_model"]["version"] == version
    assert described["registered_model"]["alias"] == parse_model_uri(uri).alias


def test_a_runs_uri_and_the_plain_run_id_serve_the_same_run(trained_store):
    by_uri = PredictionService(settings_for(trained_store, f"runs:/{trained_store.run_id}/model"))
    assert by_uri.load().run_id == trained_store.run_id
    assert by_uri.describe()["registered_model"] is None
    by_id = Settings(
        BEST_MLFLOW_RUN_ID=trained_store.run_id, MLFLOW_TRACKING_URI=trained_store.tracking_uri
    )
    assert PredictionService(by_id).load().run_id == trained_store.run_id


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/hvs@champoin", r"'hvs' has aliases @champion: version 1 and versions 1, 2"),
        ("models:/hvs/7", r"'hvs' has aliases @champion: version 1 and versions 1, 2"),
        ("models:/hsv@champion", r"registered models here: hvs; fix MODEL_URI"),
        (f"runs:/{'0' * 32}/model", r"run 0{32} was not found .*check BEST_MLFLOW_RUN_ID"),
        ("runs:/{run}/booster", r"no logged model named 'booster'"),
    ],
)
def test_what_does_not_exist_is_named_with_what_does(registry_store, uri, expected):
    uri = uri.format(run=registry_store.run_ids["1"])
    service = PredictionService(settings_for(registry_store, uri))
    with pytest.raises(ModelLoadError, match=expected):
        service.load()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MODEL_URI": "models:/hvs"}, "is not a model URI this service reads; use runs:/"),
        ({"MODEL_URI": "runs:/abc/model"}, "'abc' in 'runs:/abc/model' is not an MLflow run id"),
        ({"MODEL_URI": "models:/m-0123"}, "names a logged model by id"),
        (
            {"MODEL_URI": f"runs:/{'a' * 32}/model", "BEST_MLFLOW_RUN_ID": "b" * 32},
            "do not name the same run: set only one of them",
        ),
        (
            {"HVS_ALARM_THRESHOLD": "1.5"},
            "HVS_ALARM_THRESHOLD='1.5' is not valid: Input should be less",
        ),
        (
            {"HVS_WARNING_THRESHOLD": "0"},
            "HVS_WARNING_THRESHOLD='0' is not valid: Input should be gre",
        ),
        (
            {"HVS_WARNING_THRESHOLD": "0.6", "HVS_ALARM_THRESHOLD": "0.4"},
            "HVS_WARNING_THRESHOLD=0.6 is above HVS_ALARM_THRESHOLD=0.4: a warning must come",
        ),
        ({"HVS_MODEL_POLL_SECONDS": "-1"}, "HVS_MODEL_POLL_SECONDS='-1' is not valid"),
    ],
)
def test_bad_model_settings_are_one_line_naming_the_variable(monkeypatch, env, expected):
    monkeypatch.delenv("BEST_MLFLOW_RUN_ID", raising=False)
    base = {"BEST_MLFLOW_RUN_ID": "", "MODEL_URI": "models:/hvs@champion"}
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_threshold_override_is_served_and_shown(registry_store):
    service = PredictionService(
        settings_for(registry_store, "models:/hvs/1", HVS_ALARM_THRESHOLD="0.97")
    )
    model = service.load()
    trained = model.trained_thresholds
    assert model.thresholds.alarm == 0.97
    assert model.thresholds.warning == trained.warning
    shown = service.describe()["thresholds"]
    assert shown["source"] == "override"
    assert shown["alarm"] == 0.97
    assert shown["trained"] == {"warning": trained.warning, "alarm": trained.alarm}


def test_an_override_that_crosses_the_runs_other_threshold_is_refused(registry_store):
    service = PredictionService(
        settings_for(registry_store, "models:/hvs/1", HVS_WARNING_THRESHOLD="0.999")
    )
    with pytest.raises(ModelLoadError, match="HVS_WARNING_THRESHOLD makes the warning threshold"):
        service.load()


def test_the_watch_follows_the_alias_and_refuses_a_broken_version(copied_registry):
    store = copied_registry
    service = PredictionService(settings_for(store, "models:/hvs@champion"))
    service.load()
    watch = ModelWatch(service, interval_s=3600)
    assert watch.check() is False  # nothing moved
    set_alias(store.tracking_uri, "hvs", "champion", "2")
    assert watch.check() is True
    assert service.model.run_id == store.run_ids["2"]
    assert service.describe()["registered_model"]["version"] == "2"

    edit_serving_config(store.mlruns, store.run_ids["1"], lambda c: c.update(window_s=1.0))
    set_alias(store.tracking_uri, "hvs", "champion", "1")
    assert watch.check() is False  # refused: version 2 keeps serving
    assert service.model.run_id == store.run_ids["2"]
    assert watch.check() is False  # refused once, not reloaded on every poll


def test_the_watch_keeps_serving_when_the_registry_is_away(copied_registry, caplog):
    store = copied_registry
    service = PredictionService(settings_for(store, "models:/hvs@champion"))
    service.load()
    (store.mlruns / "models").rename(store.mlruns / "models-away")
    assert ModelWatch(service, interval_s=3600).check() is False
    assert service.model.run_id == store.run_ids["1"]
    assert "keeping the served model" in caplog.text
