"""Where one POST /predict spends its time, stage by stage, in one process (no HTTP).

    .venv/bin/python bench/profile_request.py [--seconds 2] [--run-id RUN]
        [--mlruns-dir bench/results/mlruns] [--metrics {multiprocess,memory}]

Stages, each the service's own function (imported, not copied, so the profile follows
the code as it changes), timed one after the other on the benchmark's request shapes:

    parse      orjson.loads of the body, as routes.predict does
    validate   schemas.parse_predict_request: pydantic, then the arrays of a ReadingBatch
    features   compute_features on those arrays
    scale      the scaler's affine transform, as score() applies it
    predict    the service's predict_scaled (ONNX for few rows, XGBoost above) and the threshold
    metrics    ModelMetrics.observe_predictions on a throwaway registry; by default with
               PROMETHEUS_MULTIPROC_DIR set, as under gunicorn (file-backed values)
    serialize  the response dict as routes.predict builds it, then orjson.dumps; checked
               byte for byte against the real route's answer

Two more rows for comparison: score() as one call (features + scale + predict as the
service runs them), and the whole request through Flask's test client (routing, Werkzeug,
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's `src`

logger = logging.getLogger("bench.profile")

STAGES = ("parse", "validate", "features", "scale", "predict", "metrics", "serialize")


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
    from src.api import create_app, routes
    from src.settings import ServiceSettings

    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    settings = ServiceSettings(
        BEST_MLFLOW_RUN_ID=run_id,
        MLFLOW_TRACKING_URI=mlruns.as_uri(),
        HVS_LOG_FORMAT="text",
        HVS_LOG_LEVEL="WARNING",
    )
    app = create_app(settings, load="now")
    model = app.extensions[routes.SERVICE_KEY].model
    columns = {}
    busy_before, _ = machine_cpu_seconds()
    self_before, started = self_cpu_seconds(), time.perf_counter()
    with app.test_client() as client:
        for shape in workload.shapes():
            logger.info(f"{shape.title}: {len(shape.ours_body):,} bytes, {args.seconds:g} s")
            columns[shape.title] = profile_shape(
                app, client, model, settings, shape.ours_body, args.seconds
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


def profile_shape(app, client, model, settings, body: bytes, seconds: float) -> dict[str, float]:
    """Median microseconds of each stage, of score() and of the whole test-client request."""
    import orjson
    from prometheus_client import CollectorRegistry

    from src.api import routes, schemas
    from src.api.metrics import ModelMetrics
    from src.features.engineering import compute_features
    from src.services.prediction_service import predict_scaled, score

    metrics = ModelMetrics(CollectorRegistry())
    samples: dict[str, list[float]] = {name: [] for name in (*STAGES, "score", "request")}
    expected = None
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples["parse"]) < 10:
        t0 = time.process_time()
        decoded = orjson.loads(body)
        t1 = time.process_time()
        parsed = schemas.parse_predict_request(decoded, settings.max_batch_readings)
        t2 = time.process_time()
        batch = parsed.batch
        features = compute_features(batch.module_ids, batch.timestamps_s, batch.signals)
        t3 = time.process_time()
        scaled = (features[:, model.feature_columns] - model.scale_mean) * model.scale_inverse_std
        t4 = time.process_time()
        probabilities = predict_scaled(model, scaled)
        hazardous = probabilities >= model.threshold
        t5 = time.process_time()
        metrics.observe_predictions(probabilities, hazardous)
        t6 = time.process_time()
        answer = orjson.dumps(
            response_body(model, parsed, probabilities, hazardous), option=routes._JSON_OPTIONS
        )
        t7 = time.process_time()
        score(model, batch)
        t8 = time.process_time()
        response = client.post("/predict", data=body, content_type="application/json")
        t9 = time.process_time()
        for name, start, end in zip(
            (*STAGES, "score", "request"),
            (t0, t1, t2, t3, t4, t5, t6, t7, t8),
            (t1, t2, t3, t4, t5, t6, t7, t8, t9),
            strict=True,
        ):
            samples[name].append((end - start) * 1e6)
        if expected is None:
            expected = response.data
            if response.status_code != 200 or answer != expected:
                sys.stderr.write(
                    "warning: the serialize stage no longer matches routes.predict's answer "
                    f"(status {response.status_code}); update response_body() here\n"
                )
    return {name: statistics.median(values) for name, values in samples.items()}


def response_body(model, parsed, probabilities, hazardous) -> dict:
    """The response as routes.predict builds it (kept in step by the byte check above)."""
    run_id = model.run_id
    return {
        "model_version": run_id,
        "threshold": model.threshold,
        "predictions": [
            {
                "module_id": module_id,
                "timestamp": timestamp,
                "hazard_probability": probability,
                "hazardous": flagged,
                "model_version": run_id,
            }
            for module_id, timestamp, probability, flagged in zip(
                parsed.batch.module_ids,
                parsed.timestamps,
                probabilities.tolist(),
                hazardous.tolist(),
                strict=True,
            )
        ],
    }


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
        ("score", "score() in one call (= features + scale + predict)"),
        ("request", "whole request, Flask test client"),
    ):
        cells = [
            f"{columns[t][name]:,.0f} | {100 * columns[t][name] / totals[t]:.0f} %" for t in titles
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
