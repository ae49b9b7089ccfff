"""Response bodies, built in one place: the route and the benchmark's profile both call these."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from src.readings import ReadingBatch
from src.services.prediction_service import Predictions

_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY


def prediction_body(batch: ReadingBatch, predictions: Predictions) -> dict[str, Any]:
    """The /predict answer: one prediction per reading, in the request's order, each
    echoing the reading's module and timestamp as sent (schemas.PredictResponse)."""
    version = predictions.model_version
    source = predictions.history_source
    timestamps = batch.timestamps_sent
    if timestamps is None:
        timestamps = batch.timestamps_s.tolist()
    return {
        "model_version": version,
        "threshold": predictions.threshold,
        "predictions": [
            {
                "module_id": module_id,
                "timestamp": timestamp,
                "hazard_probability": probability,
                "hazardous": hazardous,
                "history_s": history_s,
                "history_readings": history_readings,
                "history_source": source,
                "model_version": version,
            }
            for module_id, timestamp, probability, hazardous, history_s, history_readings in zip(
                batch.module_ids,
                timestamps,
                predictions.hazard_probability.tolist(),
                predictions.hazardous.tolist(),
                predictions.history_s.tolist(),
                predictions.history_readings.tolist(),
                strict=True,
            )
        ],
    }


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=_JSON_OPTIONS), status=status, mimetype="application/json"
    )
