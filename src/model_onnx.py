"""An ONNX copy of the booster, for the service's small requests (training and serving).

XGBoost's `inplace_predict` has a per-call floor of a few hundred microseconds whatever
the tree count; onnxruntime scores one row of the same trees in about 16 us. The booster
stays the model of record: the copy is logged beside it only when it gives the booster's
probabilities (within ONNX_TOLERANCE) on the held-out test rows, and the service checks
that again when it loads it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xgboost as xgb

logger = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-5
ONNX_INPUT = "input"
ONNX_PROBABILITIES = "probabilities"
ONNX_OPSET = 15


def export_onnx(booster: xgb.Booster, check_rows: np.ndarray) -> tuple[bytes, float] | None:
    """The booster as ONNX bytes and its largest probability difference on check_rows.

    None when the converter is not installed, fails, or disagrees with the booster.
    """
    try:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        logger.warning("onnxmltools is not installed: no ONNX copy of the model")
        return None
    try:
        model = convert_xgboost(
            booster,
            initial_types=[(ONNX_INPUT, FloatTensorType([None, booster.num_features()]))],
            target_opset=ONNX_OPSET,
        )
    except Exception as error:  # the converter's errors have no common base
        logger.warning("ONNX conversion failed, serving will use XGBoost only: %s", error)
        return None
    payload = model.SerializeToString()
    difference = max_difference(onnx_session(payload), booster, check_rows)
    if difference > ONNX_TOLERANCE:
        logger.warning(
            "the ONNX copy differs from the booster by %.2e (> %.0e): not logged",
            difference,
            ONNX_TOLERANCE,
        )
        return None
    return payload, difference


def onnx_session(payload: bytes) -> Any:
    """An onnxruntime session on one thread, as each gunicorn worker runs it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session: Any, rows: np.ndarray) -> np.ndarray:
    """Probability of the positive class; XGBoost also scores on float32 inputs."""
    (probabilities,) = session.run(
        [ONNX_PROBABILITIES], {ONNX_INPUT: np.ascontiguousarray(rows, dtype=np.float32)}
    )
    return np.asarray(probabilities[:, 1], dtype=np.float64)


def max_difference(session: Any, booster: xgb.Booster, rows: np.ndarray) -> float:
    """Largest gap between the ONNX copy's and the booster's probabilities on rows."""
    expected = booster.inplace_predict(rows)
    return float(np.max(np.abs(onnx_probabilities(session, rows) - expected)))
