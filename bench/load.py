"""Driving a server with wrk, and accounting for where the machine's CPU went meanwhile."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import servers

logger = logging.getLogger(__name__)

POST_SCRIPT = Path(__file__).resolve().parent / "post.lua"
QUIET_CORES = 0.15
"""Below this many busy cores outside the benchmark, the machine counts as quiet."""


def measure(
    server: servers.Server,
    url: str,
    body_file: Path,
    duration: int,
    connections: int,
    env: dict[str, str] | None = None,
    idle: list[servers.Server] | None = None,
) -> dict:
    """One wrk run, plus where the machine's CPU went meanwhile (in cores): the server's
    processes (and each worker: keep-alive connections stay with the worker that accepted
    them, so one worker may do all the work; and its first process, gunicorn's or
    uvicorn's idle master, MLServer's busy HTTP front), the processes it depends on (its
    redis-server), the benchmark's other servers, idle meanwhile (`idle`), wrk, and everything
    else on the machine (other users' work skews a run)."""
    tree = server.remember_tree()
    workers = server.worker_pids()
    companions = {name: other.remember_tree() for name, other in server.companions.items()}
    idle_pids = [pid for other in idle or [] for pid in other.remember_tree()]
    busy_before, _ = servers.machine_cpu_seconds()
    server_before = servers.cpu_seconds(tree)
    front_before = servers.cpu_seconds(tree[:1])
    workers_before = [servers.cpu_seconds([pid]) for pid in workers]
    companions_before = {name: servers.cpu_seconds(pids) for name, pids in companions.items()}
    idle_before = servers.cpu_seconds(idle_pids)
    children_before = _children_cpu_seconds()
    self_before = self_cpu_seconds()
    started = time.perf_counter()
    result = run_wrk(url, body_file, duration, connections, env)
    wall = time.perf_counter() - started
    server_cpu = servers.cpu_seconds(tree) - server_before
    front_cpu = servers.cpu_seconds(tree[:1]) - front_before
    worker_cpu = [
        servers.cpu_seconds([pid]) - before
        for pid, before in zip(workers, workers_before, strict=True)
    ]
    companion_cpu = {
        name: servers.cpu_seconds(pids) - companions_before[name]
        for name, pids in companions.items()
    }
    idle_cpu = servers.cpu_seconds(idle_pids) - idle_before
    wrk_cpu = _children_cpu_seconds() - children_before
    busy = servers.machine_cpu_seconds()[0] - busy_before
    other = (
        busy
        - server_cpu
        - sum(companion_cpu.values())
        - idle_cpu
        - wrk_cpu
        - (self_cpu_seconds() - self_before)
    )
    result["cpu_cores"] = {
        "server": round(server_cpu / wall, 2),
        "per_worker": [round(seconds / wall, 2) for seconds in worker_cpu],
        "front": round(front_cpu / wall, 2),
        **{name: round(seconds / wall, 2) for name, seconds in companion_cpu.items()},
        "wrk": round(wrk_cpu / wall, 2),
        "idle_servers": round(idle_cpu / wall, 2),
        "other": round(max(other, 0.0) / wall, 2),
    }
    return result


def run_wrk(
    url: str,
    body_file: Path,
    duration: int,
    connections: int,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run; `env` adds variables for post.lua (the streaming template's)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(POST_SCRIPT),
        url,
    ]
    completed = subprocess.run(
        command,
        env={**os.environ, **(env or {}), "WRK_BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[key] for key in raw if key.endswith("_errors") or key == "timeouts")
    return {
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "wrk": raw,
    }


def background_cores(seconds: float = 1.0) -> float:
    """Cores the rest of the machine keeps busy while the benchmark is idle."""
    busy_before, _ = servers.machine_cpu_seconds()
    self_before = self_cpu_seconds()
    time.sleep(seconds)
    busy = servers.machine_cpu_seconds()[0] - busy_before - (self_cpu_seconds() - self_before)
    return round(max(busy, 0.0) / seconds, 2)


def wait_quiet(max_seconds: float) -> None:
    """Wait (at most max_seconds) until the rest of the machine is nearly idle."""
    if max_seconds <= 0:
        return
    started = time.perf_counter()
    cores = background_cores(1.0)
    if cores < QUIET_CORES:
        return
    logger.info(f"other processes use {cores:.2f} cores: waiting up to {max_seconds:g} s for quiet")
    while time.perf_counter() - started < max_seconds:
        cores = background_cores(1.0)
        if cores < QUIET_CORES:
            logger.info(f"quiet after {time.perf_counter() - started:.0f} s")
            return
    logger.info(f"still busy ({cores:.2f} cores); going on, the CPU column shows what others took")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
