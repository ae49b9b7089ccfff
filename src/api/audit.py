"""The alarm audit trail: one structured log line per answered reading at warning or alarm.

What an operator needs to act and to reconstruct the call later: which module and when,
the probability, the level and why, the signals that drove the model, which model, and
the request id that joins the line to the client's and the access log's. Nothing else of
the payload is logged. Logged at WARNING, so the trail stays when HVS_LOG_LEVEL is raised
to WARNING; a reading a request repeats (a retry inside one body) is logged once. How to
find alarmed modules from these lines and from /metrics: docs/explanations.md.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np

from src.api.responses import top_signals
from src.levels import ALARM, LEVEL_NAMES, WARNING
from src.readings import ReadingBatch
from src.services.prediction_service import Predictions

logger = logging.getLogger(__name__)


def log_hazard_readings(
    batch: ReadingBatch, predictions: Predictions, request_id: str | None
) -> None:
    level = predictions.level
    flagged = (level == WARNING) | (level == ALARM)
    if batch.repeats is not None:
        flagged &= batch.repeats < 0
    for row in np.flatnonzero(flagged).tolist():
        explanation = predictions.explanations[row]
        top = [] if explanation is None else top_signals(explanation)
        level_name = LEVEL_NAMES[level[row]]
        module_id = batch.module_ids[row]
        timestamp = _iso(float(batch.timestamps_s[row]))
        probability = float(predictions.hazard_probability[row])
        reasons = list(predictions.reasons[row])
        logger.warning(
            "reading at %s: module %s at %s, hazard_probability %.4f, reasons %s, top %s",
            level_name,
            module_id,
            timestamp,
            probability,
            " ".join(reasons),
            " ".join(f"{part['signal']}{part['log_odds']:+.2f}" for part in top) or "-",
            extra={
                "event": "hazard_reading",
                "module_id": module_id,
                "reading_timestamp": timestamp,
                "hazard_probability": probability,
                "hazard_level": level_name,
                "reasons": reasons,
                "top_signals": top,
                "model_version": predictions.model_version,
                "request_id": request_id,
            },
        )


def _iso(epoch_s: float) -> str:
    return (
        datetime.fromtimestamp(epoch_s, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
