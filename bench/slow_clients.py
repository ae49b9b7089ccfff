"""Slow and idle clients against our server, and what the nginx front costs.

    .venv/bin/python -m bench.slow_clients attack [--front nginx|none] [--idle 67]
        [--slow-headers 67] [--slow-body 66] [--tls 5] [--duration 30] [--reconnect]
        [--trickle N] [--source 127.0.0.2] [--url http://127.0.0.1:5001 --pid PID]
    .venv/bin/python -m bench.slow_clients cost [--rounds 3] [--duration 10]
    (both: [--mlruns-dir DIR] [--run-id RUN] [--dev-venv])

`attack` starts our server as it ships (the serving venv, bench/servers.py; `--front`
picks HVS_FRONT, default nginx) or uses the one at `--url`, then holds connections open
(`idle`: connect and send nothing; `slow headers`: a request line, then a header a byte a
second; `slow body`: complete headers with Content-Length 100000, then a byte a second;
`tls`: a TLS ClientHello to the plain port), and meanwhile POSTs test_payload.json every
`--interval` s on a new connection, for `--duration` s. Then it lets the attackers go and
probes every 0.25 s for 5 s. With `--reconnect` an attacker the server drops comes back
at once. `--trickle N` adds N bodies that send a byte a second and never stop (the case
nginx's between-reads body timeout does not end); `--source` sends all attackers from
another loopback address, as a different client, so HVS_MAX_CONNECTIONS_PER_CLIENT can
be measured. It prints one JSON summary: probes answered, their latencies, how long the
server let each kind stay, what it answered them, and the RSS of the server's processes
before and at most during the attack.

`cost` alternates HVS_FRONT=none and HVS_FRONT=nginx, a fresh server each round, and
runs wrk on both of the benchmark's shapes (1 reading, 1000 readings; bench/workload.py)
against each: requests/s, p99, where the CPU went (the server's processes, wrk, and
everything else on the machine, which this shared machine has plenty of), and RSS idle.
It prints one JSON object with every run and the medians.

Loopback targets only. Everything started is stopped by pid (bench/servers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import inprocess, load, servers, workload

logger = logging.getLogger("bench.slow_clients")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROBE_BODY = (PROJECT_ROOT / "test_payload.json").read_bytes()
KINDS = ("idle", "slow_headers", "slow_body", "tls", "trickle")


# ---------------------------------------------------------------------------- attackers


def client_hello() -> bytes:
    """The first bytes a TLS client sends: what a misconfigured https:// client sends here."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="hvs.example")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@dataclass
class KindStats:
    opened: int = 0
    connect_failed: int = 0
    dropped_by_server: int = 0
    """Connections the server closed or answered (a status line and headers)."""
    held_s: list[float] = field(default_factory=list)
    """How long each of those had been open."""
    answers: Counter[str] = field(default_factory=Counter)
    """The status line (or `(closed, nothing sent)`) of each."""

    def summary(self) -> dict:
        held = sorted(self.held_s)
        return {
            "opened": self.opened,
            "connect_failed": self.connect_failed,
            "dropped_by_server": self.dropped_by_server,
            "held_s": (
                {"min": held[0], "median": statistics.median(held), "max": held[-1]}
                if held
                else None
            ),
            "answers": dict(self.answers),
        }


