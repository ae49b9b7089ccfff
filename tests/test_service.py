"""The prediction service without HTTP: loading, the training/serving contract, both
scoring runtimes, and the checks gunicorn's master shares with every worker."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import ModelLoadError, ModelNotReadyError
from src.model_artifacts import ONNX_FILE, SCALER_FILE, SERVING_CONFIG_FILE
from src.readings import ReadingBatch
from src.services.model_loader import load_run_artifacts
from src.services.prediction_service import PredictionService
from src.settings import Settings
from src.training.data import features_of
from src.training.train import predict_probabilities
from tests.conftest import PROJECT_ROOT, edit_serving_config, run_file


def batch_of(frame) -> ReadingBatch:
    return ReadingBatch(
        module_ids=list(frame["module_id"]),
        timestamps_s=frame["timestamp_s"].to_numpy(dtype=np.float64),
        signals=frame[list(SIGNAL_NAMES)].to_numpy(dtype=np.float64),
        chemistry=list(frame["chemistry"]),
    )


def reference_batch() -> ReadingBatch:
    return ReadingBatch(["R01-M01"], np.array([1.0]), np.array([[s.reference for s in SIGNALS]]))


def test_training_logged_an_onnx_copy_equal_to_the_booster(trained_store):
    assert trained_store.result.onnx_model is not None
    assert trained_store.result.metrics["onnx_max_abs_difference"] <= 1e-5


@pytest.mark.parametrize("onnx_max_rows", [64, 0])
def test_both_runtimes_give_the_training_codes_probabilities(
    trained_store, settings, onnx_max_rows
):
    service = PredictionService(settings.model_copy(update={"onnx_max_rows": onnx_max_rows}))
    model = service.load()
    assert (model.onnx_session is not None) == (onnx_max_rows > 0)
    frame = trained_store.result.test_frame
    rows = frame[frame["module_id"] == frame["module_id"].iloc[0]].head(40)
    expected = predict_probabilities(
        trained_store.result.booster, trained_store.result.scaler, features_of(rows)
    )
    predictions = service.predict(batch_of(rows))
    np.testing.assert_allclose(predictions.hazard_probability, expected, rtol=0, atol=1e-6)
    assert predictions.model_version == trained_store.run_id
    assert predictions.thresholds.warning <= predictions.thresholds.alarm
    over = predictions.hazard_probability >= predictions.thresholds.alarm
    assert predictions.hazardous[over].all()


def test_predict_before_load_says_so(settings):
    service = PredictionService(settings)
    with pytest.raises(ModelNotReadyError, match="still loading"):
        service.predict(reference_batch())


def test_a_tampered_artifact_is_refused(trained_store, settings, copied_store):
    scaler = run_file(copied_store, trained_store.run_id, SCALER_FILE)
    scaler.write_bytes(scaler.read_bytes() + b"\x00")
    service = PredictionService(
        settings.model_copy(update={"mlflow_tracking_uri": copied_store.as_uri()})
    )
    with pytest.raises(ModelLoadError, match="does not match its recorded SHA-256"):
        service.load()
    assert SCALER_FILE in service.load_error


def test_a_run_without_onnx_copy_is_served_by_xgboost(trained_store, settings, copied_store):
    run_file(copied_store, trained_store.run_id, ONNX_FILE).unlink()
    service = PredictionService(
        settings.model_copy(
            update={"mlflow_tracking_uri": copied_store.as_uri(), "verify_digests": False}
        )
    )
    assert service.load().onnx_session is None


def test_training_records_the_scaler_exactly_in_the_serving_config(trained_store):
    config = load_run_artifacts(
        settings_for(trained_store.run_id, trained_store.tracking_uri)
    ).config
    assert np.array_equal(config.scaler.mean, trained_store.result.scaler.mean_)
    assert np.array_equal(config.scaler.scale, trained_store.result.scaler.scale_)
    assert config.code_version.startswith("hvs-prediction-api 0.1.0 (")


def settings_for(run_id: str, tracking_uri: str) -> Settings:
    return Settings(BEST_MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking_uri)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("scaler"), r"never unpickles a scaler: re-train"),
        (
            lambda c: c.update(feature_set_version="0", code_version="hvs 0.0.1 (abc)"),
            r"trained by hvs 0\.0\.1 \(abc\) with features set 0 .*this service computes set",
        ),
        (lambda c: c.update(window_s=600.0), r"window 600 s.*re-train with this one"),
        (lambda c: c.update(rate_max_gap_s=30.0), r"rate gap 30 s"),
        (
            lambda c: c["thresholds"].update(alarm=1.01),
            r"threshold must be a probability in \(0, 1\)",
        ),
        (lambda c: c["thresholds"].update(warning=-0.2), r"threshold must be a probability"),
        (lambda c: c["thresholds"].update(alarm=float("nan")), r"threshold must be a probability"),
        (lambda c: c["thresholds"].update(warning=0.9, alarm=0.5), r"above the alarm's"),
        (lambda c: c.pop("thresholds"), r"thresholds: Field required"),
        (lambda c: c.update(absent_signals=["co_ppm"]), r"trained and judged without \['co_ppm'\]"),
        (lambda c: c["feature_names"].append("h2_ppm_magic"), r"cannot compute \(h2_ppm_magic"),
        (lambda c: c["scaler"]["scale"].__setitem__(0, 0.0), r"non-positive"),
        (lambda c: c["signal_names"].reverse(), r"expects the raw signals"),
    ],
)
def test_a_run_outside_the_contract_is_refused_by_master_and_worker_alike(
    trained_store, copied_store, edit, message
):
    """Each is a run a writable store could hold with every digest matching."""
    edit_serving_config(copied_store, trained_store.run_id, edit)
    settings = settings_for(trained_store.run_id, copied_store.as_uri())
    with pytest.raises(ModelLoadError, match=message):
        load_run_artifacts(settings)  # gunicorn's master, before forking: exit 3
    service = PredictionService(settings)
    with pytest.raises(ModelLoadError, match=message):
        service.load()
    assert service.load_error is not None


def test_the_serving_config_must_be_digested(trained_store, copied_store):
    path = run_file(copied_store, trained_store.run_id, SERVING_CONFIG_FILE)
    path.write_text(path.read_text().replace('"warning": 0.', '"warning": 0.0'))
    with pytest.raises(ModelLoadError, match="does not match its recorded SHA-256"):
        load_run_artifacts(settings_for(trained_store.run_id, copied_store.as_uri()))


SERVE_WITHOUT_SCIKIT_LEARN = """
import sys
sys.modules["sklearn"] = None  # `import sklearn` now fails, as in the image
sys.modules["joblib"] = None
import numpy as np
from src.data.signals import SIGNALS
from src.readings import ReadingBatch
from src.services.model_loader import load_run_artifacts
from src.services.prediction_service import PredictionService
from src.settings import Settings
def reference_batch():
    return ReadingBatch(["R01-M01"], np.array([1.0]), np.array([[s.reference for s in SIGNALS]]))
