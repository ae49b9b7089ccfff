"""Start the real service under gunicorn on a free loopback port, for integration tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GunicornServer:
    """A gunicorn master with its workers, its log captured in a file."""

    module = "src.api.server"

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": "",  # a fresh one per server
            "HVS_DRAIN_SECONDS": "0",  # the drain itself is tested by the container test
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GunicornServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_until(self, path: str, status: int = 200, timeout: float = 60.0) -> requests.Response:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = requests.get(self.url + path, timeout=2)
                if response.status_code == status:
                    return response
                last = response.status_code
            except requests.RequestException as error:
                last = error
            time.sleep(0.1)
        raise TimeoutError(f"{path} never answered {status} (last: {last}):\n{self.log()}")

    def wait_all_workers_ready(self, timeout: float = 60.0) -> None:
        """/ready answers from whichever worker takes the connection; hvs_model_ready is
        the minimum over live workers, so 1 means every worker has loaded its model."""
        self.wait_until("/ready", timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = requests.get(self.url + "/metrics", timeout=5).text
            if re.search(r"^hvs_model_ready 1\.0$", text, re.M):
                return
            time.sleep(0.1)
        raise TimeoutError(f"not every worker became ready:\n{self.log()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)
        finally:
            self._log.close()


class FrontServer(GunicornServer):
    """`python -m src.api.front` (the image's command): nginx on the port, gunicorn on a
    unix socket behind it, the supervisor as the process started here.

    Its TMPDIR is a short folder of its own (a unix socket path must stay under 108
    bytes; pytest's tmp_path can be longer), where the supervisor makes its run folder."""

    module = "src.api.front"

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="hvs-ft-", dir="/tmp"))
        super().__init__(
            {"HVS_FRONT": "nginx", "TMPDIR": str(self.tmpdir), **env}, log_path, workers
        )
        self._tree: dict[int, str] = {}  # pid -> its start time, against pid reuse

    def children(self) -> dict[str, int]:
        """The supervisor's children by name: {"gunicorn": pid, "nginx": pid}."""
        assert self.process is not None
        found = {}
        for pid in _children_of(self.process.pid):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            found["nginx" if b"nginx" in command[0] else "gunicorn"] = pid
        return found

    def tree(self) -> set[int]:
        """Every process under the supervisor now (remembered, for stop())."""
        assert self.process is not None
        todo, found = [self.process.pid], set()
        while todo:
            children = _children_of(todo.pop())
            found.update(children)
            todo.extend(children)
        for pid in found:
            self._tree.setdefault(pid, _start_time(pid))
        return found

    def alive(self, pids: set[int]) -> set[int]:
        """Those of pids (seen by tree()) still running, zombies excepted."""
        return {pid for pid in pids if _start_time(pid) == self._tree.get(pid, "")}

    def stop(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            self.tree()
        status = super().stop()
        # The supervisor stops its children; a test that broke it must not leave them.
        for pid in self.alive(set(self._tree)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return status


def _children_of(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _start_time(pid: int) -> str:
    """The process' start time ("" once it is gone or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]
