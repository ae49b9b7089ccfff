"""Finds a training run's artifacts in an MLflow store, wherever that store now lives.

A model URI (src/model_uri.py) is first resolved to a run and its logged model: a
registered version or alias through the store's model registry. A local file store's
folders are then read in place; a tracking server's artifacts are fetched through its
artifact proxy into a private folder laid out like a file store, so every check that
follows (digests, signature, contract) reads local files either way.

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
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import unquote, urlparse

from src.errors import ModelLoadError
from src.model_artifacts import MODEL_DIGESTED_FILES
from src.model_uri import RUN_ID_PATTERN, ModelUri

logger = logging.getLogger(__name__)


def configure_mlflow_environment() -> None:
    """Settings MLflow needs before first use; an operator's explicit values win."""
    # MLflow 3.17+ refuses a file store (`mlruns/`) unless asked; ours is one on purpose.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Progress bars belong to the training CLI's own stages, not to MLflow's file copies.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class RegisteredVersion:
    """The registry's name for the served model: which version, through which alias."""

    name: str
    version: str
    alias: str | None = None


@dataclass(frozen=True)
class ModelTarget:
    """What a model URI points at now: a run and its logged model. Cheap to resolve, so a
    worker can ask every few seconds whether an alias moved (src/services/model_watch.py)."""

    source: str
    """The URI as configured, e.g. `models:/hvs@champion`."""
    run_id: str
    model_path: str
    """The logged model's name (or legacy folder) within the run, when model_id is None."""
    model_id: str | None = None
    """MLflow 3's logged model id that a registered version names."""
    registered: RegisteredVersion | None = None


@dataclass(frozen=True)
class RunLocation:
    """Where a run's artifacts are on this machine, and what the run recorded."""

    run_id: str
    experiment_id: str
    store_root: Path
    """The configured store (or the folder a server's artifacts were downloaded to):
    nothing outside it is ever read."""
    artifacts_dir: Path
    """The run's own artifacts: scaler, feature list, serving config, digests."""
    model_dir: Path
    """The logged XGBoost model (the folder holding `MLmodel`)."""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    source: str = ""
    """The model URI this run was resolved from."""
    registered: RegisteredVersion | None = None
    downloaded: bool = False
    """True when store_root is a private copy fetched from a tracking server."""

    def release(self) -> None:
        """Remove a downloaded copy once its files have been read (no-op for a file store)."""
        if self.downloaded:
            shutil.rmtree(self.store_root, ignore_errors=True)


