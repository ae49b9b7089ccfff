"""Reads and checks one training run's artifacts: the contract between training and serving.

Used twice with the same code: by gunicorn's master before any worker starts (a wrong run,
a missing store or a run this code cannot serve stops the server at once, with one line),
and by each worker when it loads its model. Nothing here imports xgboost (its OpenMP
runtime must not start before the fork) or unpickles anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from src.data.signals import SIGNAL_NAMES
from src.errors import ModelLoadError
from src.features.engineering import FEATURE_NAMES, feature_contract
from src.model_artifacts import (
    BASELINE_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ONNX_FILE,
    SERVING_CONFIG_FILE,
    read_json,
    read_signing_key,
    verify_manifest,
    verify_signature,
)
from src.services.model_store import ModelStore, ModelTarget, RunLocation, inside_store
from src.settings import Settings

READ_FILES = {
    "artifacts": (MANIFEST_FILE, SERVING_CONFIG_FILE, BASELINE_FILE, ONNX_FILE),
    "model": ("MLmodel", MODEL_FILE),
}
"""Every file the service reads of a run; each must lie inside the store."""


class ScalerNumbers(BaseModel):
    """The fitted StandardScaler as plain numbers: what the service applies."""

    mean: list[float]
    scale: list[float]


class LevelThresholds(BaseModel):
    """The run's two thresholds, chosen at training on a false-alarm budget."""

    warning: float
    alarm: float

    @field_validator("warning", "alarm")
    @classmethod
    def _probability_threshold(cls, value: float) -> float:
        if not (math.isfinite(value) and 0.0 < value < 1.0):
            raise ValueError(f"an alarm threshold must be a probability in (0, 1), got {value}")
        return value

    @model_validator(mode="after")
    def _warning_first(self) -> LevelThresholds:
        if self.warning > self.alarm:
            raise ValueError(f"the warning threshold {self.warning} is above the alarm's")
        return self


class ServingConfig(BaseModel):
    """serving_config.json as training writes it; anything else is refused at load."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    thresholds: LevelThresholds
    feature_names: list[str] = Field(min_length=1)
    feature_set_version: str
    signal_names: list[str]
    window_s: float
    rate_max_gap_s: float
    rate_min_gap_s: float | None = None
    """Absent in runs trained before feature set 2: they are refused by the contract check."""
    hazard_horizon_s: float
    absent_signals: list[str] = []
    """Signals the run was trained and judged without (the site has no such sensor)."""
    scaler: ScalerNumbers | None = None
    code_version: str = "an earlier version"
    """Which code trained the run (package version and git commit), for messages."""


@dataclass(frozen=True)
class RunArtifacts:
    """A located run whose artifacts passed every check, ready for the model to be read."""

    location: RunLocation
    config: ServingConfig


def load_run_artifacts(settings: Settings, target: ModelTarget | None = None) -> RunArtifacts:
    """Locate the configured model (or target, what it resolved to), verify its digests
    and check it fits this code, or raise one ModelLoadError that says what is wrong and
    what to do. Files fetched from a tracking server stay until location.release()."""
    store = ModelStore(settings.mlflow_tracking_uri)
    if target is None:
        target = store.resolve(settings.model_source, settings.model_artifact_name)
    location = store.locate(target)
    try:
        return _checked(location, settings)
    except BaseException:
        location.release()
        raise


def _checked(location: RunLocation, settings: Settings) -> RunArtifacts:
    for folder, names in (
        (location.artifacts_dir, READ_FILES["artifacts"]),
        (location.model_dir, READ_FILES["model"]),
    ):
        for name in names:
            if (folder / name).exists():
                inside_store(folder / name, location.store_root)
    if settings.model_signing_key_file is not None:
        verify_signature(location.artifacts_dir, read_signing_key(settings.model_signing_key_file))
    if settings.verify_digests or settings.model_signing_key_file is not None:
        verify_manifest(location.artifacts_dir, location.model_dir)
    config = _parse_config(location)
    _check_contract(location.run_id, config)
    _check_site(location.run_id, config, settings)
    return RunArtifacts(location=location, config=config)


def _check_site(run_id: str, config: ServingConfig, settings: Settings) -> None:
    """A site without some sensor is served only by a run judged without it."""
    declared, trained = set(settings.absent_signals), set(config.absent_signals)
    if declared != trained:
        raise ModelLoadError(
            f"this site declares {sorted(declared) or 'no'} absent sensors "
            f"(HVS_ABSENT_SIGNALS) but run {run_id} was trained and judged without "
            f"{sorted(trained) or 'none'}: train a run for this site (python -m src.training "
            f"--absent-signals {','.join(sorted(declared)) or '<none>'}) or fix the setting"
        )


def _parse_config(location: RunLocation) -> ServingConfig:
    raw: Any = read_json(location.artifacts_dir / SERVING_CONFIG_FILE)
    try:
        return ServingConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise ModelLoadError(
            f"run {location.run_id}'s {SERVING_CONFIG_FILE} is not usable ({where}: "
            f"{first['msg'].removeprefix('Value error, ')}); re-train it (`make train`)"
        ) from None


def _check_contract(run_id: str, config: ServingConfig) -> None:
    """The run must have been trained on features this code computes, the same way."""
    ours = feature_contract()
    theirs = {name: getattr(config, name) for name in ours}
    if theirs != ours:
        raise ModelLoadError(
            f"run {run_id} was trained by {config.code_version} with features "
            f"{_describe(theirs)}; this service computes {_describe(ours)}: serve the run "
            "with the code version that trained it, or re-train with this one (`make train`)"
        )
    unknown = [name for name in config.feature_names if name not in FEATURE_NAMES]
    if unknown:
        raise ModelLoadError(
            f"run {run_id} (trained by {config.code_version}) uses features this service "
            f"cannot compute ({', '.join(unknown[:5])}); serve it with the code version "
            "that trained it, or re-train with this one (`make train`)"
        )
    if tuple(config.signal_names) != SIGNAL_NAMES:
        raise ModelLoadError(
            f"run {run_id} (trained by {config.code_version}) expects the raw signals "
            f"{config.signal_names}, this service reads {list(SIGNAL_NAMES)}; re-train it"
        )
    n_features = len(config.feature_names)
    if config.scaler is None:
        raise ModelLoadError(
            f"run {run_id} was trained by {config.code_version}, before "
            f"{SERVING_CONFIG_FILE} carried the scaler's numbers, and this service never "
            "unpickles a scaler: re-train it with this version (`make train`)"
        )
    mean, scale = config.scaler.mean, config.scaler.scale
    if len(mean) != n_features or len(scale) != n_features:
        raise ModelLoadError(
            f"run {run_id}'s scaler has {len(mean)} means and {len(scale)} scales for "
            f"{n_features} features; re-train it"
        )
    if not all(math.isfinite(v) for v in mean) or not all(
        math.isfinite(v) and v > 0 for v in scale
    ):
        raise ModelLoadError(
            f"run {run_id}'s scaler has non-finite or non-positive values; re-train it"
        )


def _describe(contract: dict[str, Any]) -> str:
    return (
        f"set {contract['feature_set_version']} (window {contract['window_s']:g} s, "
        f"rate gap {contract['rate_max_gap_s']:g} s)"
    )
