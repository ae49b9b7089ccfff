"""POST /predict from a few threads while the server is being stopped; count what was lost.

usage: stop_under_load.py URL PAYLOAD_FILE STOP_FILE [--threads 4] [--max-seconds 30]

Runs until STOP_FILE exists (the caller creates it once the server has exited) or
--max-seconds pass, then prints one JSON object. Each attempt ends as one of:
  ok             a 200 response
  other_status   any other complete response (counted per status)
  not_connected  refused, unreachable or timed out while connecting: nothing was sent
                 (what a client sees once the listener is gone)
  dropped        connected and sent, then a reset, EOF or timeout instead of a response
Half the threads open a connection per request; the other half keep connections alive,
as a pooling client does, and so also meet the keep-alive race at shutdown. A probe
thread polls /ready and records when it stops answering 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 3.0
RESPONSE_TIMEOUT_SECONDS = 10.0


class Load:
    def __init__(self, url: str, body: bytes, stop_file: Path, max_seconds: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.body = body
        self.stop_file = stop_file
        self.started = time.monotonic()
        self.deadline = self.started + max_seconds
        self.outcomes: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.dropped_errors: Counter[str] = Counter()
        self.last_ok_seconds = 0.0
        self.ready_lost_seconds: float | None = None
        self.ok_after_ready_lost = 0
        self._lock = threading.Lock()

    def running(self) -> bool:
        return time.monotonic() < self.deadline and not self.stop_file.exists()

    def record(self, outcome: str, status: int | None = None, error: str = "") -> None:
        now = time.monotonic() - self.started
        with self._lock:
            self.outcomes[outcome] += 1
            if status is not None:
                self.statuses[status] += 1
            if error:
                self.dropped_errors[error] += 1
            if outcome == "ok":
                self.last_ok_seconds = max(self.last_ok_seconds, now)
                if self.ready_lost_seconds is not None:
                    self.ok_after_ready_lost += 1

    def post_loop(self, keep_alive: bool) -> None:
        connection: http.client.HTTPConnection | None = None
        while self.running():
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=CONNECT_TIMEOUT_SECONDS
                )
                try:
                    connection.connect()
                except OSError:
                    self.record("not_connected")
                    connection = None
                    time.sleep(0.02)  # a closed port answers at once: no busy loop
                    continue
                connection.sock.settimeout(RESPONSE_TIMEOUT_SECONDS)
            try:
                connection.request(
                    "POST",
                    "/predict",
                    body=self.body,
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                self.record("dropped", error=type(error).__name__)
                connection.close()
                connection = None
                continue
            self.record("ok" if response.status == 200 else "other_status", response.status)
            if not keep_alive or response.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def probe_ready(self) -> None:
        while self.running() and self.ready_lost_seconds is None:
            status = None
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
                connection.request("GET", "/ready")
                status = connection.getresponse().status
                connection.close()
            except (OSError, http.client.HTTPException):
                pass
            if status != 200:
                self.ready_lost_seconds = time.monotonic() - self.started
            time.sleep(0.1)

    def summary(self) -> dict:
        return {
            "seconds": round(time.monotonic() - self.started, 2),
            "ok": self.outcomes["ok"],
            "other_status": self.outcomes["other_status"],
            "not_connected": self.outcomes["not_connected"],
            "dropped": self.outcomes["dropped"],
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "dropped_errors": dict(self.dropped_errors),
            "last_ok_at_seconds": round(self.last_ok_seconds, 2),
            "ready_lost_at_seconds": (
                None if self.ready_lost_seconds is None else round(self.ready_lost_seconds, 2)
            ),
            "ok_after_ready_lost": self.ok_after_ready_lost,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("payload", type=Path)
    parser.add_argument("stop_file", type=Path)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args()
    load = Load(args.url, args.payload.read_bytes(), args.stop_file, args.max_seconds)
    threads = [threading.Thread(target=load.probe_ready, daemon=True)]
    threads += [
        threading.Thread(target=load.post_loop, args=(index % 2 == 1,), daemon=True)
        for index in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.max_seconds + RESPONSE_TIMEOUT_SECONDS + 5)
    print(json.dumps(load.summary()))


if __name__ == "__main__":
    main()
