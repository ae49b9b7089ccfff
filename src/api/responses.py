"""Response bodies, built in one place: the route and the benchmark's profile both call these."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from src.levels import ALARM, LEVEL_NAMES
from src.readings import ReadingBatch
from src.services.explanations import Explanation
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
                "explanation": None if explanation is None else explanation_body(explanation),
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
                explanation,
            ) in zip(
                batch.module_ids,
                timestamps,
                predictions.hazard_probability.tolist(),
                predictions.level.tolist(),
                predictions.reasons,
                predictions.missing,
                predictions.history_s.tolist(),
                predictions.history_readings.tolist(),
                predictions.explanations,
                strict=True,
            )
        ],
    }


def explanation_body(explanation: Explanation) -> dict[str, Any]:
    """A prediction's `explanation` (schemas.Explanation)."""
    return {
        "base_log_odds": explanation.base_log_odds,
        "log_odds": explanation.log_odds,
        "top": top_signals(explanation),
    }


def top_signals(explanation: Explanation) -> list[dict[str, Any]]:
    """The explanation's `top`, also the audit log's `top_signals`."""
    return [
        {
            "signal": part.signal,
            "log_odds": part.log_odds,
            "value": part.value,
            "healthy_range": None if part.healthy_range is None else list(part.healthy_range),
        }
        for part in explanation.top
    ]


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=_JSON_OPTIONS), status=status, mimetype="application/json"
    )
