"""The prediction service without HTTP: loading, integrity checks, both scoring runtimes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from src.data.signals import SIGNALS
from src.errors import ModelLoadError
from src.model_artifacts import (
    MANIFEST_FILE,
    ONNX_FILE,
    SCALER_FILE,
    SERVING_CONFIG_FILE,
    sha256_file,
)
from src.services.prediction_service import PredictionService, ReadingBatch
from src.services.startup_check import check_run
from src.training.train import features_of, predict_probabilities
from tests.conftest import PROJECT_ROOT


def batch_of(frame) -> ReadingBatch:
    from src.data.signals import SIGNAL_NAMES

    return ReadingBatch(
        module_ids=list(frame["module_id"]),
        timestamps_s=frame["timestamp_s"].to_numpy(dtype=np.float64),
        signals=frame[list(SIGNAL_NAMES)].to_numpy(dtype=np.float64),
    )


@pytest.fixture
def copied_store(trained_store, tmp_path):
    copy = tmp_path / "mlruns"
    shutil.copytree(trained_store.mlruns, copy)
    return copy


def run_file(store, run_id: str, name: str):
    return next(store.glob(f"*/{run_id}/artifacts/{name}"))


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
    served = service.predict(batch_of(rows)).hazard_probability
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)


def test_a_tampered_artifact_is_refused_before_it_is_unpickled(
    trained_store, settings, copied_store
):
    scaler = run_file(copied_store, trained_store.run_id, SCALER_FILE)
    scaler.write_bytes(scaler.read_bytes() + b"\x00")
    service = PredictionService(
        settings.model_copy(update={"mlflow_tracking_uri": copied_store.as_uri()})
    )
    with pytest.raises(ModelLoadError, match="does not match its recorded SHA-256"):
        service.load()
    assert service.load_error is not None
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
    config = json.loads(
        run_file(trained_store.mlruns, trained_store.run_id, SERVING_CONFIG_FILE).read_text()
    )
    assert np.array_equal(config["scaler"]["mean"], trained_store.result.scaler.mean_)
    assert np.array_equal(config["scaler"]["scale"], trained_store.result.scaler.scale_)


SERVE_WITHOUT_SCIKIT_LEARN = """
import sys
sys.modules["sklearn"] = None  # `import sklearn` now fails, as in the image
sys.modules["joblib"] = None
import numpy as np
from src.data.signals import SIGNALS
from src.services.prediction_service import PredictionService, ReadingBatch
from src.services.startup_check import check_run
from src.settings import ServiceSettings
settings = ServiceSettings(BEST_MLFLOW_RUN_ID=sys.argv[1], MLFLOW_TRACKING_URI=sys.argv[2])
check_run(settings)  # gunicorn's master
service = PredictionService(settings)
service.load()
reference = np.array([[signal.reference for signal in SIGNALS]])
print(service.predict(ReadingBatch(["R01-M01"], np.array([1.0]), reference)).hazard_probability[0])
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
    expected = service.predict(
        ReadingBatch(["R01-M01"], np.array([1.0]), np.array([[s.reference for s in SIGNALS]]))
    )
    assert float(probability) == pytest.approx(expected.hazard_probability[0], abs=1e-7)
    assert sklearn_loaded == "False"


def without_recorded_scaler(store, run_id: str) -> None:
    """Make the run look trained before serving_config.json carried the scaler (digests
    included, as such a run's manifest records them)."""
    path = run_file(store, run_id, SERVING_CONFIG_FILE)
    config = json.loads(path.read_text())
    del config["scaler"]
    path.write_text(json.dumps(config))
    manifest_path = run_file(store, run_id, MANIFEST_FILE)
    manifest = json.loads(manifest_path.read_text())
    manifest["run_artifacts"][SERVING_CONFIG_FILE] = sha256_file(path)
    manifest_path.write_text(json.dumps(manifest))


def test_an_older_run_with_only_the_pickled_scaler_still_serves(
    trained_store, settings, copied_store
):
    without_recorded_scaler(copied_store, trained_store.run_id)
    older = PredictionService(
        settings.model_copy(update={"mlflow_tracking_uri": copied_store.as_uri()})
    )
    current = PredictionService(settings)
    frame = trained_store.result.test_frame
    batch = batch_of(frame[frame["module_id"] == frame["module_id"].iloc[0]].head(20))
    older.load()
    current.load()
    assert np.array_equal(older.model.scale_mean, current.model.scale_mean)
    assert np.array_equal(older.model.scale_inverse_std, current.model.scale_inverse_std)
    np.testing.assert_array_equal(
        older.predict(batch).hazard_probability, current.predict(batch).hazard_probability
    )


def test_an_older_run_without_scikit_learn_says_to_retrain(
    trained_store, settings, copied_store, monkeypatch
):
    without_recorded_scaler(copied_store, trained_store.run_id)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as in the image
    older = settings.model_copy(update={"mlflow_tracking_uri": copied_store.as_uri()})
    with pytest.raises(ModelLoadError, match=r"needs scikit-learn.*re-train"):
        check_run(older)  # gunicorn's master, before forking: exit 3 with this line
    service = PredictionService(older)
    with pytest.raises(ModelLoadError, match=r"needs scikit-learn.*re-train"):
        service.load()
