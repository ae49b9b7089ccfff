"""Where a served POST /predict spends its time: py-spy on gunicorn's workers under wrk.

    .venv/bin/python -m bench.profile_served [--seconds 10] [--shapes one,batch,columns]
        [--run-id RUN] [--mlruns-dir bench/results/mlruns] [--top 12]

profile_request.py times the service's own stages in one process; this shows the rest of
a real request too: gunicorn's HTTP parsing and socket work, Flask, Werkzeug and
prometheus-flask-exporter. For each request shape it starts our gunicorn (2 workers, as
the benchmark does), drives it with wrk (8 connections), samples both workers with py-spy
meanwhile (250 Hz, without pausing them), and prints where the workers' busy time went: by
component (the package of the innermost Python frame; C code such as orjson, numpy or
onnxruntime counts for the Python line that called it) and the busiest lines. Idle time
(a worker waiting in accept) is not sampled, nor is the master. Needs `wrk` and `py-spy`
(requirements-dev.txt), and may need `sysctl kernel.yama.ptrace_scope=0` where ptrace is
restricted. Stops what it started, by pid.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import requests

from bench import inprocess, load, servers, workload
from src.services.model_store import configure_mlflow_environment

logger = logging.getLogger("bench.profile_served")

COMPONENTS = (
    ("gunicorn/", "gunicorn: HTTP parsing, socket reads and writes"),
    ("src/api/drain.py", "gunicorn: HTTP parsing, socket reads and writes"),
    ("src/api/server.py", "gunicorn: HTTP parsing, socket reads and writes"),
    ("flask/", "Flask and Werkzeug"),
    ("werkzeug/", "Flask and Werkzeug"),
    ("prometheus_flask_exporter/", "prometheus-flask-exporter"),
    ("prometheus_client/", "prometheus_client: metric updates, the exporter's and ours"),
    ("src/api/metrics.py", "prometheus_client: metric updates, the exporter's and ours"),
    ("src/services/metrics.py", "prometheus_client: metric updates, the exporter's and ours"),
    ("pydantic", "pydantic (validation)"),
    ("src/api/schemas.py", "pydantic (validation)"),
    ("src/api/routes.py", "the route: orjson parse and dump, response building"),
    ("src/api/responses.py", "the route: orjson parse and dump, response building"),
    ("src/features/", "features (compute_features)"),
    ("src/services/", "scale and predict (XGBoost, ONNX)"),
    ("src/model_onnx.py", "scale and predict (XGBoost, ONNX)"),
    ("onnxruntime/", "scale and predict (XGBoost, ONNX)"),
    ("xgboost/", "scale and predict (XGBoost, ONNX)"),
    ("numpy/", "numpy helpers"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds of load per shape")
    parser.add_argument("--shapes", default="one,batch,columns", help="request shapes")
    parser.add_argument("--mlruns-dir", type=Path, default=inprocess.DEFAULT_MLRUNS)
    parser.add_argument("--run-id", help="profile this run instead of the newest default one")
    parser.add_argument("--top", type=int, default=12, help="how many of the busiest lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[profile %(asctime)s] %(message)s"
    )
    for noisy in ("mlflow", "alembic", "urllib3", "src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    spy = shutil.which("py-spy", path=str(servers.VENV_BIN)) or shutil.which("py-spy")
    if not spy or not shutil.which("wrk"):
        sys.exit("needs py-spy (pip install -r requirements-dev.txt) and wrk (apt-get install wrk)")
    configure_mlflow_environment()
    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    wanted = args.shapes.split(",")
    shapes = [shape for shape in workload.shapes() if shape.name in wanted]
    python = servers.serving_python()
    scratch = Path(tempfile.mkdtemp(prefix="hvs-profile-"))
    try:
        for shape in shapes:
            samples = profile_shape(
                spy, python, run_id, mlruns.as_uri(), shape, scratch, args.seconds
            )
            sys.stdout.write(report(shape.title, samples, args.top))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def profile_shape(
    spy, python: Path, run_id, tracking_uri, shape, scratch: Path, seconds: int
) -> Counter:
    """Innermost Python frame -> samples, over both workers, under wrk load."""
    body = scratch / f"{shape.name}.json"
    body.write_bytes(shape.ours_body)
    metrics_dir = scratch / f"prometheus-{shape.name}"
    metrics_dir.mkdir()
    server = servers.ours("embedded", run_id, tracking_uri, scratch, metrics_dir, python)
    server.start()
    try:
        server.wait_ready(lambda s: requests.get(s.url + "/ready", timeout=2).status_code == 200)
        url = server.url + "/predict"
        load.run_wrk(url, body, 2, 8)  # warm-up
        raw = scratch / f"{shape.name}.spy"
        logger.info(f"{shape.title}: {seconds} s of wrk load, py-spy on both workers")
        command = [
            spy,
            "record",
            "--subprocesses",
            "--rate",
            "250",
            "--nonblocking",
            "--duration",
            str(seconds),
        ]
        command += ["--format", "raw", "--output", str(raw), "--pid", str(server.process.pid)]
        recorder = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        result = load.run_wrk(url, body, seconds, 8)
        _, error = recorder.communicate(timeout=seconds + 30)
        if recorder.returncode != 0 or not raw.exists():
            sys.exit(f"py-spy failed ({error.decode().strip()}); see the note on ptrace above")
        logger.info(f"{shape.title}: {result['requests_per_s']:,.0f} requests/s meanwhile")
    finally:
        server.stop()
    innermost: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "Worker.init_process" in stack:  # a worker's stack, not the master's
            innermost[stack.split(";")[-1]] += int(count)
    return innermost


def component(frame: str) -> str:
    location = frame[frame.rfind("(") + 1 :]
    for prefix, name in COMPONENTS:
        if location.startswith(prefix) or f"/{prefix}" in location:
            return name
    return "other (Python's standard library, logging, ...)"


def report(title: str, innermost: Counter, top: int) -> str:
    total = sum(innermost.values()) or 1
    by_component: Counter = Counter()
    for frame, count in innermost.items():
        by_component[component(frame)] += count
    lines = [
        f"\n### {title}: where the workers' busy time went ({total:,} samples)\n",
        "| component | % of busy time |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {100 * n / total:.1f} % |" for name, n in by_component.most_common()]
    lines += ["", "| busiest line (innermost Python frame) | % |", "|---|---:|"]
    lines += [f"| `{frame}` | {100 * n / total:.1f} % |" for frame, n in innermost.most_common(top)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
