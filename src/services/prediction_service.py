"""The model runtime: load one training run's model and scaler, then score batches of readings.

No Flask here: a script, a test or a benchmark can use it without a server. The request
path is numpy end to end: features on arrays, the scaler's affine transform on arrays,
then the run's ONNX copy on onnxruntime for a few rows or XGBoost's `inplace_predict` for
more, each with one deliberate thread. Reading and checking the run's files is
`model_loader`'s job, shared with gunicorn's start-up check.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import ModelLoadError, ModelNotReadyError
from src.features.engineering import FEATURE_NAMES, chemistry_codes, compute_features
from src.levels import (
    ALARM,
    WARNING,
    Thresholds,
    combine,
    guard_hits,
    missing_groups,
    model_levels,
    previous_readings,
)
from src.model_artifacts import BASELINE_FILE, MODEL_FILE, ONNX_FILE, read_json
from src.model_onnx import ONNX_TOLERANCE, max_difference, onnx_probabilities, onnx_session
from src.readings import ReadingBatch
from src.services.drift import DriftWindow
from src.services.explanations import Explainer, Explanation
from src.services.history import HistorySource, HistoryStore, ModuleHistory, history_extent
from src.services.metrics import PredictionMetrics
from src.services.model_loader import RunArtifacts, load_run_artifacts
from src.services.model_store import ModelTarget
from src.settings import Settings

logger = logging.getLogger(__name__)

DRIFT_PUBLISH_S = 1.0
"""Drift gauges are refreshed at most this often per worker."""

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
"""A worker that cannot load its model tries again after 1, 2, 4, ... up to 30 s."""


@dataclass(frozen=True)
class Predictions:
    """What the service answered for a batch, in the batch's order: the model's
    probability, the level (model, guards and data quality together) and why, which model
    it was, and how much of each module's history the answer rests on."""

    model_version: str
    thresholds: Thresholds
    hazard_probability: np.ndarray
    level: np.ndarray
    """levels.NORMAL, WARNING, ALARM or UNKNOWN per reading (int8)."""
    reasons: list[tuple[str, ...]]
    missing: list[tuple[str, ...]]
    """The key signal groups each reading lacks (then `unknown`, unless it alarms anyway)."""
    history_s: np.ndarray
    """Seconds back to the oldest earlier reading of the module its features used."""
    history_readings: np.ndarray
    """How many earlier readings of the module its features used."""
    history_source: HistorySource
    """`store`: the module's stored history and the request; `request`: the request alone
    (history off, or the store unavailable)."""
    explanations: list[Explanation | None]
    """Per reading, its top contributing signals, or None: computed only for readings at
    warning or alarm and, when the caller asked, for all (settings.explain_top > 0)."""

    @property
    def hazardous(self) -> np.ndarray:
        """`alarm`, as a bool per reading."""
        return self.level == ALARM

    def select(self, rows: np.ndarray) -> Predictions:
        """These readings' answers, in this order (rows may repeat)."""
        return replace(
            self,
            hazard_probability=self.hazard_probability[rows],
            level=self.level[rows],
            reasons=[self.reasons[i] for i in rows],
            missing=[self.missing[i] for i in rows],
            history_s=self.history_s[rows],
            history_readings=self.history_readings[rows],
            explanations=[self.explanations[i] for i in rows],
        )


