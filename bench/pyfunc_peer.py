"""The benchmark's peer: the same model as an MLflow pyfunc, served by `mlflow models serve`.

This is what a user would otherwise write: a `PythonModel` that takes a DataFrame of raw
readings (module_id, timestamp as ISO 8601 or epoch seconds, the 14 signals), computes the
project's features with `src.features.engineering.compute_features`, applies the run's
fitted scaler (`StandardScaler.transform`) and booster (`inplace_predict`, single-threaded
through OMP_NUM_THREADS=1 in the server's environment), and returns the probabilities.
The model code is written fairly: numpy after the DataFrame, no per-row Python loop.

It is logged as "models from code": this file itself is the model (`set_model` at the
bottom), so nothing is pickled, and `code_paths=[src]` lets the server import `src`.
It goes into a sibling run, not into the benchmarked run: a training run is the model of
record an operator serves, and a benchmark must not add models to it. The sibling run
lives in its own experiment ("hvs-prediction-api-bench") of the same store, so
`python -m src.training.runs latest` (and `make run`) never pick it, and it is tagged with
the source run's id. The artifacts are the source run's files, digest-checked first.

    .venv/bin/python -m bench.pyfunc_peer --mlruns-dir DIR --run-id RUN   # prints a model URI
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH_EXPERIMENT = "hvs-prediction-api-bench"
PEER_MODEL_NAME = "pyfunc_peer"
SOURCE_RUN_TAG = "bench.source_run_id"


class HvsPyfuncPeer(mlflow.pyfunc.PythonModel):
    """Raw readings in, hazard probabilities out: the whole service's work as one pyfunc."""

    def load_context(self, context: Any) -> None:
        import joblib
        import xgboost as xgb

        from src.features.engineering import FEATURE_NAMES

        config = json.loads(Path(context.artifacts["serving_config"]).read_text())
        self._columns = np.array([FEATURE_NAMES.index(name) for name in config["feature_names"]])
        self._scaler = joblib.load(context.artifacts["scaler"])
        self._booster = xgb.Booster(model_file=context.artifacts["booster"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        from src.data.signals import SIGNAL_NAMES
        from src.features.engineering import compute_features

        signals = model_input.reindex(columns=list(SIGNAL_NAMES)).to_numpy(dtype=np.float64)
        features = compute_features(
            model_input["module_id"].astype(str).to_numpy(),
            _epoch_seconds(model_input["timestamp"]),
            signals,
        )
        scaled = self._scaler.transform(features[:, self._columns])
        return np.asarray(self._booster.inplace_predict(scaled), dtype=np.float64)


def _epoch_seconds(timestamps: pd.Series) -> np.ndarray:
    """ISO 8601 strings (UTC when no offset) or epoch seconds, as float epoch seconds."""
    if pd.api.types.is_numeric_dtype(timestamps):
        return timestamps.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(timestamps, utc=True, format="ISO8601")
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


def log_peer(tracking_uri: str, run_id: str) -> str:
    """Log the peer for `run_id` into a sibling run of the same store; return its model URI."""
    from src.model_artifacts import (
        MODEL_FILE,
        SCALER_FILE,
        SERVING_CONFIG_FILE,
        verify_manifest,
    )
    from src.services.model_store import configure_mlflow_environment, locate_run

    configure_mlflow_environment()
    location = locate_run(tracking_uri, run_id)
    verify_manifest(location.artifacts_dir, location.model_dir)  # the same bytes as ours
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(BENCH_EXPERIMENT)
    with mlflow.start_run(run_name=f"pyfunc-peer-{run_id[:8]}", tags={SOURCE_RUN_TAG: run_id}):
        info = mlflow.pyfunc.log_model(
            name=PEER_MODEL_NAME,
            python_model=str(Path(__file__).resolve()),
            artifacts={
                "scaler": str(location.artifacts_dir / SCALER_FILE),
                "serving_config": str(location.artifacts_dir / SERVING_CONFIG_FILE),
                "booster": str(location.model_dir / MODEL_FILE),
            },
            code_paths=[str(PROJECT_ROOT / "src")],
            # Listed, not inferred: inference imports the model in a subprocess (slow), and
            # `--env-manager local` serves from this venv anyway.
            pip_requirements=["xgboost-cpu", "scikit-learn", "pandas", "numpy", "joblib"],
        )
    return info.model_uri


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlruns-dir", type=Path, default=PROJECT_ROOT / "mlruns")
    parser.add_argument("--run-id", required=True, help="the training run to wrap")
    args = parser.parse_args(argv)
    sys.stdout.write(log_peer(args.mlruns_dir.resolve().as_uri(), args.run_id) + "\n")
    return 0


# Models from code: MLflow runs this file when it loads the model and takes this object.
mlflow.models.set_model(HvsPyfuncPeer())

if __name__ == "__main__":
    sys.exit(main())
