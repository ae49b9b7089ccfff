"""A real `mlflow server` (sqlite backend, artifact proxy) on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.servers import free_port


class MlflowServer:
    """`mlflow server` in a folder of its own: runs and the registry in sqlite, artifacts
    in a folder the server serves (clients see only mlflow-artifacts:/ URIs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination", (self.folder / "artifacts").as_uri(),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--workers", "1",
            ],
            cwd=self.folder,
            stdout=(self.folder / "mlflow.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 90  # the first start creates the sqlite schema
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"mlflow server did not start: {self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.folder / "mlflow.log"
        return path.read_text(errors="replace") if path.exists() else ""
