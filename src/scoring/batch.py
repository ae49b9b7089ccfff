"""Batch scoring on one machine: every reading of a fleet's files, through the service's code.

Each module's whole series, sorted, goes through `PredictionService.predict` as part of one
`ReadingBatch` with history off. The features of a reading then use its module's earlier
readings in the batch, exactly what the service's history store would have handed it had
the readings been posted one at a time (tests/test_scoring.py checks this against
`/predict`). Several modules share a call, to amortise its fixed cost; a module's series
is never split across calls, so its features are exact, and the readings per call are
bounded so a big fleet never sits in memory as one feature matrix.

The output columns come from the `Predictions` dataclass itself: every field holding one
value per reading becomes a column, so a field added there appears here unchanged. Two are
written as `/predict` answers them: `level` by name (normal, warning, alarm, unknown), and
followed by `hazardous` (the level is alarm).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from src.data.signals import SIGNAL_NAMES
from src.levels import LEVEL_NAMES
from src.readings import ReadingBatch
from src.services.prediction_service import Predictions, PredictionService
from src.settings import Settings

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("module_id", "timestamp_s")
"""What identifies a reading; the scores are sorted by these."""

INPUT_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *SIGNAL_NAMES)
"""What scoring reads of the telemetry frame (read_telemetry gives these, and more)."""

CHEMISTRY_COLUMN = "chemistry"
"""Read too when the frame has it: a reading's chemistry, as a client may send it."""

MODEL_VERSION_COLUMN = "model_version"

DEFAULT_CHUNK_READINGS = 200_000
"""Readings per predict call: the features of 200,000 readings are about 100 MB of
float64, and calls that large already spend nearly all their time in the features and
the trees rather than in the per-call overhead."""

Progress = Callable[[int, int], None]
"""progress(readings_done, modules_done), called after each chunk."""


def scoring_settings(settings: Settings) -> Settings:
    """The settings for batch scoring: history off, since the batch itself is each
    reading's history, and XGBoost (the model of record) for every call. ONNX pays off
    only for calls of a few readings; with it, a short module's scores would depend on
    whether it was scored alone (Spark) or among others (here), by up to ONNX_TOLERANCE.
    No explanations: the scores are one value per column, and a backtest's thousands of
    warnings would pay for contributions nobody reads."""
    return settings.model_copy(update={"history": False, "onnx_max_rows": 0, "explain_top": 0})


def load_scoring_service(settings: Settings) -> PredictionService:
    """A loaded service for the settings' run, history off; raises ModelLoadError."""
    service = PredictionService(scoring_settings(settings))
    service.load()
    return service


def reading_batch(frame: pd.DataFrame) -> ReadingBatch:
    """The frame's readings as the service's input type (rows in the frame's order), with
    each reading's chemistry when the frame has the column (missing ones: None, so the
    service falls back to HVS_CHEMISTRY as it does for a reading posted without one)."""
    chemistry = None
    if CHEMISTRY_COLUMN in frame.columns:
        given = [v if isinstance(v, str) and v else None for v in frame[CHEMISTRY_COLUMN]]
        chemistry = given if any(given) else None
    return ReadingBatch(
        module_ids=frame["module_id"].to_numpy(dtype=object),
        timestamps_s=frame["timestamp_s"].to_numpy(dtype=np.float64),
        signals=frame[list(SIGNAL_NAMES)].to_numpy(dtype=np.float64),
        chemistry=chemistry,
    )


def prediction_columns(predictions: Predictions, n_readings: int) -> dict[str, np.ndarray]:
    """Every per-reading field of predictions, in the dataclass's order, plus model_version.

    A field is per-reading when it is an array or a list of n_readings values. Values that
    are not scalars (a reading's reasons, say) are written as JSON text, so that CSV,
    Parquet and Spark all carry the same column. `level` is written by name and followed
    by `hazardous`, as /predict answers them. `explanations` is left out: batch scoring
    never computes them (scoring_settings), so it would be a column of nulls.
    """
    columns: dict[str, np.ndarray] = {}
    for field in dataclasses.fields(predictions):
        if field.name == "explanations":
            continue
        value = getattr(predictions, field.name)
        if isinstance(value, list) and len(value) == n_readings:
            value = _object_array(value)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n_readings:
            if field.name == "level":
                columns["level"] = np.asarray(LEVEL_NAMES, dtype=object)[value]
                columns["hazardous"] = np.asarray(predictions.hazardous, dtype=bool)
            else:
                columns[field.name] = _plain(value)
    columns[MODEL_VERSION_COLUMN] = np.full(n_readings, predictions.model_version, dtype=object)
    return columns


