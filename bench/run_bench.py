"""Benchmark this service against MLServer, `mlflow models serve` and a do-nothing ceiling.

    .venv/bin/python -m bench.run_bench [--rounds 3] [--duration 15] [--connections 8]
        [--quick] [--wait-quiet 60] [--servers stateless,embedded,...] [--shapes one,...]
        [--mlruns-dir bench/results/mlruns] [--run-id RUN] [--retrain]

Phases (each announced on stderr): reuse or train the default model; log the pyfunc peer;
make MLServer's inputs (the engineered, scaled rows); start redis-server, then each server
on its own, timed from process start to ready; check that every one answers what the
training code predicts; then `--rounds` rounds, each timing the in-process limit and
driving every (server, shape) pair once with wrk, in an order rotated between rounds,
noting where the machine's CPU went; read the workers' RSS; stop everything it started,
by pid, whatever happens. Results (see bench/README.md):
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
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis

from bench import checks, inprocess, load, mlserver_peer, report, servers, targets, workload
from bench.pyfunc_peer import log_peer
from src.readings import ReadingBatch
from src.services.model_store import configure_mlflow_environment

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent

SERVERS = ("stateless", "embedded", "redis", "peer", "mlserver", "ceiling")
"""Every server under test, in start order (and the order within a round's shape)."""
SHAPES = ("one", "batch", "columns", "stream")
OURS_KEYS = ("stateless", "embedded", "redis")
HISTORY_KEYS = ("embedded", "redis")
PEER_SHAPES = ("one", "batch", "columns")
"""MLServer and `mlflow models serve` have no history: no streaming shape for them."""

logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="every run once per round (default 3)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--quick", action="store_true", help="5 s runs, 1 round, short timings")
    parser.add_argument("--servers", default=",".join(SERVERS), help="a subset, to try things")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="a subset, to try things")
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
        help="OpenMP threads per mlflow worker: 1 (as ours; the default) or XGBoost's default",
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
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = 1 if args.quick else 2
    args.timing_budget = 0.3 if args.quick else 1.0
    args.servers = [key for key in SERVERS if key in args.servers.split(",")]
    args.shapes = [name for name in SHAPES if name in args.shapes.split(",")]
    return args


def plan(keys: list[str], shape_names: list[str]) -> list[tuple[str, str]]:
    """Every (server, shape) pair that makes sense, grouped by shape."""
    pairs = []
    for shape in shape_names:
        for key in keys:
            if shape == "stream" and key in ("peer", "mlserver"):
                continue
            pairs.append((key, shape))
    return pairs


