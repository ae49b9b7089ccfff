"""The model runtime: load one training run, then score batches of raw readings.

No Flask here: a script, a test or a benchmark can use it without a server. The request
path is numpy end to end: features on arrays, the scaler's affine transform on arrays,
then the run's ONNX copy on onnxruntime for a few rows or XGBoost's `inplace_predict` for
more, each with one deliberate thread.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import ModelLoadError, ModelNotReadyError
from src.features.engineering import FEATURE_NAMES, compute_features
from src.model_artifacts import (
    BASELINE_FILE,
    MODEL_FILE,
    ONNX_FILE,
    SCALER_FILE,
    SERVING_CONFIG_FILE,
    read_json,
    verify_manifest,
)
from src.model_onnx import ONNX_TOLERANCE, max_difference, onnx_probabilities, onnx_session
from src.services.model_store import RunLocation, locate_run
from src.settings import ServiceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadingBatch:
    """Raw readings as arrays: what the API hands the service, whatever the wire format."""

    module_ids: Sequence[str]
    timestamps_s: np.ndarray
    """Epoch seconds, float64, shape (n,)."""
    signals: np.ndarray
    """float64, shape (n, len(SIGNAL_NAMES)), NaN where a sensor reported nothing."""

    def __len__(self) -> int:
        return int(self.timestamps_s.shape[0])


@dataclass(frozen=True)
class Predictions:
    hazard_probability: np.ndarray
    hazardous: np.ndarray


@dataclass(frozen=True)
class LoadedModel:
    """Everything one run contributes to serving, immutable once loaded."""

    run_id: str
    booster: Any
    scale_mean: np.ndarray
    scale_inverse_std: np.ndarray
    feature_columns: np.ndarray
    """Positions in FEATURE_NAMES of the run's logged feature list, in its order."""
    feature_names: tuple[str, ...]
    threshold: float
    serving_config: dict[str, Any]
    location: RunLocation
    load_seconds: float
    onnx_session: Any = None
    """onnxruntime session of the run's ONNX copy, used for requests of few readings."""
    onnx_max_rows: int = 0


