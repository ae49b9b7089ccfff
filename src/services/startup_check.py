"""A cheap check of the configured run before any worker starts: found, complete, intact,
and readable by this installation.

Runs in gunicorn's master, so it must not import xgboost (its OpenMP runtime must not be
initialised before the fork) nor unpickle anything.
"""

from __future__ import annotations

from src.model_artifacts import SERVING_CONFIG_FILE, read_json, verify_manifest
from src.services.model_store import RunLocation, locate_run
from src.services.prediction_service import check_scaler_readable
from src.settings import ServiceSettings


def check_run(settings: ServiceSettings | None = None) -> RunLocation:
    """Raise ModelLoadError (or the settings' ValidationError) naming what is wrong."""
    settings = settings or ServiceSettings()
    location = locate_run(
        settings.mlflow_tracking_uri, settings.best_mlflow_run_id, settings.model_artifact_name
    )
    if settings.verify_digests:
        verify_manifest(location.artifacts_dir, location.model_dir)
    check_scaler_readable(location.run_id, read_json(location.artifacts_dir / SERVING_CONFIG_FILE))
    return location
