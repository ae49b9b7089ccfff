"""The embedded history store: one SQLite file shared by every worker of a host or container.

WAL mode lets the workers read while one writes; `synchronous=OFF` because the file is a
cache of the last minutes (on a tmpfs by default), not a record: losing it to a crash
costs each module a few minutes of warm-up, never a wrong answer. Each worker opens its
own connection after the fork. Every exchange is one transaction, so a module's append,
trim and read are atomic; the busy timeout is the store's timeout.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import numpy as np

from src.features.engineering import HISTORY_LOOKBACK_S
from src.services.history import (
    HISTORY_RETENTION_S,
    HistoryLimits,
    HistoryUnavailable,
    ModuleReadings,
    pack,
    unpack,
)

MAINTENANCE_EVERY_S = 10.0
"""How often a worker expires idle modules and enforces the module cap."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    module TEXT NOT NULL, ts REAL NOT NULL, data BLOB NOT NULL, PRIMARY KEY (module, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS modules (module TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS modules_by_seen ON modules (seen);
"""


class SqliteHistory:
    def __init__(
        self,
        path: Path,
        prefix: str,
        limits: HistoryLimits,
        timeout_s: float,
        maintenance_every_s: float = MAINTENANCE_EVERY_S,
    ) -> None:
        self._path = path
        self._maintenance_every_s = maintenance_every_s
        self._prefix = prefix + ":"
        self._limits = limits
        self._timeout_s = timeout_s
        self._connection: sqlite3.Connection | None = None
        self._next_maintenance = 0.0

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self._path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    def exchange(
        self, modules: dict[str, ModuleReadings], now: float
    ) -> tuple[dict[str, ModuleReadings], int]:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                stored = {
                    name: self._exchange_one(connection, name, new, now)
                    for name, new in modules.items()
                }
                evicted = self._maintain(connection, now)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            self.close()  # a fresh connection next time, in case this one is broken
            raise HistoryUnavailable(f"SQLite at {self._path}: {error}") from None
        return stored, evicted

    def _exchange_one(
        self, connection: sqlite3.Connection, name: str, new: ModuleReadings, now: float
    ) -> ModuleReadings:
        key = self._prefix + name
        oldest, newest = float(new.timestamps_s[0]), float(new.timestamps_s[-1])
        rows = connection.execute(
            "SELECT data FROM readings WHERE module = ? AND ts BETWEEN ? AND ?",
            (key, oldest - HISTORY_LOOKBACK_S, newest),
        ).fetchall()
        before = unpack([row[0] for row in rows])
        connection.executemany(
            "INSERT OR REPLACE INTO readings (module, ts, data) VALUES (?, ?, ?)",
            zip([key] * len(new.timestamps_s), new.timestamps_s.tolist(), pack(new), strict=True),
        )
        connection.execute(
            "DELETE FROM readings WHERE module = ? AND (ts < ? OR ts > ?)",
            (key, newest - HISTORY_RETENTION_S, newest + HISTORY_RETENTION_S),
        )
        connection.execute(
            "DELETE FROM readings WHERE module = ? AND ts < (SELECT ts FROM readings "
            "WHERE module = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
            (key, key, self._limits.max_readings - 1),
        )
        connection.execute(
            "INSERT INTO modules (module, seen) VALUES (?, ?) "
            "ON CONFLICT (module) DO UPDATE SET seen = excluded.seen",
            (key, now),
        )
        # A retried reading is the request's own: leave its stored copy out.
        keep = ~np.isin(before.timestamps_s, new.timestamps_s)
        return ModuleReadings(before.timestamps_s[keep], before.signals[keep])

    def _maintain(self, connection: sqlite3.Connection, now: float) -> int:
        """Expire idle modules and evict beyond the cap, every MAINTENANCE_EVERY_S."""
        if time.monotonic() < self._next_maintenance:
            return 0
        self._next_maintenance = time.monotonic() + self._maintenance_every_s
        stale = now - self._limits.idle_s
        connection.execute(
            "DELETE FROM readings WHERE module IN (SELECT module FROM modules WHERE seen < ?)",
            (stale,),
        )
        connection.execute("DELETE FROM modules WHERE seen < ?", (stale,))
        (count,) = connection.execute("SELECT count(*) FROM modules").fetchone()
        excess = count - self._limits.max_modules
        if excess <= 0:
            return 0
        victims = connection.execute(
            "SELECT module FROM modules ORDER BY seen LIMIT ?", (excess,)
        ).fetchall()
        connection.executemany("DELETE FROM readings WHERE module = ?", victims)
        connection.executemany("DELETE FROM modules WHERE module = ?", victims)
        return len(victims)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None
