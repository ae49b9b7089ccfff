"""HTTP routes: translate HTTP to the prediction service and back, nothing more.

Each request goes one way: decode the body, `schemas` parses it into a ReadingBatch, the
service predicts (and observes its own metrics), `audit` logs the readings at warning or
alarm, `responses` builds the body.
"""

from __future__ import annotations

import time

import orjson
from flask import Blueprint, Response, request

from src.api import audit, openapi, request_ids, schemas
from src.api.extension import get_service
from src.api.responses import json_response, prediction_body
from src.errors import InvalidJsonError

bp = Blueprint("api", __name__)


@bp.post("/predict")
def predict() -> Response:
    service = get_service()
    try:
        body = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as error:
        raise InvalidJsonError(
            f"the request body is not valid JSON ({error}); send a JSON object such as "
            "the one in test_payload.json with Content-Type: application/json",
            [{"field": "(body)", "problem": "not valid JSON"}],
        ) from None
    explain_all = schemas.explain_query(request.args.get("explain"))
    settings = service.settings
    batch = schemas.parse_predict_request(
        body, settings.max_batch_readings, time.time() + settings.max_clock_ahead_s
    )
    explain_all = explain_all or schemas.explain_requested(body)
    predictions = service.predict(batch, explain_all=explain_all)
    audit.log_hazard_readings(batch, predictions, request_ids.current())
    return json_response(prediction_body(batch, predictions))


@bp.get("/health")
def health() -> Response:
    """Liveness: the process answers. Says nothing about the model."""
    return json_response({"status": "ok"})


@bp.get("/ready")
def ready() -> Response:
    """Readiness: 200 only once the model is loaded and a warm-up prediction succeeded."""
    return json_response({"status": "ready", "model_version": get_service().model.run_id})


@bp.get("/model")
def model_info() -> Response:
    return json_response(get_service().describe())


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The API's OpenAPI 3.1 document, generated from the pydantic schemas."""
    return json_response(openapi.document())