class Attackers:
    """Connections held open the way slow and idle clients hold them, in one background
    thread (asyncio), until stop()."""

    def __init__(
        self,
        host: str,
        port: int,
        counts: dict[str, int],
        reconnect: bool = True,
        byte_every_s: float = 1.0,
        body_length: int = 100_000,
        source: str | None = None,
    ) -> None:
        self.host, self.port, self.counts = host, port, counts
        self.reconnect, self.byte_every_s, self.body_length = reconnect, byte_every_s, body_length
        self.source = source
        self.stats = {kind: KindStats() for kind in counts}
        self._hello = client_hello()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._open = 0
        self._first_connected = 0
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="attackers", daemon=True)

    def start(self, timeout_s: float = 20.0) -> Attackers:
        _raise_open_files_limit()
        self._thread.start()
        if not self._opened.wait(timeout_s):
            raise TimeoutError("the attackers could not all connect")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def open_now(self) -> int:
        """Attacker connections open at this moment."""
        return self._open

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        total = sum(self.counts.values())
        tasks = []
        for kind, count in self.counts.items():
            for _ in range(count):
                tasks.append(asyncio.create_task(self._attacker(kind, total)))
                if len(tasks) % 50 == 0:
                    await asyncio.sleep(0.01)  # do not flood the listen queue at once
        if not total:
            self._opened.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _attacker(self, kind: str, total: int) -> None:
        stats = self.stats[kind]
        first = True
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.host,
                        self.port,
                        local_addr=(self.source, 0) if self.source else None,
                    ),
                    timeout=10,
                )
            except (OSError, TimeoutError):
                stats.connect_failed += 1
                await asyncio.sleep(0.2)
                continue
            stats.opened += 1
            self._open += 1
            if first:
                first = False
                self._first_connected += 1
                if self._first_connected == total:
                    self._opened.set()
            opened = time.monotonic()
            received = b""
            try:
                received = await self._hold(kind, reader, writer)
            except (ConnectionError, OSError):
                pass
            finally:
                self._open -= 1
                writer.close()
            if self._stop.is_set():
                return
            stats.dropped_by_server += 1
            stats.held_s.append(round(time.monotonic() - opened, 2))
            head = received.split(b"\r\n", 1)[0].decode("latin-1") or "(closed, nothing sent)"
            stats.answers[head] += 1
            if not self.reconnect:
                return
            await asyncio.sleep(0.05)

    async def _hold(self, kind: str, reader, writer) -> bytes:
        """Send what this kind sends, then a byte every byte_every_s (slow kinds) until the
        server closes or answers; returns what it sent back."""
        if kind == "slow_headers":
            writer.write(f"GET /health HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: ".encode())
        elif kind in ("slow_body", "trickle"):
            length = self.body_length if kind == "slow_body" else 16 * 1024 * 1024 - 1
            writer.write(
                f"POST /predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {length}\r\n\r\n{{".encode()
            )
        elif kind == "tls":
            writer.write(self._hello)
        await writer.drain()
        received = b""
        while not self._stop.is_set():
            try:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=self.byte_every_s)
            except TimeoutError:
                if kind in ("slow_headers", "slow_body", "trickle"):
                    writer.write(b"a" if kind == "slow_headers" else b" ")
                    await writer.drain()
                continue
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received:
                break  # answered: this attacker is done with (nginx may linger to read on)
        return received


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------------------- probes


def probe(host: str, port: int, timeout_s: float = 10.0) -> tuple[int | str, float]:
    """One POST /predict of test_payload.json on a new connection: (status, seconds)."""
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(PROBE_BODY)}\r\nConnection: close\r\n\r\n"
    ).encode() + PROBE_BODY
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError
    except TimeoutError:
        return "timeout", time.monotonic() - started
    except OSError as error:
        return type(error).__name__, time.monotonic() - started
    status: int | str = int(received.split(b" ", 2)[1]) if received[:5] == b"HTTP/" else "no answer"
    return status, time.monotonic() - started


