"""The benchmark's in-process profile still runs, and still measures what the route does.

The benchmark itself (wrk, MLServer, `mlflow models serve`, minutes of load) is not run
here; its numbers live in bench/README.md. This keeps its cheapest parts from rotting
unseen: the in-process profile, and the ceiling served through src/api/server.py's --app.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from tests.conftest import PROJECT_ROOT
from tests.servers import free_port


def test_profile_request_runs_and_its_response_matches_the_route(trained_store):
    run = ["--run-id", trained_store.run_id, "--mlruns-dir", str(trained_store.mlruns)]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.profile_request", "--seconds", "0.05", *run],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "warning: the serialize stage" not in completed.stderr  # the byte-for-byte check
    rows = {line.split("|")[1].strip() for line in completed.stdout.splitlines() if "|" in line}
    stages = {
        "parse",
        "validate",
        "history",
        "features",
        "scale",
        "predict",
        "metrics",
        "serialize",
    }
    assert stages <= rows, completed.stdout
    assert "whole request, Flask test client" in rows


def test_the_ceiling_answers_empty_through_our_server_code(trained_store, tmp_path):
    """`python -m src.api.server --app bench.ceiling:create_app`: the same gunicorn start
    (the run checked, two workers), but each worker serves the do-nothing app."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "BEST_MLFLOW_RUN_ID": trained_store.run_id,
        "MLFLOW_TRACKING_URI": trained_store.mlruns.as_uri(),
        "PROMETHEUS_MULTIPROC_DIR": "",
        "HVS_DRAIN_SECONDS": "0",
    }
    log = (tmp_path / "ceiling.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "src.api.server", "--app", "bench.ceiling:create_app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            assert server.poll() is None, (tmp_path / "ceiling.log").read_text()
            try:
                if requests.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        answer = requests.post(url + "/predict", data=b'{"readings": []}', timeout=5)
        assert answer.status_code == 200
        assert answer.content == b"{}"
        assert "Using worker: sync" in (tmp_path / "ceiling.log").read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log.close()


def test_explain_cost_runs_and_checks_where_explanations_are(trained_store):
    """bench/explain_cost.py checks each case's explanations before timing it (no timing
    is asserted here: the numbers are in docs/explanations.md)."""
    run = ["--run-id", trained_store.run_id, "--mlruns-dir", str(trained_store.mlruns)]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.explain_cost", "--seconds", "0.01", "--rounds", "1", *run],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    rows = [line.split("|")[1].strip() for line in completed.stdout.splitlines() if "|" in line]
    assert '1000 readings, "explain": true' in rows, completed.stdout
