"""Soak: minutes of mixed hostile load on one server, and whether it stays whole.

    .venv/bin/python -m bench.soak [--minutes 10] [--streams 6] [--slow 60] [--run-id RUN]

Starts our server as it ships (the serving venv, like bench/run_bench.py), then, for the
whole run, at once:
- streams: modules posting one reading per request, as a BMS does (the traffic that
  matters: its latency and errors are what the report is about);
- slow clients: connections held idle, sending headers a byte a second, or a body a
  byte a second, each replaced when the server drops it;
- bad clients: invalid JSON, bodies of unknown keys, empty readings, oversized bodies,
  made-up methods and paths;
- a Prometheus-like scrape of /metrics every 5 s (its time and size);
and every 30 s it prints one line: normal requests and their errors, p50/p99, RSS of the
server's processes, and the scrape's time and size. The last lines compare the first and
the last minute: growth in RSS or scrape time over a long run is a leak.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

from bench import inprocess, servers
from src.data.signals import SIGNALS

logger = logging.getLogger("bench.soak")
REPORT_EVERY_S = 30.0
SCRAPE_EVERY_S = 5.0


def reading(module: str, second: float) -> dict:
    body = {"module_id": module, "timestamp": 1_767_225_600 + second}
    body.update({signal.name: signal.reference for signal in SIGNALS})
    return body


class Tally:
    """Thread-safe counters and latencies, read and reset by the reporter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.latencies: list[float] = []
        self.scrapes: list[tuple[float, int]] = []

    def add(self, key: str, latency: float | None = None) -> None:
        with self.lock:
            self.counts[key] += 1
            if latency is not None:
                self.latencies.append(latency)

    def take(self) -> tuple[dict[str, int], list[float], list[tuple[float, int]]]:
        with self.lock:
            taken = (dict(self.counts), self.latencies, self.scrapes)
            self.counts, self.latencies, self.scrapes = defaultdict(int), [], []
        return taken


def stream(url: str, module: str, stop: threading.Event, tally: Tally) -> None:
    session = requests.Session()
    second = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = session.post(url + "/predict", json=reading(module, second), timeout=10)
            status = response.status_code
        except requests.RequestException:
            status = -1
        tally.add(f"stream {status}", time.perf_counter() - started)
        second += 10.0


def slow_client(host: str, port: int, kind: str, stop: threading.Event, tally: Tally) -> None:
    """Hold a connection the way slow or idle clients do; reconnect when dropped."""
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=5) as connection:
                connection.settimeout(2)
                tally.add(f"slow {kind} connected")
                if kind == "body":
                    connection.sendall(
                        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100000\r\n\r\n"
                    )
                while not stop.is_set():
                    if kind != "idle":
                        connection.sendall(b"a" if kind == "body" else b"X")
                    try:
                        if connection.recv(4096) == b"":
                            break  # dropped by the server: reconnect
                        tally.add(f"slow {kind} answered")
                        break
                    except TimeoutError:
                        continue
        except OSError:
            tally.add(f"slow {kind} refused")
            time.sleep(0.5)


BAD_BODIES = [
    b"{not json",
    json.dumps({"readings": [{}] * 2000}).encode(),
    json.dumps({"readings": [{f"k{i}": i for i in range(5000)}]}).encode(),
    b'{"readings": [' + b" " * (17 * 1024 * 1024) + b"]}",  # over the body limit
]


def bad_client(url: str, stop: threading.Event, tally: Tally) -> None:
    session = requests.Session()
    rng = random.Random(7)
    while not stop.is_set():
        choice = rng.randrange(len(BAD_BODIES) + 2)
        try:
            if choice < len(BAD_BODIES):
                response = session.post(url + "/predict", data=BAD_BODIES[choice], timeout=30)
            elif choice == len(BAD_BODIES):
                response = session.request(f"X{rng.randrange(10**6)}Z", url + "/predict")
            else:
                response = session.get(f"{url}/made-up/{rng.randrange(10**6)}", timeout=10)
            tally.add(f"bad {response.status_code}")
        except requests.RequestException:
            tally.add("bad failed")
        time.sleep(0.05)