@dataclass(frozen=True)
class LoadedModel:
    """Everything one run contributes to serving, immutable once loaded. Its three stages
    are public so that a profile can time them one by one."""

    artifacts: RunArtifacts
    booster: Any
    scale_mean: np.ndarray
    scale_inverse_std: np.ndarray
    feature_columns: np.ndarray
    """Positions in FEATURE_NAMES of the run's logged feature list, in its order."""
    onnx_session: Any
    """onnxruntime session of the run's ONNX copy, used for requests of few readings."""
    onnx_max_rows: int
    explainer: Explainer
    """The booster's contributions, grouped by raw signal (explanations)."""
    load_seconds: float = 0.0
    baseline: dict[str, Any] | None = None
    """The run's baseline.json: the training distribution drift is measured against."""
    threshold_override: Thresholds | None = None
    """The operator's HVS_WARNING_THRESHOLD / HVS_ALARM_THRESHOLD merged with the run's."""

    @property
    def run_id(self) -> str:
        return self.artifacts.location.run_id

    @property
    def trained_thresholds(self) -> Thresholds:
        configured = self.artifacts.config.thresholds
        return Thresholds(warning=configured.warning, alarm=configured.alarm)

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds answers use: the override if any, else the run's."""
        return self.threshold_override or self.trained_thresholds

    def all_features(self, batch: ReadingBatch, chemistry: np.ndarray | None = None) -> np.ndarray:
        """Every FEATURE_NAMES column of every reading; chemistry: the codes of each
        reading's chemistry (default: as the batch gives them, else unknown)."""
        if chemistry is None:
            chemistry = chemistry_codes(batch.chemistry, len(batch))
        return compute_features(batch.module_ids, batch.timestamps_s, batch.signals, chemistry)

    def features(self, batch: ReadingBatch, chemistry: np.ndarray | None = None) -> np.ndarray:
        """The run's features of every reading, in the run's order."""
        return self.all_features(batch, chemistry)[:, self.feature_columns]

    def scale(self, features: np.ndarray) -> np.ndarray:
        return (features - self.scale_mean) * self.scale_inverse_std

    def probabilities(self, scaled: np.ndarray) -> np.ndarray:
        """Probabilities from the runtime that is fastest for this many rows."""
        if self.onnx_session is not None and scaled.shape[0] <= self.onnx_max_rows:
            return onnx_probabilities(self.onnx_session, scaled)
        return np.asarray(self.booster.inplace_predict(scaled), dtype=np.float64)

    def score(self, batch: ReadingBatch) -> np.ndarray:
        return self.probabilities(self.scale(self.features(batch)))

    def describe(self) -> dict[str, Any]:
        """What /model shows: which run, its contract and what training measured."""
        location, config = self.artifacts.location, self.artifacts.config
        registered = location.registered
        return {
            "model_version": self.run_id,
            "model_uri": location.source,
            "registered_model": None
            if registered is None
            else {
                "name": registered.name,
                "version": registered.version,
                "alias": registered.alias,
            },
            "experiment_id": location.experiment_id,
            "thresholds": {
                "warning": self.thresholds.warning,
                "alarm": self.thresholds.alarm,
                "source": "training" if self.threshold_override is None else "override",
                "trained": {
                    "warning": config.thresholds.warning,
                    "alarm": config.thresholds.alarm,
                },
            },
            "absent_signals": list(config.absent_signals),
            "feature_names": list(config.feature_names),
            "feature_set_version": config.feature_set_version,
            "hazard_horizon_s": config.hazard_horizon_s,
            "code_version": config.code_version,
            "training_metrics": location.metrics,
            "training_params": location.params,
            "load_seconds": round(self.load_seconds, 4),
            "onnx_max_rows": self.onnx_max_rows,
        }


