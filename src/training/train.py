"""Training as pure stages: simulate, engineer, split, fit, choose threshold, evaluate.

Logging to MLflow lives in `tracking.py`; this module knows nothing of MLflow, so the
stages run the same in a notebook, a test or the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.preprocessing import StandardScaler

from src.data.signals import SIGNAL_NAMES
from src.data.simulator import SimulationConfig, simulate
from src.features.engineering import FEATURE_NAMES, chemistry_codes, compute_features
from src.model_onnx import export_onnx
from src.training.evaluate import choose_threshold, evaluate

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): how far a long stage has come."""

TRUNCATED_HISTORY_S = (0.0, 30.0, 60.0, 120.0, 180.0)
"""Training also sees readings as if only this much of their module's history were known
(a module that has just started posting, a store that has just come back): every
hazardous reading, and a sample of the healthy ones, once per length. Without them "no
history" only ever occurred at the start of healthy series, and read as "healthy"."""

TRUNCATED_HEALTHY_FRACTION = 0.1
"""Share of the healthy training readings added once per truncated history length."""

EVALUATED_HISTORY_S = (0.0, 60.0, 120.0, 300.0)
"""The test set is also scored as if each reading had only this much history: the run
logs how early events are warned when a module has just started posting."""


@dataclass(frozen=True)
class ModelConfig:
    n_estimators: int = 300
    max_depth: int = 5
    learning_rate: float = 0.08
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 2.0
    early_stopping_rounds: int = 40
    n_jobs: int = 2


@dataclass(frozen=True)
class TrainingConfig:
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    target_recall: float = 0.95
    """The threshold is the highest one that keeps this recall on validation readings."""
    seed: int = 7

    def as_params(self) -> dict[str, Any]:
        """Flat parameters for MLflow (`simulation.n_racks`, `model.max_depth`, ...)."""
        params: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                params.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                params[key] = value
        return params


def small_config(seed: int = 7) -> TrainingConfig:
    """A configuration that trains in a few seconds: tests and CI."""
    return TrainingConfig(
        simulation=SimulationConfig(
            n_racks=2,
            modules_per_rack=10,
            duration_s=2 * 3600.0,
            n_fault_events=12,
            seed=seed,
        ),
        model=ModelConfig(n_estimators=80, early_stopping_rounds=20),
        seed=seed,
    )


@dataclass
class TrainingResult:
    booster: xgb.Booster
    """The fitted classifier's trees up to the best validation iteration: the model of record."""
    scaler: StandardScaler
    threshold: float
    feature_names: tuple[str, ...]
    metrics: dict[str, float]
    train_features: np.ndarray
    """Unscaled training features, kept for the drift baseline."""
    test_frame: pd.DataFrame
    test_probabilities: np.ndarray
    onnx_model: bytes | None = None
    """The booster as ONNX, equal to it on the test rows; None if conversion was not possible."""


def features_of(frame: pd.DataFrame, max_history_s: float | None = None) -> np.ndarray:
    """Engineered features for telemetry rows, exactly as the service computes them; with
    max_history_s, as if each reading's module had only that much history."""
    chemistry = None
    if "chemistry" in frame.columns:
        chemistry = chemistry_codes(frame["chemistry"].tolist(), len(frame))
    return compute_features(
        frame["module_id"].to_numpy(),
        frame["timestamp_s"].to_numpy(dtype=np.float64),
        frame[list(SIGNAL_NAMES)].to_numpy(dtype=np.float64),
        chemistry,
        max_history_s=max_history_s,
    )


def fit_scaler(features: np.ndarray) -> StandardScaler:
    """StandardScaler, made total: a feature never seen (all missing, e.g. the chemistry of
    a site that declares none) is centred at 0 and scaled by 1 instead of NaN."""
    scaler = StandardScaler().fit(features)
    scaler.mean_ = np.nan_to_num(scaler.mean_, nan=0.0)
    usable = np.isfinite(scaler.scale_) & (scaler.scale_ > 0)
    scaler.scale_ = np.where(usable, scaler.scale_, 1.0)
    return scaler