class PredictionService:
    """Holds the loaded model; `ready` turns true after load and a warm-up prediction."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._model: LoadedModel | None = None
        self._load_error: str | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            if self._load_error:
                raise ModelLoadError(self._load_error)
            raise ModelNotReadyError("the model is still loading; retry when /ready answers 200")
        return self._model

    def load(self) -> LoadedModel:
        """Load the configured run, warm it up and make it the served model."""
        with self._lock:
            started = time.perf_counter()
            try:
                model = _load_run(self._settings)
                _warm_up(model)
            except ModelLoadError as error:
                self._load_error = error.message
                raise
            except Exception as error:  # an unreadable pickle, a corrupt booster, ...
                self._load_error = (
                    f"loading run {self._settings.best_mlflow_run_id} failed: "
                    f"{type(error).__name__}: {error}"
                )
                raise ModelLoadError(self._load_error) from error
            model = replace(model, load_seconds=time.perf_counter() - started)
            self._model = model
            self._load_error = None
            logger.info(
                "model ready",
                extra={
                    "run_id": model.run_id,
                    "load_seconds": round(model.load_seconds, 3),
                    "threshold": model.threshold,
                    "features": len(model.feature_names),
                },
            )
            return model

    def predict(self, batch: ReadingBatch) -> Predictions:
        return score(self.model, batch)


def score(model: LoadedModel, batch: ReadingBatch) -> Predictions:
    features = compute_features(batch.module_ids, batch.timestamps_s, batch.signals)
    scaled = (features[:, model.feature_columns] - model.scale_mean) * model.scale_inverse_std
    probabilities = predict_scaled(model, scaled)
    return Predictions(probabilities, probabilities >= model.threshold)


def predict_scaled(model: LoadedModel, scaled: np.ndarray) -> np.ndarray:
    """Probabilities from the runtime that is fastest for this many rows."""
    if model.onnx_session is not None and scaled.shape[0] <= model.onnx_max_rows:
        return onnx_probabilities(model.onnx_session, scaled)
    return np.asarray(model.booster.inplace_predict(scaled), dtype=np.float64)


def _load_run(settings: ServiceSettings) -> LoadedModel:
    location = locate_run(
        settings.mlflow_tracking_uri, settings.best_mlflow_run_id, settings.model_artifact_name
    )
    if settings.verify_digests:
        verify_manifest(location.artifacts_dir, location.model_dir)
    config = read_json(location.artifacts_dir / SERVING_CONFIG_FILE)
    feature_names = tuple(config.get("feature_names", ()))
    unknown = [name for name in feature_names if name not in FEATURE_NAMES]
    if not feature_names or unknown:
        raise ModelLoadError(
            f"run {location.run_id} was trained on features this service cannot compute "
            f"({unknown or 'none listed'}); serve it with the code version that trained it"
        )
    if tuple(config.get("signal_names", ())) != SIGNAL_NAMES:
        raise ModelLoadError(
            f"run {location.run_id} expects the raw signals {config.get('signal_names')}, "
            f"this service reads {list(SIGNAL_NAMES)}"
        )
    scale_mean, scale_inverse_std = _load_scaler(location, config, len(feature_names))
    booster = _load_booster(location, settings.xgboost_nthread, len(feature_names))
    session = (
        _load_onnx(location, booster, scale_mean, scale_inverse_std, feature_names)
        if settings.onnx_max_rows > 0
        else None
    )
    return LoadedModel(
        run_id=location.run_id,
        booster=booster,
        scale_mean=scale_mean,
        scale_inverse_std=scale_inverse_std,
        feature_columns=np.array([FEATURE_NAMES.index(n) for n in feature_names]),
        feature_names=feature_names,
        threshold=float(config["threshold"]),
        serving_config=config,
        location=location,
        load_seconds=0.0,
        onnx_session=session,
        onnx_max_rows=settings.onnx_max_rows if session is not None else 0,
    )


def _load_scaler(
    location: RunLocation, config: dict[str, Any], n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted StandardScaler as the arrays of its affine transform.

    Runs record it in serving_config.json as plain numbers: nothing to unpickle, and no
    scikit-learn to import (which took ~1 s of every worker's start). Runs trained before
    that have only scaler.joblib, unpickled (after its digest check) where scikit-learn
    is installed."""
    check_scaler_readable(location.run_id, config)
    recorded = config.get("scaler")
    if recorded is None:
        source = location.artifacts_dir / SCALER_FILE
        mean, scale = _unpickle_scaler(source)
    else:
        source = location.artifacts_dir / SERVING_CONFIG_FILE
        try:
            mean = np.asarray(recorded["mean"], dtype=np.float64)
            scale = np.asarray(recorded["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(
                f'the "scaler" in {source} is not two lists of numbers ({error!r}); '
                "re-train, or copy the run again from the machine that trained it"
            ) from None
    if mean.shape != (n_features,) or scale.shape != (n_features,):
        raise ModelLoadError(
            f"the scaler in {source} was fitted on {mean.shape} features, the run lists "
            f"{n_features}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ModelLoadError(f"the scaler in {source} has non-finite or non-positive values")
    return mean, 1.0 / scale


def check_scaler_readable(run_id: str, config: dict[str, Any]) -> None:
    """Raise unless this installation can read the run's scaler: recorded in its serving
    config, or (an older run) only pickled, with scikit-learn here to unpickle it. Cheap
    and import-free, so gunicorn's master can refuse such a run before forking."""
    if config.get("scaler") is not None or importlib.util.find_spec("sklearn") is not None:
        return
    raise ModelLoadError(
        f"run {run_id} records its scaler only as {SCALER_FILE} (it was trained before "
        f"{SERVING_CONFIG_FILE} carried the scaler), and unpickling that needs scikit-learn, "
        "which this installation does not have (the image installs none): re-train with "
        "this version (`make train`), or serve this run where scikit-learn is installed"
    )


def _unpickle_scaler(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import joblib

    if not path.is_file():
        raise ModelLoadError(f"the scaler was not found at {path}")
    scaler = joblib.load(path)
    return (
        np.asarray(getattr(scaler, "mean_", None), dtype=np.float64),
        np.asarray(getattr(scaler, "scale_", None), dtype=np.float64),
    )


def _load_booster(location: RunLocation, nthread: int, n_features: int) -> Any:
    import xgboost as xgb

    path = location.model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"the XGBoost model file was not found at {path}")
    booster = xgb.Booster(params={"nthread": nthread}, model_file=str(path))
    if booster.num_features() != n_features:
        raise ModelLoadError(
            f"the model at {path} takes {booster.num_features()} features, the run lists "
            f"{n_features}"
        )
    return booster


def _load_onnx(
    location: RunLocation,
    booster: Any,
    scale_mean: np.ndarray,
    scale_inverse_std: np.ndarray,
    feature_names: tuple[str, ...],
) -> Any:
    """The run's ONNX copy if it has one and it still gives the booster's probabilities.

    Checked on the training baseline's quantile rows and on a row of missing values (the
    digest only proves the file is the one training wrote). Any problem means XGBoost
    serves every request, with a warning: the booster is the model of record.
    """
    path = location.artifacts_dir / ONNX_FILE
    if not path.is_file():
        return None
    try:
        payload = path.read_bytes()
        session = onnx_session(payload)
    except ImportError:
        logger.warning("onnxruntime is not installed: XGBoost scores every request")
        return None
    except Exception as error:  # a file onnxruntime cannot load
        logger.warning("the run's ONNX model cannot be loaded (%s): XGBoost scores all", error)
        return None
    baseline = read_json(location.artifacts_dir / BASELINE_FILE)["features"]
    rows = np.array(
        [
            [baseline[name]["quantiles"][level] for name in feature_names]
            for level in range(len(baseline[feature_names[0]]["quantiles"]))
        ]
        + [[np.nan] * len(feature_names)]
    )
    scaled = (rows - scale_mean) * scale_inverse_std
    difference = max_difference(session, booster, scaled)
    if not difference <= ONNX_TOLERANCE:
        logger.warning(
            "the run's ONNX model differs from the booster by %.2e: XGBoost scores all",
            difference,
        )
        return None
    return session


def _warm_up(model: LoadedModel) -> None:
    """One prediction on typical healthy readings, so the first request is not the slow one."""
    # Two sizes: the ONNX path (if any) and the XGBoost path both run once before traffic.
    for size in (2, max(model.onnx_max_rows + 1, 2)):
        references = np.array([[s.reference for s in SIGNALS]] * size)
        batch = ReadingBatch(["warm-up"] * size, 10.0 * np.arange(size), references)
        probabilities = score(model, batch).hazard_probability
        if not np.all(np.isfinite(probabilities)):
            raise ModelLoadError("the warm-up prediction was not a finite probability")
