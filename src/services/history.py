"""Each module's recent readings, shared by every worker, so a reading posted alone (as a
BMS posts) gets the same features as if its module's last minutes came with it.

Two backends with one interface (`HistoryStore.exchange`): an embedded SQLite file shared
by the workers of one host or container (`history_sqlite.py`, the default) and Redis for
replicas behind one Service (`history_redis.py`). `ModuleHistory` wraps either: when the
store fails or is slow, predictions go on from the request's own readings, marked
`history_source: "request"`, counted, and logged at most once a minute.

Rules, the same for both backends (docs/history.md):
- readings are kept in timestamp order; a reading's features use only readings stamped
  at or before it, so a late (out-of-order) reading is placed where it belongs;
- a reading with the module and timestamp of a stored one replaces it (a retried request
  gives the same answer and adds nothing);
- a module keeps the readings within HISTORY_RETENTION_S of its newest arrival, on either
  side: after a silence longer than the window, or a clock step larger than the
  retention, its history starts fresh; at most `max_readings` per module;
- a module not written for `idle_s` expires; beyond `max_modules` the least recently
  written are evicted (counted in hvs_history_evicted_modules_total).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from src.data.signals import SIGNAL_NAMES
from src.features.engineering import HISTORY_LOOKBACK_S
from src.readings import ReadingBatch

if TYPE_CHECKING:
    from src.settings import Settings

logger = logging.getLogger(__name__)

HistorySource = Literal["store", "request"]

HISTORY_RETENTION_S = 2 * HISTORY_LOOKBACK_S
"""Kept around each module's newest arrival: the lookback, plus as much again for
readings that arrive late."""

RETRY_AFTER_FAILURE_S = 1.0
"""After a store failure, requests skip the store this long (no timeout on every request)."""

LOG_EVERY_S = 60.0
"""While the store keeps failing, one warning per worker per this many seconds."""

_FIELDS = 1 + len(SIGNAL_NAMES)  # timestamp, then the signals
READING_BYTES = 8 * _FIELDS


class HistoryUnavailable(Exception):
    """The store did not answer in time or failed; the message says how."""


@dataclass(frozen=True)
class ModuleReadings:
    """One module's readings as arrays (timestamps ascending)."""

    timestamps_s: np.ndarray
    signals: np.ndarray


class HistoryStore(Protocol):
    def exchange(
        self, modules: dict[str, ModuleReadings], now: float
    ) -> tuple[dict[str, ModuleReadings], int]:
        """Store each module's new readings; return, per module, the readings it had before
        within [oldest new - HISTORY_LOOKBACK_S, newest new] (the new ones' own timestamps
        left out), and how many modules the cap evicted. Raises HistoryUnavailable."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class HistoryLimits:
    max_readings: int
    max_modules: int
    idle_s: float


def pack(readings: ModuleReadings) -> list[bytes]:
    """One fixed-size record per reading: float64 timestamp then signals (NaN kept)."""
    table = np.column_stack((readings.timestamps_s, readings.signals)).astype("<f8")
    return [row.tobytes() for row in table]


def unpack(records: list[bytes]) -> ModuleReadings:
    if not records:
        return ModuleReadings(np.empty(0), np.empty((0, len(SIGNAL_NAMES))))
    table = np.frombuffer(b"".join(records), dtype="<f8").reshape(-1, _FIELDS)
    order = np.argsort(table[:, 0], kind="stable")
    return ModuleReadings(table[order, 0].copy(), table[order, 1:].copy())


def by_module(batch: ReadingBatch) -> dict[str, ModuleReadings]:
    """The batch's readings grouped by module, each module's in timestamp order."""
    names, group = np.unique(np.asarray(batch.module_ids, dtype=object), return_inverse=True)
    order = np.lexsort((batch.timestamps_s, group))
    bounds = np.searchsorted(group[order], np.arange(len(names) + 1))
    grouped = {}
    for index, name in enumerate(names):
        rows = order[bounds[index] : bounds[index + 1]]
        grouped[str(name)] = ModuleReadings(batch.timestamps_s[rows], batch.signals[rows])
    return grouped


@dataclass(frozen=True)
class Context:
    """The request's readings followed by what the store held of their modules."""

    batch: ReadingBatch
    """Rows [0, n) are the request's, in its order; the rest are stored readings."""
    source: HistorySource


