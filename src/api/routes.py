"""HTTP routes: translate HTTP to the prediction service and back, nothing more."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from src.api import schemas
from src.api.metrics import EXTENSION_KEY as METRICS_KEY
from src.api.metrics import ModelMetrics
from src.errors import InvalidJsonError
from src.services.prediction_service import PredictionService, score
from src.settings import ServiceSettings

bp = Blueprint("api", __name__)

SERVICE_KEY = "hvs_service"
SETTINGS_KEY = "hvs_settings"
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY


def _service() -> PredictionService:
    return current_app.extensions[SERVICE_KEY]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=_JSON_OPTIONS), status=status, mimetype="application/json"
    )


@bp.post("/predict")
def predict() -> Response:
    model = _service().model
    settings: ServiceSettings = current_app.extensions[SETTINGS_KEY]
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as error:
        raise InvalidJsonError(
            f"the request body is not valid JSON ({error}); send a JSON object such as "
            "the one in test_payload.json with Content-Type: application/json",
            [{"field": "(body)", "problem": "not valid JSON"}],
        ) from None
    parsed = schemas.parse_predict_request(body, settings.max_batch_readings)
    result = score(model, parsed.batch)
    metrics: ModelMetrics = current_app.extensions[METRICS_KEY]
    metrics.observe_predictions(result.hazard_probability, result.hazardous)
    run_id = model.run_id
    predictions = [
        {
            "module_id": module_id,
            "timestamp": timestamp,
            "hazard_probability": probability,
            "hazardous": hazardous,
            "model_version": run_id,
        }
        for module_id, timestamp, probability, hazardous in zip(
            parsed.batch.module_ids,
            parsed.timestamps,
            result.hazard_probability.tolist(),
            result.hazardous.tolist(),
            strict=True,
        )
    ]
    return _json(
        {"model_version": run_id, "threshold": model.threshold, "predictions": predictions}
    )


@bp.get("/health")
def health() -> Response:
    """Liveness: the process answers. Says nothing about the model."""
    return _json({"status": "ok"})


@bp.get("/ready")
def ready() -> Response:
    """Readiness: 200 only once the model is loaded and a warm-up prediction succeeded."""
    return _json({"status": "ready", "model_version": _service().model.run_id})


@bp.get("/model")
def model_info() -> Response:
    model = _service().model
    return _json(
        {
            "model_version": model.run_id,
            "experiment_id": model.location.experiment_id,
            "threshold": model.threshold,
            "feature_names": list(model.feature_names),
            "feature_set_version": model.serving_config.get("feature_set_version"),
            "hazard_horizon_s": model.serving_config.get("hazard_horizon_s"),
            "training_metrics": model.location.metrics,
            "training_params": model.location.params,
            "load_seconds": round(model.load_seconds, 4),
            "onnx_max_rows": model.onnx_max_rows,
        }
    )
