"""Typed settings of the service and of its gunicorn server, read from the environment once.

`load_settings()` is the one place the environment is read: gunicorn's config calls it in
the master before anything starts, and `create_app()` in each worker. A bad value stops
the start with one line naming the variable and what it accepts (exit status 3); tests
build `Settings(...)` directly instead of patching os.environ.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from src.model_uri import ModelUri, parse_model_uri

RUN_ID_PLACEHOLDER = "RUN_ID_NOT_SET"
"""What the Docker image sets BEST_MLFLOW_RUN_ID to until the operator passes a real id."""

STARTUP_FAILURE_EXIT_CODE = 3
"""Exit status of a server that refuses to start (bad setting, run that cannot be served)."""


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]
WorkerClass = Annotated[Literal["sync", "gthread"], BeforeValidator(_lower)]
FrontChoice = Annotated[Literal["nginx", "none", "auto"], BeforeValidator(_lower)]


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message is one line."""


class Settings(BaseSettings):
    """Everything the service and its server read from the environment.

    Each field's alias is its environment variable; docs/configuration.md lists them,
    generated from these declarations and their docstrings (tools/configuration_doc.py).
    """

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=False, use_attribute_docstrings=True
    )

    # ------------------------------------------------------------------ the model
    best_mlflow_run_id: str = Field(RUN_ID_PLACEHOLDER, validation_alias="BEST_MLFLOW_RUN_ID")
    """MLflow run whose model, scaler, feature list and thresholds are served. This or
    MODEL_URI is required; both only if they name the same run."""

    model_uri: str | None = Field(None, validation_alias="MODEL_URI")
    """The model as an MLflow URI instead of a run id: `runs:/<run id>/<model name>`,
    `models:/<name>/<version>` or `models:/<name>@<alias>` (registered with
    `make train REGISTER=<name> ALIAS=<alias>`), resolved in MLFLOW_TRACKING_URI."""

    mlflow_tracking_uri: str = Field("./mlruns", validation_alias="MLFLOW_TRACKING_URI")
    """MLflow store: a `file://` URI or a path to an `mlruns` folder, or an `http(s)://`
    MLflow tracking server that serves artifacts (`mlflow server`'s default)."""

    model_artifact_name: str = Field("model", validation_alias="HVS_MODEL_ARTIFACT_NAME")
    """Name under which training logged the XGBoost model (a runs:/ URI's path says it)."""

    model_poll_seconds: float = Field(
        30.0, ge=0, le=86_400, validation_alias="HVS_MODEL_POLL_SECONDS"
    )
    """With MODEL_URI=models:/<name>@<alias>: every worker asks the registry this often
    whether the alias moved, and if so loads, checks and warms up the new version before
    swapping it in (the old one answers meanwhile; a version that fails its checks is
    refused and the old one keeps serving). 0: never (a restart picks up a move)."""

    warning_threshold: float | None = Field(
        None, gt=0, lt=1, validation_alias="HVS_WARNING_THRESHOLD"
    )
    """Override of the run's `warning` threshold (a probability in (0, 1)); unset: the
    run's, chosen at training. Logged at load and shown in /model."""

    alarm_threshold: float | None = Field(None, gt=0, lt=1, validation_alias="HVS_ALARM_THRESHOLD")
    """Override of the run's `alarm` threshold (a probability in (0, 1), not below the
    warning one); unset: the run's."""

    drift_window_readings: int = Field(
        1000, ge=0, le=1_000_000, validation_alias="HVS_DRIFT_WINDOW_READINGS"
    )
    """Each worker compares its last this-many scored readings with the run's training
    baseline (hvs_drift_out_of_range_ratio, hvs_drift_psi per signal); 0: off."""

    verify_digests: bool = Field(True, validation_alias="HVS_VERIFY_DIGESTS")
    """Check every artifact against the SHA-256 digests recorded at training before use."""

    model_signing_key_file: str | None = Field(None, validation_alias="HVS_MODEL_SIGNING_KEY_FILE")
    """A key file: only runs whose manifest carries its HMAC (training's
    --signing-key-file) are served, so writing to the store is not enough to change the
    model. Digests are then always verified."""

    skip_startup_check: bool = Field(False, validation_alias="HVS_SKIP_STARTUP_CHECK")
    """Start even when the run cannot be loaded (then /ready says why) instead of exiting."""

    xgboost_nthread: int = Field(1, ge=1, le=64, validation_alias="HVS_XGBOOST_NTHREAD")
    """OpenMP threads XGBoost may use in each worker. Keep workers x threads <= cores."""

    onnx_max_rows: int = Field(64, ge=0, le=10_000, validation_alias="HVS_ONNX_MAX_ROWS")
    """Requests of at most this many readings are scored by the run's ONNX copy of the
    booster (onnxruntime's per-call cost is a fraction of XGBoost's); larger ones, or all
    when 0 or when the run has no ONNX copy, by XGBoost itself."""

    chemistry: Literal["LFP", "NMC"] | None = Field(None, validation_alias="HVS_CHEMISTRY")
    """The site's cell chemistry, for readings that do not say (`chemistry` field): the
    features compare cell voltages with its limits. Unset: unknown unless a reading says."""

    absent_signals: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="HVS_ABSENT_SIGNALS"
    )
    """Signals this site has no sensor for (comma-separated, e.g. `voc_ppm`): a reading
    lacking them is not `unknown`, and only a run trained without them is served."""

    explain_top: int = Field(3, ge=0, le=32, validation_alias="HVS_EXPLAIN_TOP")
    """How many signals an explanation lists (largest contribution to the log-odds first).
    Readings at warning or alarm carry one without being asked, and so do their audit log
    lines; a request's `"explain": true` asks for every reading. 0 turns explanations off:
    none is computed, and every prediction's `explanation` is null."""

    # ------------------------------------------------------------------ module history
    history: bool = Field(True, validation_alias="HVS_HISTORY")
    """Keep each module's recent readings, so a reading posted alone is scored with its
    module's last minutes; `off`: only the request's own readings count (stateless)."""

    history_url: str | None = Field(None, validation_alias="HVS_HISTORY_URL")
    """`redis://host:6379/0` (or `rediss://`, `unix://`) to share history between replicas;
    unset: an embedded SQLite file shared by this server's workers."""

    history_path: str | None = Field(None, validation_alias="HVS_HISTORY_PATH")
    """The embedded store's file; unset: a fresh one in a temporary folder per server."""

    history_prefix: str = Field(
        "hvs", pattern=r"^[A-Za-z0-9._:-]{1,64}$", validation_alias="HVS_HISTORY_PREFIX"
    )
    """Namespace of this site's keys, so sites or models sharing one Redis never mix."""

    history_timeout_ms: int = Field(50, ge=1, le=10_000, validation_alias="HVS_HISTORY_TIMEOUT_MS")
    """The store's answer must come within this; otherwise the request's own readings are
    used (`history_source: "request"`) and the store is retried a second later."""

    history_max_modules: int = Field(
        20_000, ge=1, le=10_000_000, validation_alias="HVS_HISTORY_MAX_MODULES"
    )
    """Modules kept; beyond it the least recently written are evicted (counted)."""

    history_max_readings: int = Field(
        600, ge=10, le=100_000, validation_alias="HVS_HISTORY_MAX_READINGS"
    )
    """Readings kept per module (the newest), whatever its sampling rate."""

    history_idle_s: float = Field(
        3600.0, ge=60.0, le=30 * 86400.0, validation_alias="HVS_HISTORY_IDLE_S"
    )
    """A module not written for this long is forgotten."""

    max_clock_ahead_s: float = Field(
        300.0, ge=0.0, le=86400.0, validation_alias="HVS_MAX_CLOCK_AHEAD_S"
    )
    """Readings stamped further than this ahead of the server's clock are refused (422):
    a wrong gateway clock would otherwise sit at the head of its module's history."""

    # ------------------------------------------------------------------ requests
    max_batch_readings: int = Field(
        10_000, ge=1, le=1_000_000, validation_alias="HVS_MAX_BATCH_READINGS"
    )
    """Largest number of readings accepted in one /predict request."""

    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, le=1024**3, validation_alias="HVS_MAX_BODY_BYTES"
    )
    """Largest request body accepted, in bytes; larger bodies get 413."""

    # ------------------------------------------------------------------ authentication
    predict_tokens: SecretStr | None = Field(None, validation_alias="HVS_PREDICT_TOKENS")
    """Bearer tokens (comma-separated, for rotation) that /predict and /model require;
    unset (and no file): no authentication, said once in the log at start."""

    predict_tokens_file: str | None = Field(None, validation_alias="HVS_PREDICT_TOKENS_FILE")
    """A file of such tokens, one per line (a mounted secret), instead of the variable."""

    metrics_tokens: SecretStr | None = Field(None, validation_alias="HVS_METRICS_TOKENS")
    """Bearer tokens that /metrics requires (Prometheus' `authorization` setting)."""

    metrics_tokens_file: str | None = Field(None, validation_alias="HVS_METRICS_TOKENS_FILE")
    """A file of /metrics tokens, one per line."""

    # ------------------------------------------------------------------ logs
    log_level: LogLevel = Field("INFO", validation_alias="HVS_LOG_LEVEL")
    """Level of the service's and gunicorn's logs (any case)."""

    log_format: Literal["json", "text"] = Field("json", validation_alias="HVS_LOG_FORMAT")
    """`json`: one JSON object per line (containers, log shippers); `text`: for humans."""

    access_log: bool = Field(False, validation_alias="GUNICORN_ACCESS_LOG")
    """Log every request (gunicorn's access log) to stdout."""

    # ------------------------------------------------------------------ the server
    host: str = Field("0.0.0.0", min_length=1, validation_alias="HOST")
    """Address gunicorn listens on."""

    port: int = Field(5001, ge=1, le=65535, validation_alias="PORT")
    """Port gunicorn listens on."""

    workers: int = Field(2, ge=1, le=64, validation_alias="WEB_CONCURRENCY")
    """gunicorn worker processes, each with its own copy of the model."""

    worker_class: WorkerClass = Field("sync", validation_alias="GUNICORN_WORKER_CLASS")
    """`sync`: one request at a time per worker; `gthread`: a thread pool per worker."""

    threads: int | None = Field(None, ge=1, le=256, validation_alias="GUNICORN_THREADS")
    """Threads per worker; default 1 for sync, 4 for gthread (gunicorn turns sync into
    gthread when given more than one)."""

    timeout_s: int = Field(30, ge=1, le=3600, validation_alias="GUNICORN_TIMEOUT")
    """A worker silent this long is killed and replaced."""

    graceful_timeout_s: int = Field(20, ge=1, le=3600, validation_alias="GUNICORN_GRACEFUL_TIMEOUT")
    """On stop, seconds in-flight requests get to finish before workers are killed."""

    keepalive_s: int = Field(5, ge=0, le=300, validation_alias="GUNICORN_KEEPALIVE")
    """Seconds an idle keep-alive connection is kept (gthread only; sync closes each)."""

    backlog: int = Field(2048, ge=16, le=65535, validation_alias="GUNICORN_BACKLOG")
    """Connections the kernel may queue before a worker accepts them."""

    max_requests: int = Field(0, ge=0, le=10_000_000, validation_alias="GUNICORN_MAX_REQUESTS")
    """Replace a worker after about this many requests (0: never), against slow leaks."""

    drain_s: float = Field(3.0, ge=0.0, le=300.0, validation_alias="HVS_DRAIN_SECONDS")
    """On SIGTERM: seconds of /ready answering 503 while requests are still served."""

    prometheus_multiproc_dir: str | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    """Folder where every worker writes its metrics; a fresh temporary one when unset.
    Emptied when gunicorn starts."""

    bind: str | None = Field(None, pattern=r"^unix:/.+", validation_alias="HVS_BIND")
    """Internal, leave unset: `unix:/absolute/path` makes gunicorn listen on that unix
    socket instead of HOST:PORT. The front (`python -m src.api.front`) sets it for the
    gunicorn it starts behind nginx."""

    # ------------------------------------------------------------------ the front
    front: FrontChoice = Field("auto", validation_alias="HVS_FRONT")
    """What `python -m src.api.front` (the image's command, `make serve`) puts before the
    sync workers. `nginx`: nginx listens on HOST:PORT and reads every request whole before
    a worker sees it (and takes every response whole), so a slow or idle client holds a
    few kilobytes of nginx, never a worker; gunicorn then listens on a unix socket in a
    per-run folder under $TMPDIR. `none`: gunicorn alone on HOST:PORT, exactly as
    `python -m src.api.server`. `auto`: nginx when its binary is found, else `none` with
    a warning (any case)."""

    client_timeout_s: float = Field(5.0, ge=0.5, le=300.0, validation_alias="HVS_CLIENT_TIMEOUT_S")
    """With the nginx front: seconds a client gets to send its request line and all its
    headers, and at most between two reads of its body or two writes of the response;
    then nginx closes the connection (no worker was ever involved)."""

    max_connections_per_client: int = Field(
        0, ge=0, le=65535, validation_alias="HVS_MAX_CONNECTIONS_PER_CLIENT"
    )
    """With the nginx front: requests one client address may have in nginx at once
    (nginx's `limit_conn`, counted once the headers are in); more get 429. Bounds what
    a client trickling bodies a byte at a time can hold, since the body timeout is
    between reads. 0 (default): no limit, because behind a balancer or a NAT every client
    shares one address."""

    @field_validator("best_mlflow_run_id")
    @classmethod
    def _run_id_stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("model_uri")
    @classmethod
    def _model_uri(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_model_uri(value))

    @model_validator(mode="after")
    def _one_model_source(self) -> Settings:
        run_id = self.run_id_given
        if self.model_uri is None and run_id is None:
            raise ValueError(
                "BEST_MLFLOW_RUN_ID is not set: pass the id of a training run "
                "(printed by `make train`), e.g. -e BEST_MLFLOW_RUN_ID=<run id>, or "
                "MODEL_URI=models:/<name>@<alias>"
            )
        named = None if self.model_uri is None else parse_model_uri(self.model_uri).run_id
        if self.model_uri is not None and run_id is not None and named != run_id:
            raise ValueError(
                f"BEST_MLFLOW_RUN_ID={run_id} and MODEL_URI={self.model_uri} are both set "
                "and do not name the same run: set only one of them"
            )
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        warning, alarm = self.warning_threshold, self.alarm_threshold
        if warning is not None and alarm is not None and warning > alarm:
            raise ValueError(
                f"HVS_WARNING_THRESHOLD={warning} is above HVS_ALARM_THRESHOLD={alarm}: a "
                "warning must come at a lower probability than the alarm; lower the first "
                "or raise the second"
            )
        return self

    @field_validator("history_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise ValueError(
                "HVS_HISTORY_URL must be a redis://, rediss:// or unix:// URL (leave it unset "
                "for the embedded store)"
            )
        return value

    @field_validator("absent_signals", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("absent_signals")
    @classmethod
    def _known_signals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from src.data.signals import SIGNAL_NAMES

        unknown = [name for name in value if name not in SIGNAL_NAMES]
        if unknown:
            raise ValueError(
                f"HVS_ABSENT_SIGNALS names {', '.join(unknown)}, which are not signals; "
                f"use names from {', '.join(SIGNAL_NAMES)}"
            )
        return tuple(sorted(set(value)))

    @field_validator("access_log", mode="before")
    @classmethod
    def _access_log_flag(cls, value: Any) -> Any:
        # gunicorn's own convention is `-` for stdout; accept it as "on".
        return True if value == "-" else value

    @field_validator(
        "prometheus_multiproc_dir",
        "history_url",
        "history_path",
        "predict_tokens",
        "predict_tokens_file",
        "metrics_tokens",
        "metrics_tokens_file",
        "model_signing_key_file",
        "chemistry",
        "bind",
        "model_uri",
        "warning_threshold",
        "alarm_threshold",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def run_id_given(self) -> str | None:
        """BEST_MLFLOW_RUN_ID, unless unset (the image's placeholder counts as unset)."""
        run_id = self.best_mlflow_run_id
        return None if run_id in ("", RUN_ID_PLACEHOLDER) else run_id

    @property
    def model_source(self) -> ModelUri:
        """The model to serve: MODEL_URI, else the run BEST_MLFLOW_RUN_ID names."""
        if self.model_uri is not None:
            return parse_model_uri(self.model_uri)
        return ModelUri(run_id=self.run_id_given, model_path=self.model_artifact_name)

    @property
    def threads_per_worker(self) -> int:
        if self.threads is not None:
            return self.threads
        return 1 if self.worker_class == "sync" else 4


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (plus overrides by variable name), or SettingsError
    with one line naming the variable, the value and what it accepts."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


def _one_line(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        variable = _variable_of(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            problems.append(f"{variable} is not set")
        elif not item["loc"] or message.startswith(variable):  # it names the variable
            problems.append(message)
        else:
            shown = repr(item["input"]) if isinstance(item["input"], str | int | float) else ""
            problems.append(f"{variable}={shown} is not valid: {message}".replace("= ", "="))
    return "; ".join(problems)


def _variable_of(location: tuple[Any, ...]) -> str:
    field = Settings.model_fields.get(str(location[0])) if location else None
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias
    return str(location[0]) if location else "(settings)"
