"""Memory of the module history: what 10,000 modules with a full window each cost each store.

    .venv/bin/python -m bench.history_memory [--modules 10000] [--readings 60]

Fills the service's own backends (`src.services.history_sqlite.SqliteHistory` and
`src.services.history_redis.RedisHistory`, through their `exchange`, as requests do) with
`--modules` modules of `--readings` readings each, 10 s apart: by default the whole
retention window (HISTORY_RETENTION_S = 600 s, i.e. 60 readings at the simulator's and a
BMS's 10 s), everything the store keeps of a module that reports steadily. Then:

- SQLite: the file's size after a checkpoint (the WAL folded in), and its pages in use;
- Redis: `INFO memory` used_memory of a redis-server of its own, minus the empty server's
  (and used_memory_rss, what the process holds), plus the encoding of one module's set.

Prints a markdown table and writes it, with the raw numbers, to
bench/results/history-memory-<date-time>.{md,json}. Stops its redis-server by pid.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench import servers
from src.data.signals import SIGNAL_NAMES
from src.services.history import HISTORY_RETENTION_S, HistoryLimits, ModuleReadings
from src.services.history_redis import RedisHistory
from src.services.history_sqlite import SqliteHistory

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STEP_S = 10.0
MODULES_PER_EXCHANGE = 100
"""Modules per exchange while filling (one transaction or pipeline each)."""
PER_MODULES = 10_000
"""The figure is given per this many modules."""

logger = logging.getLogger("bench.history_memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=PER_MODULES)
    parser.add_argument(
        "--readings",
        type=int,
        default=int(HISTORY_RETENTION_S / STEP_S),
        help="readings per module, 10 s apart (default: the whole retention window)",
    )
    return parser.parse_args(argv)


def batches(modules: int, readings: int, now: float):
    """Modules' readings in chunks, as exchanges would bring them; values are random
    (each reading is stored as fixed-size float64s, so values do not change the size)."""
    rng = np.random.default_rng(0)
    timestamps = now - STEP_S * np.arange(readings)[::-1]
    for first in range(0, modules, MODULES_PER_EXCHANGE):
        names = range(first, min(first + MODULES_PER_EXCHANGE, modules))
        yield {
            f"R{index // 100:03d}-M{index % 100:02d}": ModuleReadings(
                timestamps, rng.normal(size=(readings, len(SIGNAL_NAMES)))
            )
            for index in names
        }


def limits(modules: int, readings: int) -> HistoryLimits:
    return HistoryLimits(max_readings=max(readings, 600), max_modules=modules, idle_s=3600.0)


def sqlite_bytes(modules: int, readings: int, folder: Path) -> dict[str, Any]:
    path = folder / "history.sqlite3"
    store = SqliteHistory(path, "hvs", limits(modules, readings), timeout_s=10.0)
    now = time.time()
    for chunk in batches(modules, readings, now):
        store.exchange(chunk, now)
    store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        stored = connection.execute("SELECT count(*) FROM readings").fetchone()[0]
    wal = path.with_name(path.name + "-wal")
    return {
        "file_bytes": path.stat().st_size + (wal.stat().st_size if wal.exists() else 0),
        "pages_in_use_bytes": (pages - free) * page_size,
        "readings_stored": stored,
    }


def redis_bytes(modules: int, readings: int, folder: Path) -> dict[str, Any]:
    server = servers.redis_server(folder, folder)
    server.start()
    try:
        server.wait_ready(_answers, timeout=30)
        client = redis.Redis(port=server.port)
        empty = client.info("memory")
        store = RedisHistory(
            f"redis://127.0.0.1:{server.port}/0", "hvs", limits(modules, readings), 10.0
        )
        now = time.time()
        for chunk in batches(modules, readings, now):
            store.exchange(chunk, now)
        store.close()
        full = client.info("memory")
        key = client.keys("hvs:m:*")[0]
        return {
            "used_memory_bytes": full["used_memory"] - empty["used_memory"],
            "used_memory_rss_bytes": full["used_memory_rss"] - empty["used_memory_rss"],
            "empty_used_memory_bytes": empty["used_memory"],
            "module_set_encoding": client.object("encoding", key).decode(),
            "readings_stored": sum(client.zcard(k) for k in client.scan_iter("hvs:m:*")),
            "version": client.info("server")["redis_version"],
        }
    finally:
        server.stop()


def _answers(server: servers.Server) -> bool:
    try:
        return bool(redis.Redis(port=server.port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def markdown(result: dict[str, Any]) -> str:
    modules, readings = result["modules"], result["readings_per_module"]
    scale = PER_MODULES / modules / 1e6

    def row(name: str, measure: str, value: int) -> str:
        per_reading = value / (modules * readings)
        return f"| {name} | {measure} | **{value * scale:,.1f}** | {per_reading:,.0f} |"

    sqlite, store = result["sqlite"], result["redis"]
    return "\n".join(
        [
            f"History memory, {modules:,} modules × {readings} readings ({readings * STEP_S:g} s "
            f"at {STEP_S:g} s; {result['date']}):",
            "",
            f"| store | measure | MB per {PER_MODULES:,} modules | bytes per reading |",
            "|---|---|---:|---:|",
            row("SQLite (embedded)", "file size after checkpoint", sqlite["file_bytes"]),
            row("SQLite (embedded)", "pages in use", sqlite["pages_in_use_bytes"]),
            row(
                f"Redis {store['version']} ({store['module_set_encoding']} sets)",
                "INFO used_memory − empty server's",
                store["used_memory_bytes"],
            ),
            row("Redis", "used_memory_rss − empty server's", store["used_memory_rss_bytes"]),
            "",
            f"A reading's record is {8 * (1 + len(SIGNAL_NAMES))} bytes (timestamp and "
            f"{len(SIGNAL_NAMES)} signals as float64).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[memory] %(message)s")
    result: dict[str, Any] = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "modules": args.modules,
        "readings_per_module": args.readings,
    }
    with tempfile.TemporaryDirectory(prefix="hvs-history-memory-") as folder:
        logger.info(f"SQLite: {args.modules:,} modules × {args.readings} readings")
        result["sqlite"] = sqlite_bytes(args.modules, args.readings, Path(folder))
        logger.info(f"Redis: {args.modules:,} modules × {args.readings} readings")
        result["redis"] = redis_bytes(args.modules, args.readings, Path(folder))
    text = markdown(result)
    stem = PROJECT_ROOT / "bench" / "results" / f"history-memory-{datetime.now():%Y%m%d-%H%M%S}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