def scraper(url: str, stop: threading.Event, tally: Tally) -> None:
    while not stop.wait(SCRAPE_EVERY_S):
        started = time.perf_counter()
        try:
            size = len(requests.get(url + "/metrics", timeout=30).content)
        except requests.RequestException:
            size = -1
        with tally.lock:
            tally.scrapes.append((time.perf_counter() - started, size))


def summary(counts: dict[str, int], latencies: list[float], scrapes, rss: float) -> dict:
    normal = sum(v for k, v in counts.items() if k.startswith("stream "))
    failed = sum(v for k, v in counts.items() if k.startswith("stream ") and k != "stream 200")
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [0.0] * 99
    return {
        "normal_requests": normal,
        "normal_errors": failed,
        "p50_ms": round(1000 * quantiles[49], 1),
        "p99_ms": round(1000 * quantiles[98], 1),
        "bad_answered": sum(v for k, v in counts.items() if k.startswith("bad ")),
        "bad_5xx": sum(v for k, v in counts.items() if k.startswith("bad 5")),
        "slow_reconnects": sum(v for k, v in counts.items() if k.endswith("connected")),
        "rss_mb": round(rss, 1),
        "scrape_ms": round(1000 * max((s for s, _ in scrapes), default=0.0), 1),
        "scrape_kb": round(max((b for _, b in scrapes), default=0) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=6, help="modules posting readings")
    parser.add_argument("--slow", type=int, default=60, help="slow connections of each kind")
    parser.add_argument("--mlruns-dir", type=Path, default=inprocess.DEFAULT_MLRUNS)
    parser.add_argument("--run-id")
    parser.add_argument("--dev-venv", action="store_true", help="our server from this venv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[soak] %(message)s")
    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    scratch = Path(tempfile.mkdtemp(prefix="hvs-soak-"))
    (scratch / "prometheus").mkdir()
    python = None if args.dev_venv else servers.serving_python()
    server = servers.ours(
        "embedded", run_id, mlruns.as_uri(), scratch, scratch / "prometheus", python
    )
    stop = threading.Event()
    tally = Tally()
    rows = []
    try:
        server.start()
        server.wait_ready(lambda s: requests.get(s.url + "/ready", timeout=2).status_code == 200)
        url, port = server.url, int(server.url.rsplit(":", 1)[1])
        threads = [
            threading.Thread(target=stream, args=(url, f"SOAK-M{m:03d}", stop, tally))
            for m in range(args.streams)
        ]
        for kind in ("idle", "headers", "body"):
            threads += [
                threading.Thread(target=slow_client, args=("127.0.0.1", port, kind, stop, tally))
                for _ in range(args.slow)
            ]
        threads += [threading.Thread(target=bad_client, args=(url, stop, tally))]
        threads += [threading.Thread(target=scraper, args=(url, stop, tally))]
        for thread in threads:
            thread.daemon = True
            thread.start()
        deadline = time.monotonic() + 60 * args.minutes
        logger.info(f"{len(threads)} clients for {args.minutes:g} min against {url}")
        while time.monotonic() < deadline:
            time.sleep(min(REPORT_EVERY_S, max(deadline - time.monotonic(), 0.1)))
            rss = sum(servers.rss_mb(pid) for pid in server.remember_tree())
            row = summary(*tally.take(), rss)
            rows.append(row)
            logger.info(json.dumps(row))
    finally:
        stop.set()
        server.stop()
    first, last = rows[0], rows[-1]
    total = {
        "minutes": args.minutes,
        "normal_requests": sum(r["normal_requests"] for r in rows),
        "normal_errors": sum(r["normal_errors"] for r in rows),
        "bad_5xx": sum(r["bad_5xx"] for r in rows),
        "worst_p99_ms": max(r["p99_ms"] for r in rows),
        "rss_mb_first_last": (first["rss_mb"], last["rss_mb"]),
        "scrape_ms_first_last": (first["scrape_ms"], last["scrape_ms"]),
        "scrape_kb_first_last": (first["scrape_kb"], last["scrape_kb"]),
    }
    sys.stdout.write(json.dumps({"intervals": rows, "total": total}, indent=1) + "\n")
    return 0 if total["normal_errors"] == 0 and total["bad_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