def probe_every(
    host: str, port: int, interval_s: float, duration_s: float, timeout_s: float = 10.0
) -> list[dict]:
    """A probe every interval_s for duration_s, each in its own thread (a slow one does
    not delay the next): [{"start", "status", "latency_s"}] in start order."""
    results: list[dict] = []
    lock = threading.Lock()

    def one(start: float) -> None:
        status, latency = probe(host, port, timeout_s)
        with lock:
            results.append({"start": round(start, 2), "status": status, "latency_s": latency})

    threads = []
    started = time.monotonic()
    for index in range(max(1, round(duration_s / interval_s))):
        time.sleep(max(0.0, started + index * interval_s - time.monotonic()))
        thread = threading.Thread(target=one, args=(time.monotonic() - started,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout_s + 5)
    return sorted(results, key=lambda result: result["start"])


def latency_summary(results: list[dict]) -> dict:
    latencies = [result["latency_s"] for result in results]
    return {
        "probes": len(results),
        "answered_200": sum(result["status"] == 200 for result in results),
        "statuses": dict(Counter(str(result["status"]) for result in results)),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_ms_max": round(1000 * max(latencies), 1) if latencies else None,
    }


# ---------------------------------------------------------------------------- servers


def start_ours(front: str, scratch: Path, args: argparse.Namespace):
    mlruns = args.mlruns_dir.expanduser().resolve()
    run_id = args.run_id or inprocess.default_run(mlruns)
    python = None if args.dev_venv else servers.serving_python()
    metrics = scratch / f"prometheus-{front}"
    metrics.mkdir(parents=True, exist_ok=True)
    server = servers.ours(
        "embedded", run_id, mlruns.as_uri(), scratch, metrics, python, front=front
    )
    server.start()
    server.wait_ready(lambda s: requests.get(s.url + "/ready", timeout=2).status_code == 200)
    return server


def tree_rss_mb(root_pid: int, command: str | None = None) -> float:
    """RSS of root_pid and its descendants (only those named `command`, if given)."""
    pids = [root_pid, *servers.descendants(root_pid)]
    if command is not None:
        pids = [pid for pid in pids if _command(pid) == command]
    return round(sum(servers.rss_mb(pid) for pid in pids), 1)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------- commands


def attack(args: argparse.Namespace) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="hvs-slow-"))
    server = None
    if args.url:
        host, port = args.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        pid = args.pid
    else:
        server = start_ours(args.front, scratch, args)
        host, port, pid = "127.0.0.1", server.port, server.process.pid
    port = int(port)
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit("loopback targets only")
    try:
        rss_before = tree_rss_mb(pid) if pid else None
        nginx_before = tree_rss_mb(pid, "nginx") if pid else None
        counts = {
            "idle": args.idle,
            "slow_headers": args.slow_headers,
            "slow_body": args.slow_body,
            "tls": args.tls,
            "trickle": args.trickle,
        }
        counts = {kind: count for kind, count in counts.items() if count}
        attackers = Attackers(host, port, counts, reconnect=args.reconnect, source=args.source)
        attackers.start()
        time.sleep(args.settle)
        rss_max = [rss_before or 0.0, nginx_before or 0.0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                rss_max[0] = max(rss_max[0], tree_rss_mb(pid))
                rss_max[1] = max(rss_max[1], tree_rss_mb(pid, "nginx"))

        sampler = threading.Thread(target=sample, daemon=True)
        if pid:
            sampler.start()
        during = probe_every(host, port, args.interval, args.duration)
        held_at_end = attackers.open_now()
        sampling.set()
        attackers.stop()
        after = probe_every(host, port, 0.25, 5.0)
        first_ok = next((r for r in after if r["status"] == 200), None)
        return {
            "server": args.url or f"ours, HVS_FRONT={args.front}",
            "attackers": counts,
            "reconnect": args.reconnect,
            "attacker_connections_open_at_the_end": held_at_end,
            "during": latency_summary(during),
            "after_release": {
                **latency_summary(after),
                "first_200_at_s": (
                    round(first_ok["start"] + first_ok["latency_s"], 2) if first_ok else None
                ),
            },
            "by_kind": {kind: stats.summary() for kind, stats in attackers.stats.items()},
            "rss_mb_before": rss_before,
            "rss_mb_max_during": round(rss_max[0], 1) if pid else None,
            "nginx_rss_mb_before": nginx_before,
            "nginx_rss_mb_max_during": round(rss_max[1], 1) if pid else None,
        }
    finally:
        if server is not None:
            server.stop()


def cost(args: argparse.Namespace) -> dict:
    """A/B: HVS_FRONT=none, then nginx, per round; wrk on both shapes against each."""
    scratch = Path(tempfile.mkdtemp(prefix="hvs-front-cost-"))
    bodies = {}
    for shape in workload.shapes():
        if shape.name in ("one", "batch"):
            bodies[shape.name] = scratch / f"{shape.name}.json"
            bodies[shape.name].write_bytes(shape.ours_body)
    runs: list[dict] = []
    for round_index in range(args.rounds):
        for front in ("none", "nginx") if round_index % 2 == 0 else ("nginx", "none"):
            load.wait_quiet(args.wait_quiet)
            server = start_ours(front, scratch, args)
            try:
                time.sleep(1.0)
                rss_idle = tree_rss_mb(server.process.pid)
                for shape, body in bodies.items():
                    load.run_wrk(server.url + "/predict", body, 2, args.connections)  # warm-up
                    result = load.measure(
                        server, server.url + "/predict", body, args.duration, args.connections
                    )
                    cores = result["cpu_cores"]
                    run = {
                        "round": round_index,
                        "front": front,
                        "shape": shape,
                        "requests_per_s": round(result["requests_per_s"], 1),
                        "p99_ms": round(result["p99_ms"], 2),
                        "errors": result["errors"],
                        "server_cores": cores["server"],
                        "wrk_cores": cores["wrk"],
                        "other_cores": cores["other"],
                        "rss_mb_idle": rss_idle,
                    }
                    runs.append(run)
                    logger.info(json.dumps(run))
            finally:
                server.stop()
    medians = {}
    for shape in bodies:
        row = {}
        for front in ("none", "nginx"):
            mine = [run for run in runs if run["shape"] == shape and run["front"] == front]
            row[front] = {
                key: round(statistics.median(run[key] for run in mine), 2)
                for key in (
                    "requests_per_s",
                    "p99_ms",
                    "server_cores",
                    "other_cores",
                    "rss_mb_idle",
                )
            }
        ratios = []
        for round_index in range(args.rounds):
            pair = {
                run["front"]: run["requests_per_s"]
                for run in runs
                if run["shape"] == shape and run["round"] == round_index
            }
            ratios.append(pair["nginx"] / pair["none"])
        row["nginx_over_none_per_round"] = [round(ratio, 3) for ratio in ratios]
        row["nginx_over_none_median"] = round(statistics.median(ratios), 3)
        medians[shape] = row
    return {"runs": runs, "medians": medians}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    attack_args = commands.add_parser("attack", help="slow and idle clients, and a probe")
    attack_args.add_argument("--front", choices=("nginx", "none"), default="nginx")
    attack_args.add_argument("--url", help="attack this server instead of starting ours")
    attack_args.add_argument("--pid", type=int, help="with --url: its root pid, for RSS")
    attack_args.add_argument("--idle", type=int, default=67)
    attack_args.add_argument("--slow-headers", type=int, default=67)
    attack_args.add_argument("--slow-body", type=int, default=66)
    attack_args.add_argument("--tls", type=int, default=5)
    attack_args.add_argument("--trickle", type=int, default=0)
    attack_args.add_argument("--reconnect", action="store_true")
    attack_args.add_argument("--source", help="local address of the attackers, e.g. 127.0.0.2")
    attack_args.add_argument("--duration", type=float, default=30.0)
    attack_args.add_argument("--interval", type=float, default=0.5)
    attack_args.add_argument("--settle", type=float, default=2.0)
    cost_args = commands.add_parser("cost", help="A/B throughput: HVS_FRONT=none vs nginx")
    cost_args.add_argument("--rounds", type=int, default=3)
    cost_args.add_argument("--duration", type=int, default=10)
    cost_args.add_argument("--connections", type=int, default=8)
    cost_args.add_argument("--wait-quiet", type=float, default=0.0)
    for sub in (attack_args, cost_args):
        sub.add_argument("--dev-venv", action="store_true", help="our server from this venv")
        sub.add_argument("--mlruns-dir", type=Path, default=inprocess.DEFAULT_MLRUNS)
        sub.add_argument("--run-id", help="default: the newest default-configuration run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[slow_clients] %(message)s")
    result = attack(args) if args.command == "attack" else cost(args)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
