"""Finds a training run's artifacts in an MLflow store, wherever that store now lives.

An `mlruns` folder records absolute artifact locations (`meta.yaml`), so a folder written
on one machine and mounted elsewhere (a laptop's `C:\\...\\mlruns` at `/app/mlruns` in a
container) points at paths that do not exist. MLflow still finds the run itself by id;
this module then re-roots each recorded location onto the store's real root. It knows
both layouts: MLflow 3 logged models (`<experiment>/models/<model id>/artifacts`) and the
older `<run>/artifacts/<name>` folder. No experiment id is hard-coded anywhere.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import unquote, urlparse

from src.errors import ModelLoadError

logger = logging.getLogger(__name__)

_RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def configure_mlflow_environment() -> None:
    """Settings MLflow needs before first use; an operator's explicit values win."""
    # MLflow 3.17+ refuses a file store (`mlruns/`) unless asked; ours is one on purpose.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Progress bars belong to the training CLI's own stages, not to MLflow's file copies.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class RunLocation:
    """Where a run's artifacts are on this machine, and what the run recorded."""

    run_id: str
    experiment_id: str
    store_root: Path
    """The configured store: nothing outside it is ever read."""
    artifacts_dir: Path
    """The run's own artifacts: scaler, feature list, serving config, digests."""
    model_dir: Path
    """The logged XGBoost model (the folder holding `MLmodel`)."""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def store_root(tracking_uri: str) -> Path:
    """The local folder of a file store given as a `file://` URI or a plain path."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve()
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path, or `C:\...`
        return Path(tracking_uri).expanduser().resolve()
    raise ModelLoadError(
        f"MLFLOW_TRACKING_URI={tracking_uri!r} is not a local MLflow store; this version "
        "serves from a mounted `mlruns` folder: set it to file:///path/to/mlruns"
    )


def locate_run(tracking_uri: str, run_id: str, model_name: str = "model") -> RunLocation:
    """Resolve run_id to local artifact folders, or raise one ModelLoadError saying why."""
    configure_mlflow_environment()
    root = store_root(tracking_uri)
    if not _RUN_ID_PATTERN.match(run_id):
        raise ModelLoadError(
            f"BEST_MLFLOW_RUN_ID={run_id!r} is not an MLflow run id (32 hexadecimal "
            "characters); use the id printed by `make train`"
        )
    if not root.is_dir():
        raise ModelLoadError(
            f"MLflow store {root} does not exist (MLFLOW_TRACKING_URI={tracking_uri}); "
            "mount the host's mlruns folder there, e.g. -v $PWD/mlruns:/app/mlruns"
        )

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=root.as_uri())
        run = client.get_run(run_id)
    except MlflowException as error:
        raise ModelLoadError(
            f"run {run_id} was not found in the MLflow store {root} ({error.message}); "
            "check BEST_MLFLOW_RUN_ID and that the right mlruns folder is mounted"
        ) from error
    except OSError as error:  # MLflow creates <store>/.trash when it opens a store
        raise ModelLoadError(
            f"MLflow cannot open the store {root} ({error.strerror}): a read-only store "
            "needs a .trash folder; create it where the store is written "
            "(mkdir mlruns/.trash; training does), or mount the store writable"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise ModelLoadError(
            f"run {run_id} is marked deleted in the MLflow store {root}: restore it "
            f"(mlflow runs restore --run-id {run_id}) or serve another run"
        )

    experiment_id = run.info.experiment_id
    artifacts_dir = _local_dir(run.info.artifact_uri, root, experiment_id)
    model_dir = _model_dir(client, run, root, artifacts_dir, model_name)
    logger.info(
        "located run",
        extra={"run_id": run_id, "artifacts_dir": str(artifacts_dir), "model_dir": str(model_dir)},
    )
    return RunLocation(
        run_id=run_id,
        experiment_id=experiment_id,
        store_root=root,
        artifacts_dir=artifacts_dir,
        model_dir=model_dir,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
    )


def _model_dir(client: Any, run: Any, root: Path, artifacts_dir: Path, name: str) -> Path:
    """The folder of the run's logged model called `name`, in either MLflow layout."""
    looked_in: list[str] = []
    for output in run.outputs.model_outputs if run.outputs else []:
        logged = client.get_logged_model(output.model_id)
        if logged.name != name:
            continue
        candidate = _local_dir(logged.artifact_location, root, run.info.experiment_id)
        if (candidate / "MLmodel").is_file():
            return candidate
        looked_in.append(str(candidate))
    legacy = artifacts_dir / name
    if (legacy / "MLmodel").is_file():
        return legacy
    looked_in.append(str(legacy))
    raise ModelLoadError(
        f"run {run.info.run_id} has no logged model named {name!r} with an MLmodel file; "
        f"looked in: {', '.join(looked_in)}. Was the run made by this project's training?"
    )


def _local_dir(recorded_uri: str, root: Path, experiment_id: str) -> Path:
    """A recorded artifact location, re-rooted onto `root`, the configured store.

    Always re-rooted, even when the recorded path exists on this machine: a copy of a
    store must be served from its own files, never from the original's. The result must
    stay inside the store once symlinks are resolved.
    """
    parsed = urlparse(recorded_uri)
    if parsed.scheme not in ("file", "") and len(parsed.scheme) != 1:
        raise ModelLoadError(
            f"artifacts at {recorded_uri} are not in a local store; this version serves "
            "runs whose artifacts live in the mounted mlruns folder"
        )
    recorded = unquote(parsed.path) if parsed.scheme == "file" else recorded_uri
    # Windows paths arrive as `/C:/Users/...` from file URIs or `C:\...` when plain.
    windows = re.match(r"^/?[A-Za-z]:[\\/]", recorded)
    parts = (PureWindowsPath(recorded.lstrip("/")) if windows else PurePosixPath(recorded)).parts
    if experiment_id not in parts:
        raise ModelLoadError(
            f"cannot map the recorded artifact location {recorded_uri} onto the store {root}: "
            f"it does not contain the experiment folder {experiment_id}"
        )
    # The last occurrence: the store itself may sit under a folder with a numeric name.
    index = len(parts) - 1 - parts[::-1].index(experiment_id)
    return inside_store(root.joinpath(*parts[index:]), root)


def inside_store(path: Path, root: Path) -> Path:
    """path with symlinks resolved, if that is still inside the store; else refused."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ModelLoadError(
            f"{path} leads outside the store {root} (a symlink?): the service reads only "
            "files inside the configured store"
        )
    return resolved
