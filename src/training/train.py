"""Training as pure stages: data, features, fit, alarm levels, evaluation, hold-outs.

Logging to MLflow lives in `tracking.py`; this module knows nothing of MLflow, so the
stages run the same in a notebook, a test or the CLI. The levels are chosen on the
validation set's false alarms; every number the run reports comes from sets the model
and its levels never saw: the test site, a widened test site drawn with wider physics,
and runs trained without a whole fault kind or chemistry, judged on that family alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.preprocessing import StandardScaler

from src.features.engineering import FEATURE_NAMES
from src.levels import ALARM, WARNING, Thresholds
from src.model_onnx import export_onnx
from src.training.config import ModelConfig, TrainingConfig
from src.training.data import Prepared, Progress, features_of, prepare, simulated_sets
from src.training.evaluate import LevelChoice, choose_thresholds, evaluate

logger = logging.getLogger(__name__)

TRUNCATED_HISTORY_S = (0.0, 60.0, 180.0, 600.0)
"""Training also sees readings as if only this much of their module's history were known
(a module that has just started posting, a store that has just come back): every
hazardous reading, and a sample of the healthy ones, once per length. Without them "no
history" only ever occurred at the start of healthy series, and read as "healthy"."""

TRUNCATED_HEALTHY_FRACTION = 0.1
"""Share of healthy modules whose readings (a tenth of them) are also shown with truncated
history; the faulty modules' hazardous readings all are, once per length."""

HEALTHY_ROW_FRACTION = 0.2
"""Share of the readings of healthy modules the model is fitted on (all of the faulty
modules' are kept): ten-second readings of a healthy module are near copies of each
other, and the fit's time grows with rows. Evaluation always uses every reading."""

EVALUATED_HISTORY_S = (0.0, 60.0, 120.0, 300.0, 1800.0)
"""The test set is also scored as if each reading had only this much history: the run
logs how early events are warned when a module has just started posting."""


@dataclass
class TrainingResult:
    booster: xgb.Booster
    """The fitted classifier's trees up to the best validation iteration: the model of record."""
    scaler: StandardScaler
    thresholds: Thresholds
    feature_names: tuple[str, ...]
    metrics: dict[str, float]
    train_features: np.ndarray
    """Unscaled training features (the sites' own readings), for the drift baseline."""
    test: Prepared
    test_probabilities: np.ndarray
    levels: LevelChoice
    """The validation curve the thresholds were chosen on (logged as a plot)."""
    absent_signals: tuple[str, ...] = ()
    onnx_model: bytes | None = None
    """The booster as ONNX, equal to it on the test rows; None if conversion was not possible."""

    @property
    def test_frame(self) -> pd.DataFrame:
        return self.test.frame


def fit_scaler(features: np.ndarray) -> StandardScaler:
    """StandardScaler, made total: a feature never seen (all missing, e.g. the chemistry of
    a site that declares none) is centred at 0 and scaled by 1 instead of NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):  # the all-missing columns, below
        scaler = StandardScaler().fit(features)
    scaler.mean_ = np.nan_to_num(scaler.mean_, nan=0.0)
    usable = np.isfinite(scaler.scale_) & (scaler.scale_ > 0)
    scaler.scale_ = np.where(usable, scaler.scale_, 1.0)
    return scaler


def predict_probabilities(
    booster: xgb.Booster, scaler: StandardScaler, features: np.ndarray
) -> np.ndarray:
    """The training code's own predictions: the reference the service must reproduce."""
    return booster.inplace_predict(scaler.transform(features))


