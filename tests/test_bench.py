"""The benchmark's in-process profile still runs, and still measures what the route does.

The benchmark itself (wrk, `mlflow models serve`, minutes of load) is not run here; its
numbers live in bench/README.md. This keeps its cheapest part from rotting unseen.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


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
