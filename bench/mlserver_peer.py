"""The strongest peer: MLServer's xgboost runtime on the same booster, fed the model's input.

MLServer cannot compute this project's features (history windows, rates, slopes) nor apply
its scaler: its xgboost runtime takes a tensor and calls the model. So it gets less work
than any other server here: each shape's readings turned, once, by the service's own
`LoadedModel.features` and `LoadedModel.scale` into the engineered, scaled rows, sent as a
V2 (Open Inference Protocol) FP32 tensor. No validation, no feature engineering, no
scaling, no prediction metrics, no history: the report says so.

Setup, as the benchmark runs it:
- its own venv, bench/results/mlserver-venv, from bench/requirements-mlserver.txt (MLServer
  1.7.1, xgboost-cpu at the project's version) plus `mlserver-xgboost` without its
  dependencies (it asks for the GPU build of the same xgboost); made on first use (~1 min);
- a model repository in the scratch folder: settings.json (2 `parallel_workers`,
  `debug: false` so no access log, as ours) and model-settings.json for
  `mlserver_xgboost.XGBoostModel` on a copy of the run's `model.ubj`;
- OMP_NUM_THREADS=1, the one OpenMP thread per worker ours has;
- free loopback ports for HTTP, gRPC and metrics (it always opens all three).

The booster was saved by `Booster.save_model` (no scikit-learn attributes), so the runtime
loads it as an `XGBRegressor` whose `predict` output is the binary:logistic probability.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

from bench import servers

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = PROJECT_ROOT / "bench" / "requirements-mlserver.txt"
RUNTIME = "mlserver-xgboost==1.7.1"
"""Installed with --no-deps: see bench/requirements-mlserver.txt."""
VENV = PROJECT_ROOT / "bench" / "results" / "mlserver-venv"
MODEL_NAME = "hvs"
INPUT_NAME = "features"
OUTPUT_NAME = "predict"


def mlserver_bin() -> Path:
    """The `mlserver` command of the peer's venv, made (again) when its requirements change."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + RUNTIME.encode()).hexdigest()
    command, stamp = VENV / "bin" / "mlserver", VENV / "requirements.sha256"
    if command.exists() and stamp.exists() and stamp.read_text() == wanted:
        return command
    logger.info(f"making {VENV.relative_to(PROJECT_ROOT)}: MLServer and its xgboost runtime")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    pip.append("--disable-pip-version-check")
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "--no-deps", RUNTIME], check=True)
    stamp.write_text(wanted)
    return command


def versions() -> dict[str, str]:
    """Versions of what the peer's venv runs."""
    completed = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    wanted = ("mlserver", "mlserver-xgboost", "xgboost-cpu", "uvicorn", "fastapi", "numpy")
    return {p["name"]: p["version"] for p in json.loads(completed.stdout) if p["name"] in wanted}


def model_repository(folder: Path, booster_file: Path, run_id: str) -> Path:
    """settings.json, model-settings.json and the booster, in `folder`."""
    model_dir = folder / MODEL_NAME
    model_dir.mkdir(parents=True)
    shutil.copy2(booster_file, model_dir / "model.ubj")
    settings = {
        "parallel_workers": servers.WORKERS,
        "debug": False,  # debug is MLServer's default, and turns on its access log
        "host": "127.0.0.1",
        "metrics_dir": str(folder / ".metrics"),
        "environments_dir": str(folder / ".envs"),
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.ubj", "version": run_id},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return folder


def server(repository: Path, log_dir: Path) -> servers.Server:
    """`mlserver start` on the repository, started and stopped like every other server."""
    command = mlserver_bin()
    port = servers.free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(servers.free_port()),
        "MLSERVER_METRICS_PORT": str(servers.free_port()),
    }
    env.pop("PYTHONPATH", None)
    return servers.Server(
        name="MLServer",
        command=[str(command), "start", str(repository)],
        env=env,
        cwd=repository,
        log_path=log_dir / "mlserver.log",
        predict_path=f"/v2/models/{MODEL_NAME}/infer",
        workers_are="spawned",
        port=port,
        key="mlserver",
        body="v2",
    )


def v2_body(rows: np.ndarray) -> bytes:
    """A V2 inference request of the engineered, scaled rows as one FP32 tensor."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    request = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": OUTPUT_NAME}],
    }
    # NaN (a missing feature) is not JSON: orjson writes null, which MLServer's numpy codec
    # reads back as NaN, XGBoost's missing value.
    return orjson.dumps(request)


def probabilities(answer: dict) -> np.ndarray:
    output = next(o for o in answer["outputs"] if o["name"] == OUTPUT_NAME)
    return np.asarray(output["data"], dtype=np.float64)
