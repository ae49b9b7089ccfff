"""The history store's rules, each against both backends: SQLite and a real redis-server."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from src.data.signals import SIGNAL_NAMES
from src.features.engineering import HISTORY_LOOKBACK_S
from src.readings import ReadingBatch
from src.services.history import (
    HISTORY_RETENTION_S,
    RETRY_AFTER_FAILURE_S,
    HistoryLimits,
    HistoryUnavailable,
    ModuleHistory,
    ModuleReadings,
    history_extent,
)
from src.services.history_redis import RedisHistory
from src.services.history_sqlite import SqliteHistory

T0 = 1_767_225_600.0
LIMITS = HistoryLimits(max_readings=50, max_modules=100, idle_s=3600.0)


def make_store(kind: str, tmp_path, redis_server, limits=LIMITS, prefix=None):
    prefix = prefix or f"test-{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return SqliteHistory(
            tmp_path / "history.sqlite3", prefix, limits, timeout_s=1.0, maintenance_every_s=0.0
        )
    return RedisHistory(redis_server.url, prefix, limits, timeout_s=1.0)


@pytest.fixture(params=["sqlite", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def store(kind, tmp_path, redis_server):
    made = make_store(kind, tmp_path, redis_server)
    yield made
    made.close()


def readings(times, value: float = 1.0) -> ModuleReadings:
    times = np.asarray(times, dtype=np.float64)
    signals = np.full((times.size, len(SIGNAL_NAMES)), value)
    signals[:, 0] = times  # each reading distinguishable by its first signal
    signals[:, 1] = np.nan  # missing values survive the round trip
    return ModuleReadings(times, signals)


def exchange(store, module: str, times, now: float = T0, value: float = 1.0):
    stored, evicted = store.exchange({module: readings(times, value)}, now)
    return stored[module], evicted


def test_the_first_reading_has_no_history_the_next_sees_it(store):
    before, _ = exchange(store, "M1", [T0])
    assert before.timestamps_s.size == 0
    before, _ = exchange(store, "M1", [T0 + 10])
    assert before.timestamps_s.tolist() == [T0]
    assert before.signals[0, 0] == T0
    assert np.isnan(before.signals[0, 1])


def test_only_readings_within_the_lookback_and_at_or_before_come_back(store):
    lookback = HISTORY_LOOKBACK_S
    exchange(store, "M1", [T0, T0 + 100, T0 + 200, T0 + lookback + 100])
    # a late reading: only what is stamped at or before it, back to its lookback (T0 + 50)
    before, _ = exchange(store, "M1", [T0 + lookback + 50])
    assert before.timestamps_s.tolist() == [T0 + 100, T0 + 200]


def test_a_retried_reading_replaces_its_stored_copy(store):
    exchange(store, "M1", [T0, T0 + 10])
    before, _ = exchange(store, "M1", [T0 + 10], value=2.0)  # the same timestamp again
    assert before.timestamps_s.tolist() == [T0]  # its own stored copy is left out
    before, _ = exchange(store, "M1", [T0 + 20])
    assert before.timestamps_s.tolist() == [T0, T0 + 10]  # one copy, the newer values
    assert before.signals[1, 2] == 2.0


def test_a_module_silent_longer_than_the_retention_starts_fresh(store):
    exchange(store, "M1", [T0, T0 + 10])
    before, _ = exchange(store, "M1", [T0 + HISTORY_RETENTION_S + 60])
    assert before.timestamps_s.size == 0
    # and what was kept before the silence was trimmed, not left to come back later
    before, _ = exchange(store, "M1", [T0 + 20])
    assert before.timestamps_s.size == 0


def test_a_clock_step_back_beyond_the_retention_starts_fresh(store):
    exchange(store, "M1", [T0 + 10_000, T0 + 10_010])
    before, _ = exchange(store, "M1", [T0])
    assert before.timestamps_s.size == 0
    before, _ = exchange(store, "M1", [T0 + 10_020])
    assert before.timestamps_s.size == 0  # the readings ahead of the step were dropped


def test_readings_per_module_are_capped(kind, tmp_path, redis_server):
    capped = make_store(
        kind, tmp_path, redis_server, HistoryLimits(max_readings=10, max_modules=100, idle_s=3600)
    )
    exchange(capped, "M1", T0 + np.arange(30.0))
    before, _ = exchange(capped, "M1", [T0 + 30])
    assert before.timestamps_s.tolist() == (T0 + np.arange(20.0, 30.0)).tolist()


def test_a_flood_of_new_modules_evicts_the_least_recently_written(kind, tmp_path, redis_server):
    small = make_store(
        kind, tmp_path, redis_server, HistoryLimits(max_readings=10, max_modules=3, idle_s=3600)
    )
    evicted = 0
    for index in range(6):
        _, count = exchange(small, f"M{index}", [T0], now=T0 + index)
        evicted += count
    assert evicted == 3
    # the kept ones first: writing an evicted module again is a new module, which evicts
    for index, kept in ((5, True), (4, True), (3, True), (0, False)):
        before, _ = exchange(small, f"M{index}", [T0 + 10], now=T0 + 100 + index)
        assert (before.timestamps_s.size == 1) == kept, index


def test_idle_modules_expire(kind, tmp_path, redis_server):
    """Real time: Redis expires keys by its own clock, SQLite by the exchange's."""
    short = make_store(
        kind, tmp_path, redis_server, HistoryLimits(max_readings=10, max_modules=100, idle_s=1)
    )
    exchange(short, "idle", [T0], now=time.time())
    time.sleep(1.5)
    exchange(short, "other", [T0], now=time.time())  # SQLite's maintenance runs here
    before, _ = exchange(short, "idle", [T0 + 10], now=time.time())
    assert before.timestamps_s.size == 0