class ModuleHistory:
    """The service's view of the store: exchange, or carry on without it."""

    def __init__(
        self,
        store: HistoryStore | None,
        on_state: Callable[[bool], None] = lambda up: None,
        on_fallback: Callable[[int], None] = lambda readings: None,
        on_evicted: Callable[[int], None] = lambda modules: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._on_state, self._on_fallback, self._on_evicted = on_state, on_fallback, on_evicted
        self._clock = clock
        self._skip_until = 0.0
        self._last_warning = -np.inf
        self._up = True
        if store is not None:
            on_state(True)

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def context(self, batch: ReadingBatch) -> Context:
        if self._store is None:
            return Context(batch, "request")
        now = self._clock()
        if now < self._skip_until:
            self._on_fallback(len(batch))
            return Context(batch, "request")
        try:
            stored, evicted = self._store.exchange(by_module(batch), now)
        except HistoryUnavailable as error:
            self._failed(now, str(error), len(batch))
            return Context(batch, "request")
        if not self._up:
            self._up = True
            self._on_state(True)
            logger.info("history store answers again")
        if evicted:
            self._on_evicted(evicted)
        return Context(_append(batch, stored), "store")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def _failed(self, now: float, reason: str, readings: int) -> None:
        self._skip_until = now + RETRY_AFTER_FAILURE_S
        self._on_fallback(readings)
        if self._up:
            self._up = False
            self._on_state(False)
        if now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            logger.warning(
                "history store unavailable (%s): scoring from each request's own readings "
                '(history_source "request") until it answers; retrying every %.0f s',
                reason,
                RETRY_AFTER_FAILURE_S,
            )


def _append(batch: ReadingBatch, stored: dict[str, ModuleReadings]) -> ReadingBatch:
    parts = [(name, readings) for name, readings in stored.items() if len(readings.timestamps_s)]
    if not parts:
        return batch
    module_ids = list(batch.module_ids)
    for name, readings in parts:
        module_ids.extend([name] * len(readings.timestamps_s))
    return ReadingBatch(
        module_ids=module_ids,
        timestamps_s=np.concatenate([batch.timestamps_s, *(r.timestamps_s for _, r in parts)]),
        signals=np.concatenate([batch.signals, *(r.signals for _, r in parts)]),
    )


def history_extent(batch: ReadingBatch, n_request: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of the first n_request readings: seconds back to the oldest earlier reading
    of its module within HISTORY_LOOKBACK_S, and how many such readings there are."""
    n_rows = len(batch)
    if n_rows == 1:
        return np.zeros(1), np.zeros(1, dtype=np.int64)
    _, group = np.unique(np.asarray(batch.module_ids, dtype=object), return_inverse=True)
    t = batch.timestamps_s
    order = np.lexsort((t, group))
    stride = float(t.max() - t.min()) + HISTORY_LOOKBACK_S + 1.0
    key = group[order] * stride + (t[order] - t.min())
    first = np.searchsorted(key, key - HISTORY_LOOKBACK_S, side="left")
    position = np.arange(n_rows)
    seconds = np.empty(n_rows)
    counts = np.empty(n_rows, dtype=np.int64)
    seconds[order] = t[order] - t[order][first]
    counts[order] = position - first
    # Milliseconds are all a timestamp's jitter leaves meaningful, and all a reader needs.
    return np.round(seconds[:n_request], 3), counts[:n_request]


def open_store(settings: Settings) -> HistoryStore | None:
    """The configured store (None when history is off). Connections open on first use, so
    this is safe to call in gunicorn's master before the fork."""
    if not settings.history:
        return None
    limits = HistoryLimits(
        max_readings=settings.history_max_readings,
        max_modules=settings.history_max_modules,
        idle_s=settings.history_idle_s,
    )
    timeout_s = settings.history_timeout_ms / 1000.0
    if settings.history_url is not None:
        from src.services.history_redis import RedisHistory

        return RedisHistory(settings.history_url, settings.history_prefix, limits, timeout_s)
    from src.services.history_sqlite import SqliteHistory

    path = settings.history_path
    if path is None:  # a process of its own (tests, scripts); gunicorn's master sets one
        path = str(Path(tempfile.mkdtemp(prefix="hvs-history-")) / "history.sqlite3")
    return SqliteHistory(Path(path), settings.history_prefix, limits, timeout_s)