def training_rows(data: Prepared, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The rows a model is fitted on: every reading of the faulty modules and a share of
    the healthy ones (HEALTHY_ROW_FRACTION), plus readings with truncated history
    (TRUNCATED_HISTORY_S)."""
    return _fit_rows(data, rng, HEALTHY_ROW_FRACTION, with_truncated_history=True)


def _fit_rows(
    data: Prepared, rng: np.random.Generator, healthy_fraction: float, with_truncated_history: bool
) -> tuple[np.ndarray, np.ndarray]:
    faulty_module = data.frame["fault_type"].to_numpy() != "none"
    kept = faulty_module | (rng.random(data.labels.size) < healthy_fraction)
    features, labels = [data.features[kept]], [data.labels[kept]]
    if with_truncated_history:
        modules = data.frame["module_id"].to_numpy()
        healthy_modules = np.unique(modules[~faulty_module])
        shown = set(healthy_modules[rng.random(healthy_modules.size) < TRUNCATED_HEALTHY_FRACTION])
        part = faulty_module | np.isin(modules, list(shown))
        frame, chemistry, part_labels = data.frame[part], data.chemistry[part], data.labels[part]
        for seconds in TRUNCATED_HISTORY_S:
            chosen = (part_labels == 1) | (
                rng.random(part_labels.size) < TRUNCATED_HEALTHY_FRACTION
            )
            features.append(features_of(frame, chemistry, seconds)[chosen])
            labels.append(part_labels[chosen])
    return np.concatenate(features), np.concatenate(labels)


def fit(
    features: np.ndarray,
    labels: np.ndarray,
    validation: Prepared,
    model_config: ModelConfig,
    seed: int,
    report: Progress,
) -> tuple[xgb.Booster, StandardScaler]:
    scaler = fit_scaler(features)
    positives = max(int(labels.sum()), 1)
    model = xgb.XGBClassifier(
        n_estimators=model_config.n_estimators,
        max_depth=model_config.max_depth,
        learning_rate=model_config.learning_rate,
        subsample=model_config.subsample,
        colsample_bytree=model_config.colsample_bytree,
        min_child_weight=model_config.min_child_weight,
        scale_pos_weight=(len(labels) - positives) / positives,
        early_stopping_rounds=model_config.early_stopping_rounds,
        eval_metric="aucpr",
        tree_method="hist",
        max_bin=model_config.max_bin,
        n_jobs=model_config.n_jobs,
        random_state=seed,
        callbacks=[_ProgressCallback(report, model_config.n_estimators)],
    )
    # Early stopping watches validation rows thinned as the training rows are.
    stop_features, stop_labels = _fit_rows(
        validation, np.random.default_rng(seed), HEALTHY_ROW_FRACTION, False
    )
    model.fit(
        scaler.transform(features),
        labels,
        eval_set=[(scaler.transform(stop_features), stop_labels)],
        verbose=False,
    )
    # Early stopping keeps growing trees past the best round; drop them so the logged
    # booster predicts exactly what was validated, whoever loads it.
    return model.get_booster()[: model.best_iteration + 1], scaler


def choose_levels(
    booster: xgb.Booster, scaler: StandardScaler, validation: Prepared, budget: float
) -> tuple[LevelChoice, np.ndarray]:
    probabilities = predict_probabilities(booster, scaler, validation.features)
    choice = choose_thresholds(
        validation.frame,
        probabilities,
        validation.guard_level >= WARNING,
        validation.guard_level >= ALARM,
        budget,
    )
    return choice, probabilities


def train(config: TrainingConfig, progress: Progress | None = None) -> TrainingResult:
    """Simulate the sets, then train_on them."""
    report = progress or (lambda stage, done, total: None)
    return train_on(simulated_sets(config, report), config, report)


def train_on(
    frames: dict[str, pd.DataFrame], config: TrainingConfig, report: Progress
) -> TrainingResult:
    """frames: train, validation, test, and optionally widened (each with the simulator's
    columns; span_s where known)."""
    sets = {
        name: prepare(frame, config, config.unknown_chemistry_fraction if name == "train" else 0.0)
        for name, frame in frames.items()
    }
    rng = np.random.default_rng(config.seed)
    features, labels = training_rows(sets["train"], rng)
    booster, scaler = fit(features, labels, sets["validation"], config.model, config.seed, report)
    choice, _ = choose_levels(
        booster, scaler, sets["validation"], config.false_alarm_budget_per_1000h
    )
    thresholds = choice.thresholds
    metrics: dict[str, float] = {
        "warning_threshold": thresholds.warning,
        "alarm_threshold": thresholds.alarm,
        "validation_healthy_module_hours": choice.exposure_h,
        "validation_exposure_sufficient": float(choice.exposure_h >= 1000.0),
        "best_iteration": float(booster.num_boosted_rounds() - 1),
        "train_rows": float(len(labels)),
    }
    test_probabilities = np.zeros(0)
    for name in ("test", "widened"):
        if name not in sets:
            continue
        data = sets[name]
        probabilities = predict_probabilities(booster, scaler, data.features)
        if name == "test":
            test_probabilities = probabilities
        found = evaluate(data.frame, probabilities, thresholds, data.guard_level)
        metrics.update({f"{name}_{key}": value for key, value in found.items()})
    metrics.update(_by_history_length(booster, scaler, sets["test"], thresholds))
    if config.holdout:
        metrics.update(_holdouts(sets, config, report))
    exported = export_onnx(booster, scaler.transform(sets["test"].features[:5000]))
    if exported is not None:
        metrics["onnx_max_abs_difference"] = exported[1]
    return TrainingResult(
        booster=booster,
        scaler=scaler,
        thresholds=thresholds,
        feature_names=FEATURE_NAMES,
        metrics=metrics,
        train_features=sets["train"].features,
        test=sets["test"],
        test_probabilities=test_probabilities,
        levels=choice,
        absent_signals=config.absent_signals,
        onnx_model=exported[0] if exported is not None else None,
    )


def _by_history_length(
    booster: xgb.Booster, scaler: StandardScaler, test: Prepared, thresholds: Thresholds
) -> dict[str, float]:
    """Events warned when every reading had only so much history (0: each posted alone,
    with no store): the cold-start case the service meets after a restart."""
    metrics = {}
    for seconds in EVALUATED_HISTORY_S:
        features = features_of(test.frame, test.chemistry, seconds)
        found = evaluate(
            test.frame, predict_probabilities(booster, scaler, features), thresholds, by=()
        )
        for key in ("warning_events_warned_5min_fraction", "warning_lead_time_min_median"):
            if key in found:
                metrics[f"test_history_{seconds / 60:g}min_{key}"] = found[key]
    return metrics


def _holdouts(
    sets: dict[str, Prepared], config: TrainingConfig, report: Progress
) -> dict[str, Any]:
    """Leave one family out: train without every module of one fault kind (or every rack
    of one chemistry), choose levels on validation without that family's events, and
    judge on the test site's events (and, for a chemistry, healthy modules) of that family
    alone. The honest answer to "what about a fault we never simulated?"."""
    metrics: dict[str, Any] = {}
    train, validation, test = sets["train"], sets["validation"], sets["test"]
    families = [("fault_type", kind) for kind in sorted(set(train.frame["fault_type"]) - {"none"})]
    if "chemistry" in train.frame.columns:
        named = {name for name in train.frame["chemistry"] if isinstance(name, str) and name}
        families += [("chemistry", name) for name in sorted(named)]  # "": unknown, no family
    rng = np.random.default_rng(config.seed + 1)
    for column, value in families:
        keep_train = train.frame[column].to_numpy() != value
        keep_validation = validation.frame[column].to_numpy() != value
        if column == "fault_type":  # healthy modules stay: they define the false alarms
            keep_test = (test.frame[column].to_numpy() == value) | (
                test.frame["fault_type"].to_numpy() == "none"
            )
        else:
            keep_test = test.frame[column].to_numpy() == value
        if keep_train.all() or not keep_train.any() or not keep_test.any():
            continue
        features, labels = training_rows(_subset(train, keep_train), rng)
        if not labels.any():  # that family held every event (a site's "unknown" faults)
            continue
        booster, scaler = fit(
            features,
            labels,
            _subset(validation, keep_validation),
            config.holdout_model,
            config.seed,
            report,
        )
        choice, _ = choose_levels(
            booster,
            scaler,
            _subset(validation, keep_validation),
            config.false_alarm_budget_per_1000h,
        )
        held = _subset(test, keep_test)
        found = evaluate(
            held.frame,
            predict_probabilities(booster, scaler, held.features),
            choice.thresholds,
            held.guard_level,
            by=(),
        )
        for key, number in found.items():
            if key.startswith(("warning_", "alarm_")):
                metrics[f"holdout/{column}/{value}/{key}"] = number
    return metrics


def _subset(data: Prepared, keep: np.ndarray) -> Prepared:
    return replace(
        data,
        frame=data.frame[keep].reset_index(drop=True),
        features=data.features[keep],
        labels=data.labels[keep],
        chemistry=data.chemistry[keep],
        guard_level=data.guard_level[keep],
    )


class _ProgressCallback(xgb.callback.TrainingCallback):
    def __init__(self, report: Progress, total: int) -> None:
        super().__init__()
        self._report = report
        self._total = total

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self._report("fit", epoch + 1, self._total)
        return False