class PredictionService:
    """Loads the configured run, then predicts over each module's history; observes its own
    metrics when given some."""

    def __init__(
        self,
        settings: Settings,
        metrics: PredictionMetrics | None = None,
        history: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._absent = frozenset(settings.absent_signals)
        self._absent_columns = np.array(
            [SIGNAL_NAMES.index(name) for name in settings.absent_signals], dtype=np.int64
        )
        if metrics is None:
            self._history = ModuleHistory(history)
        else:
            self._history = ModuleHistory(
                history,
                on_state=lambda up: metrics.history_store_up.set(1 if up else 0),
                on_fallback=metrics.history_fallbacks.inc,
                on_evicted=metrics.history_evictions.inc,
            )
        self._model: LoadedModel | None = None
        self._drift: tuple[LoadedModel, DriftWindow] | None = None
        self._drift_published = 0.0
        self._load_error: str | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def _load_failed(self, message: str) -> None:
        if self._model is None:
            self._load_error = message
        if self._metrics is not None:
            self._metrics.model_load_failures.inc()

    @property
    def load_error(self) -> str | None:
        """Why the last load failed, or None."""
        return self._load_error

    @property
    def model(self) -> LoadedModel:
        """The loaded model, or the error a client should get while there is none."""
        if self._model is None:
            if self._load_error:
                raise ModelLoadError(self._load_error)
            raise ModelNotReadyError("the model is still loading; retry when /ready answers 200")
        return self._model

    def load(self, target: ModelTarget | None = None) -> LoadedModel:
        """Load the configured model (or target, what an alias now points at), check and
        warm it up, then make it the served model. Requests keep using the one served so
        far until the swap; a failure leaves it serving and raises ModelLoadError."""
        with self._lock:
            started = time.perf_counter()
            try:
                model = _load_model(self.settings, target)
                _warm_up(model)
            except ModelLoadError as error:
                self._load_failed(error.message)
                raise
            except Exception as error:  # a corrupt booster, an unreadable file, ...
                message = (
                    f"loading {target.source if target else self.settings.model_source} "
                    f"failed: {type(error).__name__}: {error}"
                )
                self._load_failed(message)
                raise ModelLoadError(message) from error
            model = replace(model, load_seconds=time.perf_counter() - started)
            self._drift = self._drift_window(model)
            self._model = model  # one reference swap: a request holds the model it began with
            self._load_error = None
        registered = model.artifacts.location.registered
        logger.info(
            "model ready",
            extra={
                "run_id": model.run_id,
                "model_uri": model.artifacts.location.source,
                "registered_version": None if registered is None else registered.version,
                "load_seconds": round(model.load_seconds, 3),
                "warning_threshold": model.thresholds.warning,
                "alarm_threshold": model.thresholds.alarm,
                "features": len(model.feature_columns),
            },
        )
        if self._metrics is not None:
            self._metrics.observe_model_loaded(model.artifacts.location, model.load_seconds)
        return model

    def served_target_key(self) -> tuple[str, str | None] | None:
        """(run id, registered version) of the served model, None before one is loaded:
        what src/services/model_watch.py compares an alias's target with."""
        model = self._model
        if model is None:
            return None
        registered = model.artifacts.location.registered
        return (model.run_id, None if registered is None else registered.version)

    def keep_trying(self) -> threading.Thread:
        """Load in the background until it works (the store comes back), with backoff;
        meanwhile /ready answers 503 and requests get model_unavailable."""

        def retry() -> None:
            delay = RETRY_FIRST_S
            while self._model is None and not self._closed.wait(delay):
                try:
                    self.load()
                except ModelLoadError as error:
                    logger.warning("model load failed again, retrying in %.0f s: %s", delay, error)
                    delay = min(2 * delay, RETRY_MAX_S)

        thread = threading.Thread(target=retry, name="model-load-retry", daemon=True)
        thread.start()
        return thread

    def predict(
        self,
        batch: ReadingBatch,
        timings: dict[str, float] | None = None,
        explain_all: bool = False,
    ) -> Predictions:
        """Score the batch; its readings join their modules' history (when it is on). A
        reading repeated in the batch is scored once, and each copy answered alike.
        Readings at warning or alarm are explained, and all of them with explain_all
        (none when settings.explain_top is 0).
        timings: when given, filled with the CPU seconds of each stage (the profile's)."""
        if batch.repeats is None:
            return self._predict(batch, timings, explain_all)
        originals = np.flatnonzero(batch.repeats < 0)
        answered = self._predict(batch.select(originals), timings, explain_all)
        position = np.empty(len(batch), dtype=np.int64)
        position[originals] = np.arange(originals.size)
        repeated = batch.repeats >= 0
        position[repeated] = position[batch.repeats[repeated]]
        return answered.select(position)

    def _predict(
        self, batch: ReadingBatch, timings: dict[str, float] | None, explain_all: bool
    ) -> Predictions:
        lap = _Laps(timings)
        model = self.model
        batch = self._without_absent(batch)
        context = self._history.context(batch)
        history_s, history_readings = history_extent(context.batch, len(batch))
        lap("history")
        n_request = len(batch)
        chemistry = self._chemistry(batch, context.batch)
        every = model.all_features(context.batch, chemistry)
        lap("features")
        scaled = model.scale(every[:n_request, model.feature_columns])
        lap("scale")
        probabilities = model.probabilities(scaled)
        lap("predict")
        previous = previous_readings(context.batch.module_ids, context.batch.timestamps_s)
        levels = combine(
            model_levels(probabilities, model.thresholds),
            guard_hits(every, chemistry, previous)[:n_request],
            missing_groups(batch.signals, self._absent),
        )
        lap("levels")
        explanations = self._explain(model, levels.level, scaled, every, explain_all)
        lap("explain")
        if self._metrics is not None:
            self._metrics.observe_predictions(probabilities, levels)
            self._metrics.observe_history(history_s)
        lap("metrics")
        self._observe_drift(model, every[:n_request])
        lap("drift")
        return Predictions(
            model_version=model.run_id,
            thresholds=model.thresholds,
            hazard_probability=probabilities,
            level=levels.level,
            reasons=levels.reasons,
            missing=levels.missing,
            history_s=history_s,
            history_readings=history_readings,
            history_source=context.source,
            explanations=explanations,
        )

    def _explain(
        self,
        model: LoadedModel,
        level: np.ndarray,
        scaled: np.ndarray,
        every: np.ndarray,
        explain_all: bool,
    ) -> list[Explanation | None]:
        """Explanations of the readings that asked or alarmed, None for the others: the
        contributions cost about as much as the trees' scoring, so most readings skip it."""
        top = self.settings.explain_top
        explanations: list[Explanation | None] = [None] * len(level)
        if top == 0:
            return explanations
        if explain_all:
            rows = np.arange(len(level))
        else:
            rows = np.flatnonzero((level == WARNING) | (level == ALARM))
            if not rows.size:
                return explanations
        for row, explanation in zip(
            rows.tolist(), model.explainer.explain(scaled[rows], every[rows], top), strict=True
        ):
            explanations[row] = explanation
        return explanations

    def _drift_window(self, model: LoadedModel) -> tuple[LoadedModel, DriftWindow] | None:
        """A fresh window against this model's baseline (a new run: a new reference)."""
        size = self.settings.drift_window_readings
        if size == 0 or model.baseline is None or self._metrics is None:
            return None  # off, an older run, or nobody to publish to (batch scoring)
        known = model.baseline.get("features", {})
        signals = [n for n in SIGNAL_NAMES if n in known and n not in self._absent]
        columns = [FEATURE_NAMES.index(n) for n in signals]
        try:
            return model, DriftWindow(model.baseline, signals, columns, size)
        except (ValueError, KeyError, TypeError) as error:  # an older run's baseline
            logger.warning("no drift figures for run %s: %s", model.run_id, error)
            return None

    def _observe_drift(self, model: LoadedModel, features: np.ndarray) -> None:
        drift = self._drift
        if drift is None or drift[0] is not model:
            return
        drift[1].observe(features)
        now = time.monotonic()
        # Publishing writes 2 gauges per signal to the metrics files: once a second is
        # plenty for a 15 s scrape, and keeps that cost off most requests.
        if now - self._drift_published >= DRIFT_PUBLISH_S:
            self._drift_published = now
            assert self._metrics is not None  # no window is made without them
            self._metrics.observe_drift(drift[1].figures())

    def _without_absent(self, batch: ReadingBatch) -> ReadingBatch:
        """Signals the site declared absent are missing, whatever a gateway sends for them:
        the run was trained and judged without them."""
        if not self._absent_columns.size:
            return batch
        signals = batch.signals.copy()
        signals[:, self._absent_columns] = np.nan
        return replace(batch, signals=signals)

    def close(self) -> None:
        """Stop retrying a load, and close the history store."""
        self._closed.set()
        self._history.close()

    def _chemistry(self, batch: ReadingBatch, context: ReadingBatch) -> np.ndarray:
        """Each row's chemistry code: the reading's, else the site's (HVS_CHEMISTRY); the
        stored rows of a module take its request rows' (they only give context)."""
        default = self.settings.chemistry
        given = batch.chemistry or [None] * len(batch)
        names = [name or default for name in given]
        if len(context) > len(batch):
            of_module = dict(zip(batch.module_ids, names, strict=True))
            names += [of_module[module] for module in context.module_ids[len(batch) :]]
        return chemistry_codes(names, len(context))

    def describe(self) -> dict[str, Any]:
        return self.model.describe()


class _Laps:
    """Stage timer for predict(): records CPU seconds per stage into a dict, or nothing."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self._timings = timings
        self._last = time.process_time() if timings is not None else 0.0

    def __call__(self, stage: str) -> None:
        if self._timings is None:
            return
        now = time.process_time()
        self._timings[stage] = self._timings.get(stage, 0.0) + now - self._last
        self._last = now


def _load_model(settings: Settings, target: ModelTarget | None = None) -> LoadedModel:
    artifacts = load_run_artifacts(settings, target)
    try:
        return _read_model(artifacts, settings)
    finally:
        artifacts.location.release()  # every file is read: a server's copy can go


def _read_model(artifacts: RunArtifacts, settings: Settings) -> LoadedModel:
    config = artifacts.config
    assert config.scaler is not None  # load_run_artifacts refuses a run without one
    scale_mean = np.asarray(config.scaler.mean, dtype=np.float64)
    scale_inverse_std = 1.0 / np.asarray(config.scaler.scale, dtype=np.float64)
    booster = _load_booster(artifacts, settings.xgboost_nthread)
    session = None
    if settings.onnx_max_rows > 0:
        session = _load_onnx(artifacts, booster, scale_mean, scale_inverse_std)
    return LoadedModel(
        threshold_override=_threshold_override(config.thresholds, settings),
        artifacts=artifacts,
        booster=booster,
        scale_mean=scale_mean,
        scale_inverse_std=scale_inverse_std,
        feature_columns=np.array([FEATURE_NAMES.index(n) for n in config.feature_names]),
        onnx_session=session,
        onnx_max_rows=settings.onnx_max_rows if session is not None else 0,
        explainer=Explainer(booster, config.feature_names, settings.xgboost_nthread),
        baseline=read_json(artifacts.location.artifacts_dir / BASELINE_FILE),
    )


def _threshold_override(trained: Any, settings: Settings) -> Thresholds | None:
    """The operator's thresholds with the run's filling any left unset, or None; refused
    (ModelLoadError: the old model keeps serving on a reload) when they cross."""
    warning, alarm = settings.warning_threshold, settings.alarm_threshold
    if warning is None and alarm is None:
        return None
    merged = Thresholds(
        warning=trained.warning if warning is None else warning,
        alarm=trained.alarm if alarm is None else alarm,
    )
    if merged.warning > merged.alarm:
        named = "HVS_WARNING_THRESHOLD" if warning is not None else "HVS_ALARM_THRESHOLD"
        raise ModelLoadError(
            f"{named} makes the warning threshold {merged.warning} higher than the alarm "
            f"threshold {merged.alarm} (the run's are warning {trained.warning}, alarm "
            f"{trained.alarm}): set both HVS_WARNING_THRESHOLD and HVS_ALARM_THRESHOLD, "
            "warning below alarm"
        )
    logger.warning(
        "thresholds overridden",
        extra={
            "warning_threshold": merged.warning,
            "alarm_threshold": merged.alarm,
            "trained_warning_threshold": trained.warning,
            "trained_alarm_threshold": trained.alarm,
        },
    )
    return merged


def _load_booster(artifacts: RunArtifacts, nthread: int) -> Any:
    import xgboost as xgb

    path = artifacts.location.model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"the XGBoost model file was not found at {path}")
    booster = xgb.Booster(params={"nthread": nthread}, model_file=str(path))
    n_features = len(artifacts.config.feature_names)
    if booster.num_features() != n_features:
        raise ModelLoadError(
            f"the model at {path} takes {booster.num_features()} features, the run lists "
            f"{n_features}"
        )
    return booster


def _load_onnx(
    artifacts: RunArtifacts, booster: Any, scale_mean: np.ndarray, scale_inverse_std: np.ndarray
) -> Any:
    """The run's ONNX copy if it has one and it still gives the booster's probabilities.

    Checked on the training baseline's quantile rows and on a row of missing values (the
    digest only proves the file is the one training wrote). Any problem means XGBoost
    serves every request, with a warning: the booster is the model of record.
    """
    path = artifacts.location.artifacts_dir / ONNX_FILE
    if not path.is_file():
        return None
    try:
        session = onnx_session(path.read_bytes())
    except ImportError:
        logger.warning("onnxruntime is not installed: XGBoost scores every request")
        return None
    except Exception as error:  # a file onnxruntime cannot load
        logger.warning("the run's ONNX model cannot be loaded (%s): XGBoost scores all", error)
        return None
    feature_names = artifacts.config.feature_names
    baseline = read_json(artifacts.location.artifacts_dir / BASELINE_FILE)["features"]
    rows = np.array(
        [
            [baseline[name]["quantiles"][level] for name in feature_names]
            for level in range(len(baseline[feature_names[0]]["quantiles"]))
        ]
        + [[np.nan] * len(feature_names)]
    )
    difference = max_difference(session, booster, (rows - scale_mean) * scale_inverse_std)
    if not difference <= ONNX_TOLERANCE:
        logger.warning(
            "the run's ONNX model differs from the booster by %.2e: XGBoost scores all",
            difference,
        )
        return None
    return session


def _warm_up(model: LoadedModel) -> None:
    """Predictions on typical healthy readings, so the first request is not the slow one."""
    # Two sizes: the ONNX path (if any) and the XGBoost path both run once before traffic.
    for size in (2, max(model.onnx_max_rows + 1, 2)):
        references = np.array([[s.reference for s in SIGNALS]] * size)
        batch = ReadingBatch(["warm-up"] * size, 10.0 * np.arange(size), references)
        if not np.all(np.isfinite(model.score(batch))):
            raise ModelLoadError("the warm-up prediction was not a finite probability")
    every = model.all_features(batch)
    model.explainer.explain(model.scale(every[:, model.feature_columns]), every, 1)
