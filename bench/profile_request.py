"""Where one POST /predict spends its time, stage by stage, in one process (no HTTP).

    .venv/bin/python -m bench.profile_request [--seconds 2] [--run-id RUN]
        [--mlruns-dir bench/results/mlruns] [--metrics {multiprocess,memory}]

Stages, each the service's own function (imported, not copied, so the profile follows
the code as it changes), timed one after the other on the benchmark's request shapes:

    parse      orjson.loads of the body, as routes.predict does
    validate   schemas.parse_predict_request: pydantic, then the arrays of a ReadingBatch
    history    \
    features    |
    scale       | PredictionService.predict, timed by the service itself (its `timings`):
    predict     | the module-history exchange, the features over request and history, the
    levels      | affine scale, ONNX or XGBoost, guards and levels, the explanations of
    explain     | readings at warning or alarm (bench/explain_cost.py), the model's metrics
    metrics    /  (file-backed under PROMETHEUS_MULTIPROC_DIR, as under gunicorn)
    serialize  responses.prediction_body + json_response, the route's own; checked byte for
               byte against the real route's answer

Two more rows for comparison: LoadedModel.score() as one call (features + scale + predict
as the service runs them), and the whole request through Flask's test client (routing, Werkzeug,
prometheus-flask-exporter; no socket, but the test client's own environ building).
Median of each stage over as many repetitions as fit in --seconds per shape, in CPU time
of this process (everything here runs on one thread), so that other processes on a shared
machine stretch the run but not the numbers; the last line says how busy they were.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("bench.profile")

STAGES = (
    "parse",
    "validate",
    "history",
    "features",
    "scale",
    "predict",
    "levels",
    "explain",
    "metrics",
    "drift",
    "serialize",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.inprocess import DEFAULT_MLRUNS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per shape")
    parser.add_argument("--mlruns-dir", type=Path, default=DEFAULT_MLRUNS)
    parser.add_argument("--run-id", help="profile this run instead of the newest default one")
    parser.add_argument(
        "--metrics",
        choices=("multiprocess", "memory"),
        default="multiprocess",
        help="prometheus_client values as under gunicorn (default) or in memory",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[profile] %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    metrics_dir = tempfile.TemporaryDirectory(prefix="hvs-profile-metrics-")
    if args.metrics == "multiprocess":
        # Before anything imports prometheus_client: it picks its value class at import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    from bench import inprocess, workload
    from bench.load import self_cpu_seconds
    from bench.servers import machine_cpu_seconds
    from src.api import create_app
    from src.api.extension import get_service
    from src.settings import Settings

    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    settings = Settings(
        BEST_MLFLOW_RUN_ID=run_id,
        MLFLOW_TRACKING_URI=mlruns.as_uri(),
        HVS_LOG_FORMAT="text",
        HVS_LOG_LEVEL="ERROR",  # the audit trail (WARNING) would mix into the report
    )
    app = create_app(settings, load="now")
    service = get_service(app)
    columns = {}
    busy_before, _ = machine_cpu_seconds()
    self_before, started = self_cpu_seconds(), time.perf_counter()
    with app.test_client() as client:
        for shape in workload.shapes():
            logger.info(f"{shape.title}: {len(shape.ours_body):,} bytes, {args.seconds:g} s")
            columns[shape.title] = profile_shape(
                app, client, service, settings, shape.ours_body, args.seconds
            )
    others = machine_cpu_seconds()[0] - busy_before - (self_cpu_seconds() - self_before)
    others_cores = max(others, 0.0) / (time.perf_counter() - started)
    sys.stdout.write(table(columns, args.metrics))
    sys.stdout.write(
        f"\nOther processes used {others_cores:.2f} of {os.cpu_count()} cores meanwhile"
        + (": rerun on a quiet machine.\n" if others_cores >= 0.2 else ".\n")
    )
    metrics_dir.cleanup()
    return 0


def profile_shape(app, client, service, settings, body: bytes, seconds: float) -> dict[str, float]:
    """Median microseconds of each stage, of score() and of the whole test-client request."""
    import orjson

    from src.api import schemas
    from src.api.responses import json_response, prediction_body

    service_stages = STAGES[2:-1]  # what PredictionService.predict times itself
    samples: dict[str, list[float]] = {name: [] for name in (*STAGES, "score", "request")}
    expected = None
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples["parse"]) < 10:
        t0 = time.process_time()
        decoded = orjson.loads(body)
        t1 = time.process_time()
        batch = schemas.parse_predict_request(decoded, settings.max_batch_readings)
        t2 = time.process_time()
        timings: dict[str, float] = {}
        predictions = service.predict(batch, timings)
        t3 = time.process_time()
        answer = json_response(prediction_body(batch, predictions)).get_data()
        t4 = time.process_time()
        service.model.score(batch)
        t5 = time.process_time()
        response = client.post("/predict", data=body, content_type="application/json")
        t6 = time.process_time()
        measured = {"parse": t1 - t0, "validate": t2 - t1, "serialize": t4 - t3}
        measured.update({name: timings.get(name, 0.0) for name in service_stages})
        measured.update({"score": t5 - t4, "request": t6 - t5})
        for name, value in measured.items():
            samples[name].append(value * 1e6)
        if expected is None:
            expected = response.data
            if response.status_code != 200 or answer != expected:
                sys.stderr.write(
                    "warning: the serialize stage no longer matches routes.predict's answer "
                    f"(status {response.status_code}): the route no longer builds its body "
                    "with responses.prediction_body; profile what it does instead\n"
                )
    return {name: statistics.median(values) for name, values in samples.items()}


def table(columns: dict[str, dict[str, float]], metrics_mode: str) -> str:
    titles = list(columns)
    lines = [
        f"In-process profile of one /predict (median CPU µs; metrics: {metrics_mode})",
        "",
        "| stage | " + " | ".join(f"{title} µs | %" for title in titles) + " |",
        "|---|" + "---:|---:|" * len(titles),
    ]
    totals = {title: sum(columns[title][name] for name in STAGES) for title in titles}
    for name in STAGES:
        cells = [
            f"{columns[t][name]:,.0f} | {100 * columns[t][name] / totals[t]:.0f} %" for t in titles
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **sum of stages** | "
        + " | ".join(f"**{totals[t]:,.0f}** | 100 %" for t in titles)
        + " |"
    )
    for name, label in (
        ("score", "LoadedModel.score() in one call (= features + scale + predict)"),
        ("request", "whole request, Flask test client"),
    ):
        cells = [
            f"{columns[t][name]:,.0f} | {100 * columns[t][name] / totals[t]:.0f} %" for t in titles
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
