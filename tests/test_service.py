"""The prediction service without HTTP: loading, integrity checks, both scoring runtimes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from src.errors import ModelLoadError
from src.model_artifacts import ONNX_FILE, SCALER_FILE
from src.services.prediction_service import PredictionService, ReadingBatch
from src.training.train import features_of, predict_probabilities


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
