"""Start the servers under test on free loopback ports, watch their processes, stop them.

Each server starts in its own session (so a Ctrl-C in the terminal reaches the benchmark,
which then stops them in order) and is stopped by pid only: first the process this module
started, then any process of its recorded tree still alive, SIGKILL as the last resort.
Nothing here looks processes up by name: other gunicorn servers may run on the same host.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
WORKERS = 2
SERVING_VENV = PROJECT_ROOT / "bench" / "results" / "serving-venv"

logger = logging.getLogger(__name__)


def serving_python() -> Path:
    """Python of a venv holding requirements.txt only, what the image installs: our server
    is measured as it ships, without what the development venv adds (scikit-learn, pandas,
    the full mlflow), which changes its start-up and memory. Made on first use (about a
    minute) and again whenever requirements.txt changes."""
    requirements = PROJECT_ROOT / "requirements.txt"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = SERVING_VENV / "bin" / "python"
    stamp = SERVING_VENV / "requirements.sha256"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    logger.info(f"making {SERVING_VENV.relative_to(PROJECT_ROOT)}: requirements.txt only (~1 min)")
    shutil.rmtree(SERVING_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(SERVING_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One server under test: its root process, where it answers, what it costs."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    predict_path: str
    workers_are: Literal["forked", "spawned"]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    known_pids: dict[int, str] = field(default_factory=dict)
    """Every process of the tree seen so far, with its start time (guards pid reuse)."""
    key: str = ""
    """The server's name in results.json (stateless, embedded, redis, peer, mlserver, ...)."""
    body: Literal["ours", "peer", "v2"] = "ours"
    """Which request format it is sent: ours, MLflow's dataframe, or V2 tensors."""
    companions: dict[str, Server] = field(default_factory=dict)
    """Processes it depends on whose CPU counts for its rows (its redis-server)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.env["PORT"] = str(self.port)
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        self._log = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, probe: Callable[[Server], bool], timeout: float = 90.0) -> float:
        """Seconds from process start until probe(self) first returns True."""
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; log: {self.log_path}"
                )
            try:
                if probe(self):
                    self.remember_tree()
                    return time.perf_counter() - self.started_at
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s; log: {self.log_path}")

    def remember_tree(self) -> list[int]:
        pids = [self.process.pid, *descendants(self.process.pid)]
        for pid in pids:
            started = _start_time(pid)
            if started:
                self.known_pids.setdefault(pid, started)
        return pids

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: gunicorn's forked children of the master, or
        the processes uvicorn spawned (not its multiprocessing resource tracker)."""
        pids = self.remember_tree()
        if self.workers_are == "forked":
            return [pid for pid in pids if _stat_fields(pid)[1:2] == [str(self.process.pid)]]
        return [pid for pid in pids if "multiprocessing.spawn" in _cmdline(pid)]

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.remember_tree()
            self.process.send_signal(signal.SIGTERM)  # gunicorn/mlflow shut their workers down
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        leftovers = [pid for pid in self.known_pids if self._still_ours(pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (5.0 if sig == signal.SIGTERM else 2.0)
            while leftovers and time.monotonic() < deadline:
                leftovers = [pid for pid in leftovers if self._still_ours(pid)]
                time.sleep(0.05)
        self._log.close()
        if leftovers:
            print(f"warning: {self.name}: pids {leftovers} did not exit", file=sys.stderr)

    def _still_ours(self, pid: int) -> bool:
        return _start_time(pid) == self.known_pids[pid] and not _is_zombie(pid)


OURS = {
    "stateless": ("ours, stateless", {"HVS_HISTORY": "off"}),
    "embedded": ("ours, embedded store", {}),  # the default configuration
    "redis": ("ours, Redis store", {}),  # HVS_HISTORY_URL added by the caller
    "ceiling": ("ceiling: Flask returning {}", {}),
}
"""Our server code in each configuration the benchmark runs: display name, environment."""

CEILING_APP = "bench.ceiling:create_app"


def ours(
    key: str,
    run_id: str,
    tracking_uri: str,
    log_dir: Path,
    metrics_dir: Path,
    python: Path | None = None,
    env: dict[str, str] | None = None,
    front: str | None = None,
) -> Server:
    """This project's server code: gunicorn with the project's config, 2 workers, on
    loopback, run by `python` (default: this interpreter); `key` picks the configuration
    (OURS); "ceiling" serves bench/ceiling.py's app through the same code and settings.
    With `front` (`nginx`, `none`, `auto`): started as the image starts it,
    `python -m src.api.front` with that HVS_FRONT.

    Worker class, threads and the other knobs come from the gunicorn config and any
    GUNICORN_*/HVS_* variables in the caller's environment (to try settings)."""
    name, variant_env = OURS[key]
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(WORKERS),
        "BEST_MLFLOW_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **variant_env,
        **(env or {}),
    }
    full_env.setdefault("HVS_DRAIN_SECONDS", "0")  # no load balancer to drain: stop at once
    app = ["--app", CEILING_APP] if key == "ceiling" else []
    if front is not None:
        full_env["HVS_FRONT"] = front
        name = f"{name} (HVS_FRONT={front})"
    module = "src.api.server" if front is None else "src.api.front"
    return Server(
        name=name,
        command=[str(python or sys.executable), "-m", module, *app],
        env=full_env,
        cwd=PROJECT_ROOT,
        log_path=log_dir / f"{key}.log",
        predict_path="/predict",
        workers_are="forked",
        key=key,
    )


def redis_server(log_dir: Path, scratch: Path) -> Server:
    """A redis-server of the benchmark's own on loopback: no persistence, no replicas."""
    command = shutil.which("redis-server")
    if command is None:
        logger.info("redis-server is not installed: apt-get install -y redis-server")
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True)
        command = shutil.which("redis-server") or "/usr/bin/redis-server"
    return Server(
        name="redis-server",
        command=[
            command,
            *("--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(scratch), "--daemonize", "no", "--protected-mode", "yes"),
        ],
        env=dict(os.environ),
        cwd=scratch,
        log_path=log_dir / "redis-server.log",
        predict_path="",
        workers_are="forked",
        key="redis-server",
    )


def peer(
    model_uri: str, tracking_uri: str, log_dir: Path, scratch: Path, omp_threads: str = "1"
) -> Server:
    """`mlflow models serve` (uvicorn + FastAPI in MLflow 3) with 2 workers, started away
    from the project folder so only `code_paths` supplies `src`. One OpenMP thread per
    worker unless omp_threads is "default" (XGBoost's own: one per core, in each worker)."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs `uvicorn`
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "OMP_NUM_THREADS": omp_threads,
        "TMPDIR": str(scratch),  # the model copy it serves from, removed with the scratch
    }
    env.pop("PYTHONPATH", None)
    if omp_threads == "default":
        env.pop("OMP_NUM_THREADS")
    return Server(
        name="mlflow models serve",
        command=[
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--workers",
            str(WORKERS),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],
        env=env,
        cwd=scratch,
        log_path=log_dir / "peer.log",
        predict_path="/invocations",
        workers_are="spawned",
        key="peer",
        body="peer",
    )


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat_fields(int(entry.name))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict (VmRSS in kB, Threads), empty once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the live processes among pids have used so far."""
    total = 0
    for pid in pids:
        stat = _stat_fields(pid)
        if len(stat) > 12:
            total += int(stat[11]) + int(stat[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    return int(proc_status(pid).get("VmRSS", "0 kB").split()[0]) / 1024


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str:
    stat = _stat_fields(pid)
    return stat[19] if len(stat) > 19 else ""


def _is_zombie(pid: int) -> bool:
    stat = _stat_fields(pid)
    return not stat or stat[0] == "Z"