def test_prefixes_keep_sites_apart(kind, tmp_path, redis_server):
    site_a = make_store(kind, tmp_path, redis_server, prefix="site-a")
    site_b = make_store(kind, tmp_path, redis_server, prefix="site-b")
    exchange(site_a, "R01-M01", [T0])
    before, _ = exchange(site_b, "R01-M01", [T0 + 10])
    assert before.timestamps_s.size == 0
    before, _ = exchange(site_a, "R01-M01", [T0 + 20])
    assert before.timestamps_s.tolist() == [T0]


def test_many_modules_in_one_exchange(store):
    modules = {f"M{index}": readings([T0, T0 + 10]) for index in range(20)}
    store.exchange(modules, T0)
    stored, _ = store.exchange({name: readings([T0 + 20]) for name in modules}, T0)
    assert all(r.timestamps_s.tolist() == [T0, T0 + 10] for r in stored.values())


def batch(module_ids, times) -> ReadingBatch:
    times = np.asarray(times, dtype=np.float64)
    return ReadingBatch(list(module_ids), times, np.ones((times.size, len(SIGNAL_NAMES))))


def test_the_context_holds_the_request_first_then_the_stored_readings(store):
    history = ModuleHistory(store)
    history.context(batch(["A", "A", "B"], [T0, T0 + 10, T0]))
    context = history.context(batch(["B", "A"], [T0 + 10, T0 + 20]))
    assert context.source == "store"
    assert list(context.batch.module_ids[:2]) == ["B", "A"]
    assert sorted(
        zip(context.batch.module_ids[2:], context.batch.timestamps_s[2:], strict=False)
    ) == [
        ("A", T0),
        ("A", T0 + 10),
        ("B", T0),
    ]
    seconds, counts = history_extent(context.batch, 2)
    assert seconds.tolist() == [10.0, 20.0]
    assert counts.tolist() == [1, 2]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_a_failing_store_falls_back_to_the_request_and_recovers(kind, tmp_path, redis_server):
    """A store that really fails: a SQLite path that is a folder, a Redis port nobody
    listens on; then one that works again."""
    if kind == "sqlite":
        (tmp_path / "not-a-file").mkdir()
        broken = SqliteHistory(tmp_path / "not-a-file", "p", LIMITS, timeout_s=0.05)
    else:
        from tests.servers import free_port

        broken = RedisHistory(f"redis://127.0.0.1:{free_port()}/0", "p", LIMITS, timeout_s=0.05)
    with pytest.raises(HistoryUnavailable):
        broken.exchange({"M": readings([T0])}, T0)

    states, fallbacks = [], []
    clock = Clock()
    history = ModuleHistory(
        broken, on_state=states.append, on_fallback=fallbacks.append, clock=clock
    )
    assert history.context(batch(["M"], [T0])).source == "request"
    assert history.context(batch(["M", "M"], [T0 + 10, T0 + 20])).source == "request"
    assert states == [True, False]
    assert fallbacks == [1, 2]
    # the store is back: after the retry pause, the next request uses it again
    history._store = make_store(kind, tmp_path, redis_server)
    assert history.context(batch(["M"], [T0 + 30])).source == "request"  # still pausing
    clock.now += RETRY_AFTER_FAILURE_S
    assert history.context(batch(["M"], [T0 + 40])).source == "store"
    assert states == [True, False, True]


def test_history_off_means_the_request_alone():
    history = ModuleHistory(None)
    context = history.context(batch(["M"], [T0]))
    assert context.source == "request"
    assert len(context.batch) == 1
