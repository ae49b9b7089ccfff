"""Benchmark this service against `mlflow models serve` on the same model, side by side.

    .venv/bin/python -m bench.run_bench [--duration 15] [--connections 8] [--quick]
        [--mlruns-dir bench/results/mlruns] [--run-id RUN] [--retrain] [--wait-quiet 60]

Phases (each announced on stderr): reuse or train the default model; log the pyfunc peer;
time the in-process limit; start our gunicorn and then the peer, each timed from process
start to ready; check that both answer what the training code predicts; drive each with
wrk for each request shape, noting where the machine's CPU went; read the workers' RSS;
stop everything it started, by pid, whatever happens. Results (see bench/README.md):
bench/results/<date-time>/results.{json,md}, and the markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench import inprocess, load, report, servers, workload
from bench.pyfunc_peer import log_peer
from src.services.model_store import configure_mlflow_environment

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
TOLERANCE = 1e-5

logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--quick", action="store_true", help="5 s runs, shorter timings")
    parser.add_argument("--mlruns-dir", type=Path, default=inprocess.DEFAULT_MLRUNS)
    parser.add_argument("--run-id", help="benchmark this run instead of the newest default one")
    parser.add_argument("--retrain", action="store_true", help="train a fresh default model")
    parser.add_argument(
        "--dev-venv",
        action="store_true",
        help="run our server from this venv, not from a venv of requirements.txt only",
    )
    parser.add_argument(
        "--peer-threads",
        default="1",
        metavar="N|default",
        help="OpenMP threads per peer worker: 1 (as ours; the default) or XGBoost's default",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine: before each start and load run, wait up to this long "
        f"until other processes use less than {load.QUIET_CORES} cores",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 5)
    args.warmup = 1 if args.quick else 2
    args.timing_budget = 0.3 if args.quick else 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="[bench %(asctime)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    configure_mlflow_environment()
    mlruns = args.mlruns_dir.expanduser().resolve()
    tracking_uri = mlruns.as_uri()
    out_dir = BENCH_DIR / "results" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True)

    run_id = args.run_id or inprocess.default_run(mlruns, args.retrain)
    logger.info(f"logging the pyfunc peer of run {run_id} (a sibling run in {mlruns})")
    peer_uri = log_peer(tracking_uri, run_id)
    shapes = workload.shapes()

    model = inprocess.load_model(tracking_uri, run_id)
    references = {s.name: inprocess.training_probabilities(model, s.ours_body) for s in shapes}
    background = load.background_cores()
    if background >= 0.2:
        logger.info(f"other processes are using {background:.2f} cores: expect low, noisy numbers")

    scratch = Path(tempfile.mkdtemp(prefix="hvs-bench-"))
    python = None if args.dev_venv else servers.serving_python()
    ours = servers.ours(run_id, tracking_uri, out_dir, scratch / "prometheus", python)
    peer = servers.peer(peer_uri, tracking_uri, out_dir, scratch, args.peer_threads)
    try:
        (scratch / "prometheus").mkdir()
        for shape in shapes:
            (scratch / f"{shape.name}.ours.json").write_bytes(shape.ours_body)
            (scratch / f"{shape.name}.peer.json").write_bytes(shape.peer_body)
        load.wait_quiet(args.wait_quiet)
        logger.info(f"starting our service (gunicorn, {servers.WORKERS} workers)")
        ours.start()
        cold = {"ours": ours.wait_ready(lambda s: _get(s.url + "/ready").status_code == 200)}
        logger.info(f"ours ready in {cold['ours']:.2f} s")
        load.wait_quiet(args.wait_quiet)
        logger.info("starting mlflow models serve")
        peer.start()
        cold["peer"] = peer.wait_ready(
            lambda s: _post(s.url + s.predict_path, shapes[0].peer_body).status_code == 200
        )
        logger.info(f"peer ready in {cold['peer']:.2f} s; checking both give the same answers")
        correctness, shapes = check_answers(ours, peer, shapes, references)
        if not correctness["ok"]:
            logger.info(f"different answers, not benchmarking: {correctness}")
            return 1
        runs, limits = [], {}
        for shape in shapes:
            # Timed next to the load runs it is compared with: this machine's speed drifts.
            load.wait_quiet(args.wait_quiet)
            logger.info(f"{shape.title}: timing the in-process limit (no HTTP)")
            limits[shape.name] = inprocess.median_seconds(
                lambda body=shape.ours_body: inprocess.limit_request(model, body),
                args.timing_budget,
            )
            for server, side in ((ours, "ours"), (peer, "peer")):
                logger.info(
                    f"{server.name}, {shape.title}: warm-up {args.warmup} s, {args.duration} s load"
                )
                body_file = scratch / f"{shape.name}.{side}.json"
                url = server.url + server.predict_path
                load.wait_quiet(args.wait_quiet)
                load.run_wrk(url, body_file, args.warmup, args.connections)
                result = load.measure(server, url, body_file, args.duration, args.connections)
                runs.append({"server": side, "shape": shape.name, **result})
        logger.info("reading RSS of the workers")
        footprint = {"ours": footprint_of(ours), "peer": footprint_of(peer)}
    finally:
        for server in (peer, ours):
            stopping = time.perf_counter()
            server.stop()
            logger.info(f"stopped {server.name} in {time.perf_counter() - stopping:.1f} s")
        shutil.rmtree(scratch, ignore_errors=True)

    results = assemble(args, run_id, peer_uri, shapes, runs, limits, cold, footprint, correctness)
    results["machine"]["background_cores_before"] = background
    text = report.markdown(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(text)
    logger.info(f"results in {out_dir.relative_to(PROJECT_ROOT)}/results.{{json,md}}")
    sys.stdout.write(text)
    return 0


def check_answers(ours, peer, shapes, references) -> tuple[dict[str, Any], list]:
    """Both servers against the training code's predictions, for every reading of each shape.

    An extra shape (not required) that our service refuses is left out, with a message."""
    worst = {"ours": 0.0, "peer": 0.0}
    kept = []
    for shape in shapes:
        ours_response = _post(ours.url + ours.predict_path, shape.ours_body)
        if not shape.required and 400 <= ours_response.status_code < 500:
            logger.info(f"our service refuses the {shape.title!r} format, leaving it out")
            continue
        ours_response.raise_for_status()
        answers = {
            "ours": [p["hazard_probability"] for p in ours_response.json()["predictions"]],
            "peer": _post(peer.url + peer.predict_path, shape.peer_body, check=True).json()[
                "predictions"
            ],
        }
        expected = references[shape.name]
        for side, got in answers.items():
            got = np.asarray(got, dtype=np.float64)
            diff = np.inf if got.shape != expected.shape else float(np.abs(got - expected).max())
            worst[side] = max(worst[side], diff)
        kept.append(shape)
    correctness = {
        "ours_max_abs_diff": worst["ours"],
        "peer_max_abs_diff": worst["peer"],
        "tolerance": TOLERANCE,
        "ok": max(worst.values()) <= TOLERANCE,
    }
    return correctness, kept


def footprint_of(server: servers.Server) -> dict[str, Any]:
    workers = server.worker_pids()
    tree = server.remember_tree()
    used = re.search(r"Using worker: (\w+)", server.log_path.read_text(errors="replace"))
    return {
        "worker_class": used.group(1) if used else "uvicorn",
        "worker_pids": workers,
        "worker_rss_mb": [round(servers.rss_mb(pid), 1) for pid in workers],
        "worker_threads": [int(servers.proc_status(pid).get("Threads", 0)) for pid in workers],
        "tree_rss_mb": round(sum(servers.rss_mb(pid) for pid in tree), 1),
    }


def assemble(args, run_id, peer_uri, shapes, runs, limits, cold, footprint, correctness):
    by_key = {(row["server"], row["shape"]): row for row in runs}
    ratios, inproc = {}, {}
    for shape in shapes:
        ours_row, peer_row = by_key[("ours", shape.name)], by_key[("peer", shape.name)]
        ratios[shape.name] = {
            "requests_per_s": ours_row["requests_per_s"] / peer_row["requests_per_s"],
            "p99_latency": peer_row["p99_ms"] / ours_row["p99_ms"],
        }
        limit = servers.WORKERS / limits[shape.name]
        inproc[shape.name] = {
            "seconds": limits[shape.name],
            "limit_requests_per_s": limit,
            "ours_percent": 100 * ours_row["requests_per_s"] / limit,
            "peer_percent": 100 * peer_row["requests_per_s"] / limit,
        }
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.run_bench " + " ".join(sys.argv[1:]),
        "code": _code_version(),
        "machine": _machine(),
        "load": {
            "tool": "wrk",
            "threads": 1,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers": servers.WORKERS,
            "peer_omp_threads": args.peer_threads,
            "ours_venv": "development" if args.dev_venv else "requirements.txt only",
        },
        "run_id": run_id,
        "peer_model_uri": peer_uri,
        "shapes": {shape.name: shape.title for shape in shapes},
        "runs": runs,
        "ratios": ratios,
        "inprocess": inproc,
        "servers": {
            side: {"cold_start_s": cold[side], **footprint[side]} for side in ("ours", "peer")
        },
        "correctness": correctness,
        "settings": {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("GUNICORN_", "HVS_", "WEB_CONCURRENCY", "OMP_"))
        },
    }
    results["targets"] = report.targets(results)
    return results


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = ("mlflow", "xgboost", "gunicorn", "uvicorn", "flask", "pydantic", "orjson")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in packages},
    }


def _version(name: str) -> str:
    for distribution in (name, f"{name}-cpu"):
        try:
            return version(distribution)
        except Exception:
            continue
    return "?"


def _code_version() -> str:
    def git(*command: str) -> str:
        return subprocess.run(
            ["git", *command], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in src/" if dirty else "")


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=2)


def _post(url: str, body: bytes, check: bool = False) -> requests.Response:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if check:
        response.raise_for_status()
    return response


if __name__ == "__main__":
    sys.exit(main())