def truncated_history_rows(
    frame: pd.DataFrame, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Extra training rows: readings with their history cut to each TRUNCATED_HISTORY_S."""
    extra_features, extra_labels = [], []
    for seconds in TRUNCATED_HISTORY_S:
        chosen = (labels == 1) | (rng.random(labels.size) < TRUNCATED_HEALTHY_FRACTION)
        extra_features.append(features_of(frame, max_history_s=seconds)[chosen])
        extra_labels.append(labels[chosen])
    return np.concatenate(extra_features), np.concatenate(extra_labels)


def predict_probabilities(
    booster: xgb.Booster, scaler: StandardScaler, features: np.ndarray
) -> np.ndarray:
    """The training code's own predictions: the reference the service must reproduce."""
    return booster.inplace_predict(scaler.transform(features))


def split_modules(frame: pd.DataFrame, config: TrainingConfig) -> dict[str, np.ndarray]:
    """Row masks for train/validation/test that keep every module's series in one split.

    Faulty and healthy modules are split separately (stratified) so every split holds
    whole fault events of its own, never seen in training.
    """
    rng = np.random.default_rng(config.seed)
    modules = frame.groupby("module_id", sort=True)["fault_type"].first()
    assignment: dict[str, str] = {}
    for is_faulty in (True, False):
        group = modules[(modules != "none") == is_faulty].index.to_numpy()
        group = group[rng.permutation(len(group))]
        n_test = max(1, round(len(group) * config.test_fraction))
        n_validation = max(1, round(len(group) * config.validation_fraction))
        for position, module_id in enumerate(group):
            if position < n_test:
                assignment[module_id] = "test"
            elif position < n_test + n_validation:
                assignment[module_id] = "validation"
            else:
                assignment[module_id] = "train"
    split_of_row = frame["module_id"].map(assignment).to_numpy()
    return {name: split_of_row == name for name in ("train", "validation", "test")}


def train(config: TrainingConfig, progress: Progress | None = None) -> TrainingResult:
    report = progress or (lambda stage, done, total: None)
    frame = simulate(
        config.simulation, progress=lambda done, total: report("simulate", done, total)
    )
    features = features_of(frame)
    labels = frame["hazardous"].to_numpy(dtype=np.int8)
    masks = split_modules(frame, config)

    train_frame = frame[masks["train"]]
    cold_features, cold_labels = truncated_history_rows(
        train_frame, labels[masks["train"]], np.random.default_rng(config.seed)
    )
    train_features = np.concatenate((features[masks["train"]], cold_features))
    scaler = fit_scaler(train_features)
    scaled = {name: scaler.transform(features[mask]) for name, mask in masks.items()}
    scaled["train"] = scaler.transform(train_features)
    y = {name: labels[mask] for name, mask in masks.items()}
    y["train"] = np.concatenate((labels[masks["train"]], cold_labels))
    positives = max(int(y["train"].sum()), 1)
    model = xgb.XGBClassifier(
        n_estimators=config.model.n_estimators,
        max_depth=config.model.max_depth,
        learning_rate=config.model.learning_rate,
        subsample=config.model.subsample,
        colsample_bytree=config.model.colsample_bytree,
        min_child_weight=config.model.min_child_weight,
        scale_pos_weight=(len(y["train"]) - positives) / positives,
        early_stopping_rounds=config.model.early_stopping_rounds,
        eval_metric="aucpr",
        tree_method="hist",
        n_jobs=config.model.n_jobs,
        random_state=config.seed,
        callbacks=[_ProgressCallback(report, config.model.n_estimators)],
    )
    model.fit(
        scaled["train"],
        y["train"],
        eval_set=[(scaled["validation"], y["validation"])],
        verbose=False,
    )

    # Early stopping keeps growing trees past the best round; drop them so the logged
    # booster predicts exactly what was validated, whoever loads it.
    booster = model.get_booster()[: model.best_iteration + 1]
    validation_probabilities = booster.inplace_predict(scaled["validation"])
    threshold = choose_threshold(y["validation"], validation_probabilities, config.target_recall)
    test_probabilities = booster.inplace_predict(scaled["test"])
    metrics = {
        f"validation_{k}": v
        for k, v in evaluate(
            frame[masks["validation"]], validation_probabilities, threshold
        ).items()
    }
    test_frame = frame[masks["test"]].reset_index(drop=True)
    metrics.update(
        {f"test_{k}": v for k, v in evaluate(test_frame, test_probabilities, threshold).items()}
    )
    for seconds in EVALUATED_HISTORY_S:
        short = booster.inplace_predict(scaler.transform(features_of(test_frame, seconds)))
        measured = evaluate(test_frame, short, threshold)
        for name in ("events_warned_5min_fraction", "lead_time_min_median"):
            if name in measured:
                metrics[f"test_history_{seconds / 60:g}min_{name}"] = measured[name]
    exported = export_onnx(booster, scaled["test"][:5000])
    if exported is not None:
        metrics["onnx_max_abs_difference"] = exported[1]
    metrics["threshold"] = threshold
    metrics["best_iteration"] = float(model.best_iteration)
    metrics["train_rows"] = float(masks["train"].sum())
    return TrainingResult(
        booster=booster,
        scaler=scaler,
        threshold=threshold,
        feature_names=FEATURE_NAMES,
        metrics=metrics,
        train_features=features[masks["train"]],
        test_frame=test_frame,
        test_probabilities=test_probabilities,
        onnx_model=exported[0] if exported is not None else None,
    )


class _ProgressCallback(xgb.callback.TrainingCallback):
    def __init__(self, report: Progress, total: int) -> None:
        super().__init__()
        self._report = report
        self._total = total

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self._report("fit", epoch + 1, self._total)
        return False
