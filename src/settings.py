"""Typed settings of the prediction service, read from the environment once.

Tests build `ServiceSettings(...)` directly instead of patching os.environ.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RUN_ID_PLACEHOLDER = "RUN_ID_NOT_SET"
"""What the Docker image sets BEST_MLFLOW_RUN_ID to until the operator passes a real id."""


class ServiceSettings(BaseSettings):
    """Everything the service reads from its environment. Each field names its variable."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    best_mlflow_run_id: str = Field(validation_alias="BEST_MLFLOW_RUN_ID")
    """MLflow run whose model, scaler, feature list and threshold are served. Required."""

    mlflow_tracking_uri: str = Field("./mlruns", validation_alias="MLFLOW_TRACKING_URI")
    """MLflow store: a `file://` URI or a path to an `mlruns` folder."""

    model_artifact_name: str = Field("model", validation_alias="HVS_MODEL_ARTIFACT_NAME")
    """Name under which training logged the XGBoost model."""

    xgboost_nthread: int = Field(1, ge=1, le=64, validation_alias="HVS_XGBOOST_NTHREAD")
    """OpenMP threads XGBoost may use in each worker. Keep workers x threads <= cores."""

    onnx_max_rows: int = Field(64, ge=0, le=10_000, validation_alias="HVS_ONNX_MAX_ROWS")
    """Requests of at most this many readings are scored by the run's ONNX copy of the
    booster (onnxruntime: ~16 us a row instead of XGBoost's ~400 us per call); larger ones,
    or all when 0 or when the run has no ONNX copy, by XGBoost itself."""

    max_batch_readings: int = Field(
        10_000, ge=1, le=1_000_000, validation_alias="HVS_MAX_BATCH_READINGS"
    )
    """Largest number of readings accepted in one /predict request."""

    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, validation_alias="HVS_MAX_BODY_BYTES")
    """Largest request body accepted, in bytes; larger bodies get 413."""

    verify_digests: bool = Field(True, validation_alias="HVS_VERIFY_DIGESTS")
    """Check every artifact against the SHA-256 digests recorded at training before use."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="HVS_LOG_LEVEL"
    )
    """Level of the service's logs."""

    log_format: Literal["json", "text"] = Field("json", validation_alias="HVS_LOG_FORMAT")
    """`json`: one JSON object per line (containers, log shippers); `text`: for humans."""

    @field_validator("best_mlflow_run_id")
    @classmethod
    def _run_id_is_set(cls, value: str) -> str:
        value = value.strip()
        if not value or value == RUN_ID_PLACEHOLDER:
            raise ValueError(
                "BEST_MLFLOW_RUN_ID is not set: pass the id of a training run "
                "(printed by `make train`), e.g. -e BEST_MLFLOW_RUN_ID=<run id>"
            )
        return value