settings = Settings(BEST_MLFLOW_RUN_ID=sys.argv[1], MLFLOW_TRACKING_URI=sys.argv[2])
load_run_artifacts(settings)  # gunicorn's master
service = PredictionService(settings)
service.load()
print(service.predict(reference_batch()).hazard_probability[0])
print("sklearn" in sys.modules and sys.modules["sklearn"] is not None)
"""


def test_serving_needs_no_scikit_learn(trained_store, settings):
    """The image installs no scikit-learn (requirements.txt): loading and scoring must not
    need it (xgboost then uses its own stand-ins for sklearn's base classes)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_WITHOUT_SCIKIT_LEARN,
            trained_store.run_id,
            trained_store.tracking_uri,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    probability, sklearn_loaded = completed.stdout.split()
    service = PredictionService(settings)
    service.load()
    expected = service.predict(reference_batch()).hazard_probability[0]
    assert float(probability) == pytest.approx(expected, abs=1e-7)
    assert sklearn_loaded == "False"


def test_a_signing_key_lets_only_runs_signed_with_it_be_served(trained_store, tmp_path):
    from src.training.config import small_config
    from src.training.tracking import log_run

    key_file = tmp_path / "signing.key"
    key_file.write_bytes(b"a key of the site operator's, long enough")
    store = tmp_path / "signed" / "mlruns"
    signed = log_run(
        trained_store.result, small_config(), store.as_uri(), signing_key=key_file.read_bytes()
    )
    keyed = Settings(
        BEST_MLFLOW_RUN_ID=signed,
        MLFLOW_TRACKING_URI=store.as_uri(),
        HVS_MODEL_SIGNING_KEY_FILE=str(key_file),
        HVS_VERIFY_DIGESTS="false",  # a key means digests are verified anyway
    )
    assert PredictionService(keyed).load().run_id == signed
    # another key
    other = tmp_path / "other.key"
    other.write_bytes(b"somebody else's key, long enough too")
    with pytest.raises(ModelLoadError, match="does not match the service's key"):
        load_run_artifacts(keyed.model_copy(update={"model_signing_key_file": str(other)}))
    # an unsigned run
    unsigned = keyed.model_copy(
        update={
            "best_mlflow_run_id": trained_store.run_id,
            "mlflow_tracking_uri": trained_store.tracking_uri,
        }
    )
    with pytest.raises(ModelLoadError, match=r"no readable manifest\.sig"):
        load_run_artifacts(unsigned)
    # a writable store: the config changed and its digest with it, the signature cannot follow
    edit_serving_config(store, signed, lambda config: config["thresholds"].update(alarm=0.99))
    with pytest.raises(ModelLoadError, match="changed after signing"):
        load_run_artifacts(keyed)