def _object_array(values: list[Any]) -> np.ndarray:
    """A list as a 1-d object array, even when its items are tuples."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _plain(values: np.ndarray) -> np.ndarray:
    """values as a column of scalars: numbers and booleans as they are, others as text."""
    if values.ndim > 1:
        return np.array([json.dumps(row.tolist()) for row in values], dtype=object)
    if values.dtype.kind in "biuf":
        return values
    return np.array(
        [v if isinstance(v, str) or v is None else _json_text(v) for v in values], dtype=object
    )


def _json_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=str)


def sorted_readings(telemetry: pd.DataFrame) -> pd.DataFrame:
    """The readings scoring needs (and their chemistry, when given), sorted by (module_id,
    timestamp_s), index 0..n-1."""
    missing = [name for name in INPUT_COLUMNS if name not in telemetry.columns]
    if missing:
        raise ValueError(
            f"the telemetry frame lacks {', '.join(missing)}; read the files with "
            "src.data.telemetry_files.read_telemetry"
        )
    columns = list(INPUT_COLUMNS)
    if CHEMISTRY_COLUMN in telemetry.columns:
        columns.append(CHEMISTRY_COLUMN)
    frame = telemetry.loc[:, columns]
    frame = frame.sort_values(list(KEY_COLUMNS), kind="stable", ignore_index=True)
    return frame


def score_modules(service: PredictionService, readings: pd.DataFrame) -> pd.DataFrame:
    """Scores of the whole series of one or more modules, in one predict call.

    readings must hold every reading of each of its modules (a series cut short gives its
    first readings less history than they had). The result is sorted by (module_id,
    timestamp_s): the key columns, then prediction_columns.
    """
    frame = sorted_readings(readings)
    predictions = service.predict(reading_batch(frame))
    scores = pd.DataFrame(
        {
            "module_id": frame["module_id"].to_numpy(dtype=object),
            "timestamp_s": frame["timestamp_s"].to_numpy(dtype=np.float64),
        }
    )
    for name, values in prediction_columns(predictions, len(frame)).items():
        scores[name] = values
    return scores


def module_chunks(frame: pd.DataFrame, max_readings: int) -> Iterator[pd.DataFrame]:
    """Consecutive slices of a frame sorted by module, each of whole modules and at most
    max_readings rows, except a single module longer than that, which is a chunk alone."""
    if max_readings < 1:
        raise ValueError("max_readings must be at least 1")
    modules = frame["module_id"].to_numpy(dtype=object)
    if len(modules) == 0:
        return
    # Row positions where a new module begins, and the end.
    starts = np.flatnonzero(np.r_[True, modules[1:] != modules[:-1]])
    bounds = np.r_[starts, len(modules)]
    begin = 0
    for index in range(1, len(bounds)):
        end = int(bounds[index])
        if end - begin > max_readings and bounds[index - 1] > begin:
            cut = int(bounds[index - 1])
            yield frame.iloc[begin:cut]
            begin = cut
    yield frame.iloc[begin:]


def score_telemetry(
    service: PredictionService,
    telemetry: pd.DataFrame,
    *,
    chunk_readings: int = DEFAULT_CHUNK_READINGS,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Scores of every reading of a telemetry frame (read_telemetry's), one row each, in
    (module_id, timestamp_s) order. The service must have history off: with it on, the
    readings would also be written to, and mixed with, its store."""
    if service.settings.history:
        raise ValueError(
            "score with history off (load_scoring_service does): the batch holds each "
            "module's whole series already"
        )
    frame = sorted_readings(telemetry)
    parts = []
    done_readings = done_modules = 0
    for chunk in module_chunks(frame, chunk_readings):
        parts.append(score_modules(service, chunk))
        done_readings += len(chunk)
        done_modules += chunk["module_id"].nunique()
        if progress is not None:
            progress(done_readings, done_modules)
    if not parts:
        raise ValueError("the telemetry frame holds no readings to score")
    scores = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    logger.info(
        "scored %d readings of %d modules in %d call(s)", len(scores), done_modules, len(parts)
    )
    return scores


def write_scores(scores: pd.DataFrame, path: Any) -> None:
    """scores as Parquet or CSV, by the file's suffix (.parquet, .pq or .csv)."""
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix in ("parquet", "pq"):
        scores.to_parquet(path, index=False)
    elif suffix == "csv":
        # Shortest round-trip decimals (the exporter's convention): reads back identical.
        scores.to_csv(path, index=False, float_format=None)
    else:
        raise ValueError(f"{path}: write scores to a .parquet or .csv file")
