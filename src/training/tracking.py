"""Logs a training result to MLflow as one run the service can load on any machine."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import joblib
import numpy as np

from src.data.signals import SIGNAL_NAMES
from src.features.engineering import FEATURE_SET_VERSION, feature_contract
from src.model_artifacts import (
    BASELINE_FILE,
    MANIFEST_FILE,
    MODEL_DIGESTED_FILES,
    ONNX_FILE,
    SCALER_FILE,
    SERVING_CONFIG_FILE,
    SIGNATURE_FILE,
    build_manifest,
    digest_folder,
    sha256_file,
    sign_manifest,
)
from src.services.model_store import configure_mlflow_environment
from src.training.config import TrainingConfig
from src.training.files import simulator_record
from src.training.train import TrainingResult

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "hvs-thermal-runaway"
MODEL_NAME = "model"
BASELINE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

# What serving needs to load the booster; MLflow's own inference of this list is slow and
# names `xgboost` although `xgboost-cpu` provides the module.
SERVING_PIP_REQUIREMENTS = ("xgboost-cpu", "numpy", "scikit-learn")


def code_version() -> str:
    """This code's package version and git commit (`+dirty` with uncommitted changes), so a
    run that a later version refuses can say which version trained it."""
    try:
        package = version("hvs-prediction-api")
    except PackageNotFoundError:
        package = "unknown"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "no git checkout"
    return f"hvs-prediction-api {package} ({commit})"


def serving_config(
    result: TrainingResult, config: TrainingConfig, trained_by: str
) -> dict[str, Any]:
    """What the service reads of a run (src/services/model_loader.ServingConfig)."""
    return {
        "thresholds": {"warning": result.thresholds.warning, "alarm": result.thresholds.alarm},
        "feature_names": list(result.feature_names),
        **feature_contract(),
        "signal_names": list(SIGNAL_NAMES),
        "absent_signals": list(result.absent_signals),
        "hazard_horizon_s": config.label_horizon_s,
        "model_artifact": MODEL_NAME,
        "code_version": trained_by,
        # The fitted StandardScaler as plain numbers (JSON keeps every float64 exactly), so
        # serving unpickles nothing and needs no scikit-learn; scaler.joblib is the same
        # object for Python users.
        "scaler": {
            "mean": [float(value) for value in result.scaler.mean_],
            "scale": [float(value) for value in result.scaler.scale_],
        },
    }


def feature_baseline(result: TrainingResult) -> dict[str, Any]:
    """Per-feature distribution of the training data: the reference for drift signals
    (bin_shares: the share between each two quantiles, src/services/drift.py)."""
    from src.services.drift import bin_shares

    features = result.train_features
    quantiles = np.nanquantile(features, BASELINE_QUANTILES, axis=0)
    return {
        "rows": int(features.shape[0]),
        "quantile_levels": list(BASELINE_QUANTILES),
        "features": {
            name: {
                "mean": float(np.nanmean(features[:, i])),
                "std": float(np.nanstd(features[:, i])),
                "missing_fraction": float(np.isnan(features[:, i]).mean()),
                "quantiles": [float(q) for q in quantiles[:, i]],
                "bin_shares": bin_shares(features[:, i], quantiles[:, i]),
            }
            for i, name in enumerate(result.feature_names)
        },
    }


def log_run(
    result: TrainingResult,
    config: TrainingConfig,
    tracking_uri: str,
    experiment_name: str = DEFAULT_EXPERIMENT,
    signing_key: bytes | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """Log params, metrics, model, scaler, feature list, threshold and digests; return run id.

    data: what the run was trained on (src/training/files.data_record): its `params`
    (data.source, data.schema_version, paths, SHA-256 digests, counts per split) are
    logged as params, its `report` as DATA_REPORT_FILE and its `text` as
    DATA_REPORT_TEXT_FILE. None: the simulator.
    """
    data = simulator_record() if data is None else data
    configure_mlflow_environment()
    import mlflow
    import mlflow.xgboost

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
        params = config.as_params()
        if data["params"]["data.source"] == "files":  # no simulated site was drawn
            params = {k: v for k, v in params.items() if not k.startswith("simulation.")}
        mlflow.log_params(params)
        mlflow.log_params(data["params"])
        mlflow.log_params(
            {"feature_set_version": FEATURE_SET_VERSION, "n_features": len(result.feature_names)}
        )
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if np.isfinite(v)})
        trained_by = code_version()
        mlflow.set_tags(
            {
                "project": "hvs-prediction-api",
                "feature_set_version": FEATURE_SET_VERSION,
                "code_version": trained_by,
            }
        )

        model_info = mlflow.xgboost.log_model(
            result.booster,
            name=MODEL_NAME,
            model_format="ubj",
            pip_requirements=list(SERVING_PIP_REQUIREMENTS),
        )

        run_dir = Path(scratch) / "run"
        run_dir.mkdir()
        joblib.dump(result.scaler, run_dir / SCALER_FILE)
        _write_json(run_dir / SERVING_CONFIG_FILE, serving_config(result, config, trained_by))
        _write_json(run_dir / BASELINE_FILE, feature_baseline(result))
        if data["report"] is not None:
            _write_json(run_dir / DATA_REPORT_FILE, data["report"])
            (run_dir / DATA_REPORT_TEXT_FILE).write_text(data["text"] + "\n", encoding="utf-8")
        result.levels.curve.to_csv(run_dir / LEVELS_CURVE_FILE, index=False)
        _plot_levels(result, run_dir / LEVELS_PLOT_FILE)
        if result.onnx_model is not None:
            (run_dir / ONNX_FILE).write_bytes(result.onnx_model)
        # Digest the model as the store holds it, read back through MLflow.
        model_copy = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model_info.model_uri, dst_path=str(Path(scratch) / "model")
            )
        )
        model_files = {name: sha256_file(model_copy / name) for name in MODEL_DIGESTED_FILES}
        manifest = build_manifest(digest_folder(run_dir), model_files)
        _write_json(run_dir / MANIFEST_FILE, manifest)
        if signing_key is not None:
            signature = sign_manifest(run_dir / MANIFEST_FILE, signing_key)
            (run_dir / SIGNATURE_FILE).write_text(signature + "\n", encoding="ascii")
        mlflow.log_artifacts(str(run_dir))
        logger.info("logged run", extra={"run_id": run.info.run_id})
    # MLflow opens a store only if it has (or can make) .trash: made now, a read-only
    # mount of this store (a container, a Kubernetes volume) can be served as it is.
    store = urlparse(tracking_uri)
    if store.scheme == "file":
        (Path(unquote(store.path)) / ".trash").mkdir(exist_ok=True)
    return run.info.run_id


def register_model(tracking_uri: str, run_id: str, name: str, alias: str | None = None) -> str:
    """Register the run's logged model as a new version of `name` (created if new), point
    `alias` at it when given, and return the version: what MODEL_URI=models:/... serves."""
    configure_mlflow_environment()
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    # create_model_version looks the logged model up in the global tracking store, not
    # the client's (else a fresh sqlite mlflow.db in the working folder would be asked)
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = client.get_run(run_id)
    logged = next(
        (
            model
            for model in (client.get_logged_model(o.model_id) for o in run.outputs.model_outputs)
            if model.name == MODEL_NAME
        ),
        None,
    )
    if logged is None:
        raise ValueError(f"run {run_id} has no logged model named {MODEL_NAME!r} to register")
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name, source=logged.model_uri, run_id=run_id, model_id=logged.model_id
    )
    if alias is not None:
        client.set_registered_model_alias(name, alias, version.version)
    logger.info(
        "registered model",
        extra={"run_id": run_id, "model": name, "version": version.version, "alias": alias},
    )
    return str(version.version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    """Point `alias` of registered model `name` at `version`: how a model is switched or
    rolled back while the service runs (it polls the alias)."""
    configure_mlflow_environment()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        try:
            found = client.search_model_versions(f"name='{name}'")
            versions = ", ".join(sorted((str(v.version) for v in found), key=int)) or "none"
        except MlflowException:
            versions = "none (is the name right?)"
        raise ValueError(
            f"{name!r} has no version {version} ({error.message}); its versions: {versions}"
        ) from None
    client.set_registered_model_alias(name, alias, version)


DATA_REPORT_FILE = "data_report.json"
DATA_REPORT_TEXT_FILE = "data_report.txt"
LEVELS_CURVE_FILE = "alarm_levels_curve.csv"
LEVELS_PLOT_FILE = "alarm_levels.png"


def _plot_levels(result: TrainingResult, path: Path) -> None:
    """Lead time and events warned against false alarms, as the warning threshold moves
    (validation set), with the chosen levels marked: people read it faster than a table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.levels.curve
    figure, left = plt.subplots(figsize=(8, 4.5), dpi=110)
    left.set_xscale("symlog", linthresh=0.1)
    left.plot(curve["false_alarms_per_1000h"], curve["events_warned_5min_fraction"], color="C0")
    left.set_xlabel("false-alarm episodes per 1,000 healthy module-hours (validation)")
    left.set_ylabel("events warned >= 5 min ahead", color="C0")
    right = left.twinx()
    right.plot(curve["false_alarms_per_1000h"], curve["lead_time_min_median"], color="C1")
    right.set_ylabel("median lead time, min", color="C1")
    for name, threshold, style in (
        ("warning", result.thresholds.warning, "--"),
        ("alarm", result.thresholds.alarm, ":"),
    ):
        at = curve.iloc[(curve["threshold"] - threshold).abs().argmin()]
        left.axvline(at["false_alarms_per_1000h"], color="k", linestyle=style, label=name)
    left.axvline(1.0, color="grey", linewidth=0.8, label="budget (1 per 1,000 h)")
    left.legend(loc="lower right")
    left.set_title("Alarm levels: earliest warning within the false-alarm budget")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False), encoding="utf-8")
