"""Response bodies, built in one place: the route and the benchmark's profile both call these."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from src.levels import ALARM, LEVEL_NAMES
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
    thresholds = predictions.thresholds
    return {
        "model_version": version,
        "thresholds": {"warning": thresholds.warning, "alarm": thresholds.alarm},
        "predictions": [
            {
                "module_id": module_id,
                "timestamp": timestamp,
                "hazard_probability": probability,
                "level": LEVEL_NAMES[level],
                "hazardous": level == ALARM,
                "reasons": reasons,
                "missing": missing,
                "history_s": history_s,
                "history_readings": history_readings,
                "history_source": source,
                "model_version": version,
            }
            for (
                module_id,
                timestamp,
                probability,
                level,
                reasons,
                missing,
                history_s,
                history_readings,
            ) in zip(
                batch.module_ids,
                timestamps,
                predictions.hazard_probability.tolist(),
                predictions.level.tolist(),
                predictions.reasons,
                predictions.missing,
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