def rotated(pairs: list[tuple[str, str]], round_index: int, rounds: int) -> list:
    """Round r starts r/rounds of the way into the list, so each pair runs early in one
    round and late in another (the machine's speed drifts over minutes)."""
    start = round_index * len(pairs) // rounds
    return pairs[start:] + pairs[:start]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="[bench %(asctime)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "src"):
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
    peer_uri = None
    if "peer" in args.servers:
        logger.info(f"logging the pyfunc peer of run {run_id} (a sibling run in {mlruns})")
        peer_uri = log_peer(tracking_uri, run_id)
    model = inprocess.load_model(tracking_uri, run_id)
    shapes = {shape.name: shape for shape in [*workload.shapes(), workload.stream_shape()]}
    for name in PEER_SHAPES:  # MLServer's input: the service's own features and scaling
        readings = ReadingBatch(*inprocess.raw_arrays(shapes[name].ours_body))
        rows = model.scale(model.features(readings))
        shapes[name] = replace(shapes[name], v2_body=mlserver_peer.v2_body(rows))
    references = {
        name: inprocess.training_probabilities(model, shapes[name].ours_body)
        for name in PEER_SHAPES
    }
    background = load.background_cores()
    if background >= 0.2:
        logger.info(f"other processes are using {background:.2f} cores: expect low, noisy numbers")

    scratch = Path(tempfile.mkdtemp(prefix="hvs-bench-"))
    python = None if args.dev_venv else servers.serving_python()
    started: list[servers.Server] = []
    try:
        fleet = make_servers(args, run_id, tracking_uri, peer_uri, out_dir, scratch, python)
        cold = start_all(fleet, args.wait_quiet, started, shapes)
        correctness = check_all(fleet, model, shapes, references)
        if not correctness["ok"]:
            logger.info(f"different answers, not benchmarking: {correctness}")
            return 1
        runs, limits = run_rounds(args, fleet, shapes, model, scratch)
        logger.info("reading RSS of the workers")
        footprint = {key: footprint_of(server) for key, server in fleet.items()}
    finally:
        for server in reversed(started):
            stopping = time.perf_counter()
            server.stop()
            logger.info(f"stopped {server.name} in {time.perf_counter() - stopping:.1f} s")
        shutil.rmtree(scratch, ignore_errors=True)

    results = assemble(args, run_id, peer_uri, shapes, fleet, runs, limits, cold, footprint)
    results["correctness"] = correctness
    results["machine"]["background_cores_before"] = background
    results["targets"] = targets.judge(results)
    text = report.markdown(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(text)
    logger.info(f"results in {out_dir.relative_to(PROJECT_ROOT)}/results.{{json,md}}")
    sys.stdout.write(text)
    return 0


def make_servers(args, run_id, tracking_uri, peer_uri, out_dir, scratch, python) -> dict:
    """The servers asked for, in start order; redis-server first, as the Redis row's
    companion (its CPU counts for that row)."""
    fleet: dict[str, servers.Server] = {}
    for key in args.servers:
        if key == "redis":
            store = servers.redis_server(out_dir, scratch)
            fleet["redis-server"] = store
        if key in (*OURS_KEYS, "ceiling"):
            env = {}
            if key == "redis":
                env["HVS_HISTORY_URL"] = f"redis://127.0.0.1:{store.port}/0"
            metrics = scratch / f"prometheus-{key}"
            metrics.mkdir()
            server = servers.ours(key, run_id, tracking_uri, out_dir, metrics, python, env)
            if key == "redis":
                server.companions["redis"] = store
        elif key == "peer":
            server = servers.peer(peer_uri, tracking_uri, out_dir, scratch, args.peer_threads)
        else:
            repository = mlserver_peer.model_repository(
                scratch / "mlserver", model_file(tracking_uri, run_id), run_id
            )
            server = mlserver_peer.server(repository, out_dir)
        fleet[key] = server
    return fleet


def model_file(tracking_uri: str, run_id: str) -> Path:
    from src.model_artifacts import MODEL_FILE, verify_manifest
    from src.services.model_store import locate_run

    location = locate_run(tracking_uri, run_id)
    verify_manifest(location.artifacts_dir, location.model_dir)  # the bytes ours serves
    return location.model_dir / MODEL_FILE


def start_all(fleet: dict, wait_quiet: float, started: list, shapes: dict) -> dict[str, float]:
    """Each server on its own, timed from process start to its first good answer."""
    cold = {}
    for key, server in fleet.items():
        load.wait_quiet(wait_quiet)
        logger.info(f"starting {server.name}")
        started.append(server)
        server.start()
        cold[key] = server.wait_ready(_ready_probe(server, shapes))
        logger.info(f"{server.name} ready in {cold[key]:.2f} s")
    return cold


def _ready_probe(server: servers.Server, shapes: dict):
    """gunicorn: /ready 200; redis: PING; the peers: a first successful prediction."""
    if server.key == "redis-server":
        return _redis_answers
    if server.body == "ours":
        return lambda s: requests_get(s.url + "/ready").status_code == 200
    body = shapes["one"].v2_body if server.body == "v2" else shapes["one"].peer_body
    return lambda s: checks.post(s.url + s.predict_path, body).status_code == 200


def _redis_answers(server: servers.Server) -> bool:
    try:
        return bool(redis.Redis(port=server.port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def check_all(fleet: dict, model, shapes: dict, references: dict) -> dict[str, Any]:
    logger.info("checking every server's answers against the training code's")
    predicting = [shapes[name] for name in PEER_SHAPES]
    result: dict[str, Any] = {"tolerance": checks.TOLERANCE, "max_abs_diff": {}, "stream": {}}
    for key, server in fleet.items():
        if key in (*OURS_KEYS, "peer", "mlserver"):
            result["max_abs_diff"][key] = checks.check_predictions(server, predicting, references)
        if key in OURS_KEYS:
            result["stream"][key] = checks.check_stream(
                server, model, shapes["stream"].ours_body, history=key in HISTORY_KEYS
            )
        if key == "ceiling":
            result["ceiling_answers_empty"] = checks.check_ceiling(server, predicting)
    result["ok"] = (
        all(diff <= checks.TOLERANCE for diff in result["max_abs_diff"].values())
        and all(stream["ok"] for stream in result["stream"].values())
        and result.get("ceiling_answers_empty", True)
    )
    return result


def run_rounds(args, fleet: dict, shapes: dict, model, scratch: Path) -> tuple[list, dict]:
    """Every (server, shape) pair once per round, the order rotated between rounds."""
    pairs = plan([k for k in args.servers if k in fleet], args.shapes)
    clocks = {key: workload.Stream() for key in fleet}
    bodies = {}
    for name, shape in shapes.items():
        for fmt, body in (("ours", shape.ours_body), ("peer", shape.peer_body)):
            bodies[(name, fmt)] = scratch / f"{name}.{fmt}.json"
            bodies[(name, fmt)].write_bytes(body)
        bodies[(name, "v2")] = scratch / f"{name}.v2.json"
        bodies[(name, "v2")].write_bytes(shape.v2_body)
    runs, limits = [], {}
    for round_index in range(args.rounds):
        logger.info(f"round {round_index + 1} of {args.rounds}: timing the in-process limits")
        load.wait_quiet(args.wait_quiet)
        limits[round_index] = {
            name: inprocess.median_seconds(
                lambda body=shapes[name].ours_body: inprocess.limit_request(model, body),
                args.timing_budget,
            )
            for name in PEER_SHAPES
            if name in args.shapes
        }
        for key, shape_name in rotated(pairs, round_index, args.rounds):
            server, shape = fleet[key], shapes[shape_name]
            logger.info(
                f"round {round_index + 1}, {server.name}, {shape.title}: "
                f"warm-up {args.warmup} s, {args.duration} s load"
            )
            url = server.url + server.predict_path
            body_file = bodies[(shape_name, server.body)]
            stream = clocks[key] if shape.stream else None
            load.wait_quiet(args.wait_quiet)
            warm = load.run_wrk(url, body_file, args.warmup, args.connections, _env(stream))
            if stream:
                stream.advance(warm["wrk"]["requests"], args.connections)
            idle = [other for other in fleet.values() if other is not server]
            idle = [other for other in idle if other not in server.companions.values()]
            result = load.measure(
                server, url, body_file, args.duration, args.connections, _env(stream), idle
            )
            if stream:
                stream.advance(result["wrk"]["requests"], args.connections)
            runs.append({"round": round_index, "server": key, "shape": shape_name, **result})
            if result["errors"]:
                logger.info(f"  {result['errors']} errors: see {server.log_path}")
    return runs, limits


def _env(stream: workload.Stream | None) -> dict[str, str] | None:
    return stream.env() if stream else None


def footprint_of(server: servers.Server) -> dict[str, Any]:
    workers = server.worker_pids() if server.key != "redis-server" else []
    tree = server.remember_tree()
    used = re.search(r"Using worker: (\w+)", server.log_path.read_text(errors="replace"))
    kinds = {"peer": "uvicorn", "mlserver": "uvicorn + parallel workers", "redis-server": "-"}
    return {
        "name": server.name,
        "worker_class": used.group(1) if used else kinds.get(server.key, "?"),
        "worker_pids": workers,
        "worker_rss_mb": [round(servers.rss_mb(pid), 1) for pid in workers],
        "worker_threads": [int(servers.proc_status(pid).get("Threads", 0)) for pid in workers],
        "front_rss_mb": round(servers.rss_mb(tree[0]), 1),
        "tree_rss_mb": round(sum(servers.rss_mb(pid) for pid in tree), 1),
    }


def assemble(args, run_id, peer_uri, shapes, fleet, runs, limits, cold, footprint) -> dict:
    servers_info = {}
    for key in fleet:
        info = {"cold_start_s": cold[key], **footprint[key]}
        info["max_worker_rss_mb"] = max(info["worker_rss_mb"], default=0.0)
        servers_info[key] = info
    return {
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
            "rounds": args.rounds,
            "workers": servers.WORKERS,
            "peer_omp_threads": args.peer_threads,
            "ours_venv": "development" if args.dev_venv else "requirements.txt only",
            "stream_modules": workload.STREAM_MODULES,
            "stream_step_s": workload.STREAM_STEP_S,
        },
        "run_id": run_id,
        "peer_model_uri": peer_uri,
        "mlserver": mlserver_peer.versions() if "mlserver" in fleet else None,
        "shapes": {name: shape.title for name, shape in shapes.items() if name in args.shapes},
        "runs": runs,
        "inprocess": {str(r): seconds for r, seconds in limits.items()},
        "servers": servers_info,
        "settings": {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("GUNICORN_", "HVS_", "WEB_CONCURRENCY", "OMP_"))
        },
    }


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = ("mlflow", "xgboost", "gunicorn", "uvicorn", "flask", "pydantic", "orjson", "redis")
    redis_version = subprocess.run(
        [shutil.which("redis-server") or "redis-server", "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in packages},
        "redis_server": next((w[2:] for w in redis_version if w.startswith("v=")), "?"),
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

    dirty = git("status", "--porcelain", "--", "src", "bench")
    changes = " + uncommitted changes in src/ or bench/" if dirty else ""
    return git("rev-parse", "--short", "HEAD") + changes


def requests_get(url: str):
    import requests

    return requests.get(url, timeout=2)


if __name__ == "__main__":
    sys.exit(main())
