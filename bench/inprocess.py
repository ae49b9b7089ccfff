"""The model under test in this process: which run, the in-process limit, and the training
code's own answers for the correctness check.

The limit is the least work any server must do for a request, timed (CPU time) in one
process with no HTTP: decode the raw body with orjson, pull the arrays out of the decoded
readings (no validation), compute the project's features, apply the scaler's affine
transform and predict with the runtime the service picks for that many readings (the
ONNX copy on onnxruntime up to HVS_ONNX_MAX_ROWS, XGBoost's `inplace_predict` above), one
thread. One worker cannot serve more than
1 / (that time) requests per second; two workers on two cores, no more than twice that.
It is an upper bound nobody reaches: it leaves out HTTP, validation, metrics and the
response, and wrk shares the same two cores during the load.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from src.data.signals import SIGNAL_NAMES
from src.errors import ModelLoadError
from src.model_artifacts import SCALER_FILE
from src.readings import ReadingBatch
from src.services.model_loader import load_run_artifacts
from src.services.model_store import configure_mlflow_environment
from src.services.prediction_service import LoadedModel, PredictionService
from src.settings import Settings

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MLRUNS = PROJECT_ROOT / "bench" / "results" / "mlruns"
"""The benchmark's own store (gitignored), so it never adds runs to ./mlruns."""


def default_run(mlruns: Path, retrain: bool = False) -> str:
    """The newest finished run trained with the default configuration, or a new one."""
    from mlflow.tracking import MlflowClient

    from src.training.config import TrainingConfig
    from src.training.tracking import DEFAULT_EXPERIMENT

    configure_mlflow_environment()
    if not retrain and mlruns.is_dir():
        client = MlflowClient(tracking_uri=mlruns.as_uri())
        experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
        wanted = {key: str(value) for key, value in TrainingConfig().as_params().items()}
        for run in client.search_runs(
            [experiment.experiment_id] if experiment else [],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        ):
            if all(run.data.params.get(key) == value for key, value in wanted.items()):
                try:  # the service's own check: a run an older version trained is refused
                    load_run_artifacts(
                        Settings(
                            BEST_MLFLOW_RUN_ID=run.info.run_id,
                            MLFLOW_TRACKING_URI=mlruns.as_uri(),
                        )
                    )
                except ModelLoadError:
                    continue
                logger.info(f"reusing default run {run.info.run_id} from {mlruns}")
                return run.info.run_id
    logger.info(f"training the default model into {mlruns} (about 20-40 s)")
    completed = subprocess.run(
        [sys.executable, "-m", "src.training", "--mlruns-dir", str(mlruns)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=600,
    )
    return completed.stdout.strip().splitlines()[-1]


def load_model(tracking_uri: str, run_id: str) -> LoadedModel:
    """The run as the service loads it (one XGBoost thread, digests checked, warmed up)."""
    settings = Settings(
        BEST_MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking_uri, HVS_LOG_FORMAT="text"
    )
    return PredictionService(settings).load()


def raw_arrays(body: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Decode a `{"readings": [...]}` or `{"columns": {...}}` body into arrays, trusting
    every value."""
    decoded = orjson.loads(body)
    if "columns" in decoded:
        columns = decoded["columns"]
        timestamps = np.array([_epoch_seconds(t) for t in columns["timestamp"]])
        signals = np.column_stack(
            [np.array(columns[name], dtype=np.float64) for name in SIGNAL_NAMES]
        )
        return columns["module_id"], timestamps, signals
    readings = decoded["readings"]
    module_ids = [reading["module_id"] for reading in readings]
    timestamps = np.array([_epoch_seconds(reading["timestamp"]) for reading in readings])
    signals = np.array(
        [[reading[name] for name in SIGNAL_NAMES] for reading in readings], dtype=np.float64
    )  # None -> NaN
    return module_ids, timestamps, signals


def limit_request(model: LoadedModel, body: bytes) -> np.ndarray:
    """One request's unavoidable work: parse, then the service's own features, scale and
    predict (`LoadedModel.score`), so the limit gets every speed-up the service gets."""
    return model.score(ReadingBatch(*raw_arrays(body)))


def median_seconds(work: Any, budget_s: float = 1.0, min_repeats: int = 20) -> float:
    """Median CPU time of work() over as many calls as fit in budget_s (at least min).

    CPU time of this process, not wall time: on a shared machine other processes stretch
    wall time but not the work itself, and the work is single-threaded, so on a quiet
    machine the two agree."""
    work()  # warm caches
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_repeats or time.perf_counter() < deadline:
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times)


def training_probabilities(model: LoadedModel, body: bytes) -> np.ndarray:
    """What the training code predicts for these readings: its own `predict_probabilities`
    with the fitted StandardScaler object, the reference both servers must reproduce."""
    import joblib

    from src.training.train import predict_probabilities

    scaler = joblib.load(model.artifacts.location.artifacts_dir / SCALER_FILE)
    features = model.features(ReadingBatch(*raw_arrays(body)))
    return np.asarray(predict_probabilities(model.booster, scaler, features), dtype=np.float64)


def _epoch_seconds(timestamp: str | float) -> float:
    if isinstance(timestamp, int | float):
        return float(timestamp)
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