def store_root(tracking_uri: str) -> Path:
    """The local folder of a file store given as a `file://` URI or a plain path."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve()
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path, or `C:\\...`
        return Path(tracking_uri).expanduser().resolve()
    raise ModelLoadError(
        f"MLFLOW_TRACKING_URI={tracking_uri!r} is neither a local MLflow store nor an "
        "http(s):// tracking server: set it to file:///path/to/mlruns or http://host:5000"
    )


def locate_run(tracking_uri: str, run_id: str, model_name: str = "model") -> RunLocation:
    """Resolve run_id to local artifact folders, or raise one ModelLoadError saying why."""
    store = ModelStore(tracking_uri)
    return store.locate(store.resolve(ModelUri(run_id=run_id, model_path=model_name)))


class ModelStore:
    """One MLflow store as the service reads it: a local file store (a mounted `mlruns`)
    or a tracking server, whose artifacts are then fetched through its artifact proxy
    (plain HTTP: the image needs nothing beyond mlflow-skinny for it)."""

    def __init__(self, tracking_uri: str) -> None:
        configure_mlflow_environment()
        self.tracking_uri = tracking_uri
        self.server = urlparse(tracking_uri).scheme in ("http", "https")
        self.root: Path | None = None
        if self.server:
            # MLflow retries a failed call for minutes by default: too long for a start-up
            # check or a poll, which try again on their own.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
            self.uri = tracking_uri.rstrip("/")
            self.where = f"the MLflow tracking server {self.uri}"
        else:
            self.root = store_root(tracking_uri)
            if not self.root.is_dir():
                raise ModelLoadError(
                    f"MLflow store {self.root} does not exist (MLFLOW_TRACKING_URI="
                    f"{tracking_uri}); mount the host's mlruns folder there, e.g. "
                    "-v $PWD/mlruns:/app/mlruns"
                )
            self.uri = self.root.as_uri()
            self.where = f"the MLflow store {self.root}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow
            from mlflow.tracking import MlflowClient

            # MLflow's file registry opens a default client inside get_model_version: left
            # unset, that is a new sqlite mlflow.db in the working folder (read-only in the
            # container), which knows no run. This process reads one store only.
            mlflow.set_tracking_uri(self.uri)
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def resolve(self, source: ModelUri, default_model_name: str = "model") -> ModelTarget:
        """The run (and logged model) source names now; for an alias, the version it
        points at. default_model_name: for a registered version that names no logged model."""
        if source.run_id is not None:
            if not RUN_ID_PATTERN.match(source.run_id):
                raise ModelLoadError(
                    f"BEST_MLFLOW_RUN_ID={source.run_id!r} is not an MLflow run id (32 "
                    "hexadecimal characters); use the id printed by `make train`"
                )
            return ModelTarget(str(source), source.run_id, source.model_path)
        name = source.registered_name or ""
        with self._reading(f"{source}", lambda: self._registry_advice(source)):
            if source.alias is not None:
                version = self.client.get_model_version_by_alias(name, source.alias)
            else:
                version = self.client.get_model_version(name, source.version)
        if not version.run_id:
            raise ModelLoadError(
                f"{source} is version {version.version} of {name!r}, registered without a "
                "run: register a run logged by this project's training"
            )
        model_id = getattr(version, "model_id", None)
        model_path = default_model_name
        origin = version.source or ""
        if not model_id and origin.startswith("models:/m-"):
            model_id = origin.removeprefix("models:/")
        elif origin.startswith("runs:/"):
            model_path = origin.split("/", 2)[2] if origin.count("/") >= 2 else model_path
        return ModelTarget(
            source=str(source),
            run_id=version.run_id,
            model_path=model_path,
            model_id=model_id or None,
            registered=RegisteredVersion(name, str(version.version), source.alias),
        )

    def _registry_advice(self, source: ModelUri) -> str:
        """What exists in the registry next to what source names: its aliases and
        versions, or the registered models, so a typo is fixed at the first try."""
        from mlflow.exceptions import MlflowException

        name = source.registered_name or ""
        register = "or register one (make train REGISTER=<name> ALIAS=<alias>)"
        # Only advice: whatever fails while listing (MLflow's file registry raises a bare
        # Exception for a missing `models` folder) must not hide the error being explained.
        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            try:
                names = sorted(m.name for m in self.client.search_registered_models())
            except Exception:
                return f"check MODEL_URI {register}"
            listed = ", ".join(names) if names else "none"
            return f"registered models here: {listed}; fix MODEL_URI {register}"
        except Exception:
            return f"check MODEL_URI {register}"
        aliases = ", ".join(f"@{a}: version {v}" for a, v in sorted(model.aliases.items()))
        try:
            versions = sorted(
                int(v.version) for v in self.client.search_model_versions(f"name='{name}'")
            )
        except Exception:
            versions = []
        return (
            f"{name!r} has aliases {aliases or 'none'} and versions "
            f"{', '.join(map(str, versions)) or 'none'}; use one of them in MODEL_URI, or "
            f"point the alias at a version (python -m src.training.runs set-alias --name "
            f"{name} --alias <alias> --version <n>)"
        )

    def locate(self, target: ModelTarget) -> RunLocation:
        """The target's artifacts as local folders, or one ModelLoadError saying why: a
        file store's own folders, or a fresh copy of a server's (release() removes it)."""
        run_id = target.run_id
        with self._reading(
            f"run {run_id}",
            "check BEST_MLFLOW_RUN_ID (or MODEL_URI) and that the right mlruns folder is mounted",
        ):
            run = self.client.get_run(run_id)
        if run.info.lifecycle_stage == "deleted":
            raise ModelLoadError(
                f"run {run_id} is marked deleted in {self.where}: restore it "
                f"(mlflow runs restore --run-id {run_id}) or serve another run"
            )
        experiment_id = run.info.experiment_id
        logged = self._logged_model(run, target)
        if self.server:
            root, artifacts_dir, model_dir = self._download(run, target, logged)
        else:
            assert self.root is not None
            root = self.root
            artifacts_dir = _local_dir(run.info.artifact_uri, root, experiment_id)
            model_dir = _model_dir(run, root, artifacts_dir, target, logged)
        logger.info(
            "located run",
            extra={
                "run_id": run_id,
                "model_uri": target.source,
                "artifacts_dir": str(artifacts_dir),
                "model_dir": str(model_dir),
            },
        )
        return RunLocation(
            run_id=run_id,
            experiment_id=experiment_id,
            store_root=root,
            artifacts_dir=artifacts_dir,
            model_dir=model_dir,
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            source=target.source,
            registered=target.registered,
            downloaded=self.server,
        )

    def _logged_model(self, run: Any, target: ModelTarget) -> Any | None:
        """MLflow 3's logged model the target names (by id, else by name), or None for a
        run that logged its model the older way, into its own artifacts."""
        if target.model_id is not None:
            with self._reading(f"logged model {target.model_id}", "register another run"):
                logged = self.client.get_logged_model(target.model_id)
            if logged.source_run_id != run.info.run_id:
                raise ModelLoadError(
                    f"{target.source} names logged model {target.model_id} of run "
                    f"{logged.source_run_id} but run {run.info.run_id}: the model and the "
                    "run's scaler, thresholds and digests must come from one run"
                )
            return logged
        for output in run.outputs.model_outputs if run.outputs else []:
            logged = self.client.get_logged_model(output.model_id)
            if logged.name == target.model_path:
                return logged
        return None

    def _download(self, run: Any, target: ModelTarget, logged: Any | None) -> tuple[Path, ...]:
        """Copy the run's artifacts and the model files the service reads from the server,
        laid out as in a file store, into a new private folder."""
        import mlflow.artifacts

        experiment_id, run_id = run.info.experiment_id, run.info.run_id
        model_uri = logged.artifact_location if logged is not None else None
        for uri in (run.info.artifact_uri, model_uri):
            if uri is not None and urlparse(uri).scheme not in _PROXIED_SCHEMES:
                raise ModelLoadError(
                    f"{self.where} keeps run {run_id}'s artifacts at {uri}, which this "
                    "service does not read directly: start the server with its artifact "
                    "proxy (`mlflow server --artifacts-destination ...`, the default "
                    "--serve-artifacts)"
                )
        root = Path(tempfile.mkdtemp(prefix=f"hvs-model-{run_id[:8]}-")).resolve()
        try:
            run_dir = root / experiment_id / run_id
            with self._reading(f"run {run_id}'s artifacts", "check the server's artifact store"):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=run.info.artifact_uri,
                    dst_path=str(run_dir),
                    tracking_uri=self.uri,
                )
                artifacts_dir = run_dir / "artifacts"
                if model_uri is None:
                    model_dir = artifacts_dir / target.model_path
                else:
                    model_dir = root / experiment_id / "models" / logged.model_id / "artifacts"
                    for name in MODEL_DIGESTED_FILES:
                        mlflow.artifacts.download_artifacts(
                            artifact_uri=f"{model_uri.rstrip('/')}/{name}",
                            dst_path=str(model_dir),
                            tracking_uri=self.uri,
                        )
            if not (model_dir / "MLmodel").is_file():
                raise ModelLoadError(
                    f"run {run_id} in {self.where} has no logged model named "
                    f"{target.model_path!r} with an MLmodel file. Was the run made by "
                    "this project's training?"
                )
            return root, inside_store(artifacts_dir, root), inside_store(model_dir, root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    @contextmanager
    def _reading(self, what: str, advice: str | Callable[[], str]) -> Iterator[None]:
        """MLflow's and the network's errors as one ModelLoadError naming what and where;
        advice: what to do, or how to work it out once something failed."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except ModelLoadError:
            raise
        except MlflowException as error:
            advice = advice() if callable(advice) else advice
            found = "was not found in" if _is_not_found(error) else "could not be read from"
            raise ModelLoadError(f"{what} {found} {self.where} ({error.message}); {advice}") from (
                error
            )
        except OSError as error:  # MLflow creates <store>/.trash when it opens a store
            if self.server:  # unreachable: asking it what exists would fail as well
                if callable(advice):
                    advice = "check that the server is up and MLFLOW_TRACKING_URI names it"
                raise ModelLoadError(
                    f"{what} could not be read from {self.where} ({error}); {advice}"
                ) from None
            raise ModelLoadError(
                f"MLflow cannot open the store {self.root} ({error.strerror}): a read-only "
                "store needs a .trash folder; create it where the store is written "
                "(mkdir mlruns/.trash; training does), or mount the store writable"
            ) from None


_PROXIED_SCHEMES = ("mlflow-artifacts", "http", "https")
"""Artifact locations a tracking server's client reads through the server itself."""


def _is_not_found(error: Any) -> bool:
    code = str(getattr(error, "error_code", ""))
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error.message).lower()


def _model_dir(
    run: Any, root: Path, artifacts_dir: Path, target: ModelTarget, logged: Any | None
) -> Path:
    """The folder of the target's logged model in a file store, in either MLflow layout."""
    looked_in: list[str] = []
    if logged is not None:
        candidate = _local_dir(logged.artifact_location, root, run.info.experiment_id)
        if (candidate / "MLmodel").is_file():
            return candidate
        looked_in.append(str(candidate))
    if target.model_id is None:
        legacy = inside_store(artifacts_dir / target.model_path, root)
        if (legacy / "MLmodel").is_file():
            return legacy
        looked_in.append(str(legacy))
    raise ModelLoadError(
        f"run {run.info.run_id} has no logged model named {target.model_path!r} with an "
        f"MLmodel file; looked in: {', '.join(looked_in)}. Was the run made by this "
        "project's training?"
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
