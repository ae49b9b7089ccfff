"""Module history under the real server: two gunicorn workers share it (SQLite by
default, or a real redis-server), and a Redis outage mid-load is never silence or a 5xx."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
import requests

from tests.integration.test_gunicorn import metric_samples, reading, total
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration


def start(trained_store, tmp_path, name: str, **env: str) -> GunicornServer:
    server = GunicornServer(
        {
            "BEST_MLFLOW_RUN_ID": trained_store.run_id,
            "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
            **env,
        },
        tmp_path / f"{name}.log",
    ).start()
    server.wait_all_workers_ready()
    return server


def stream_then_batch(server: GunicornServer) -> None:
    readings = [reading("R07-M03", 10 * i, h2_ppm=1.0 + 0.5 * i) for i in range(45)]
    streamed = []
    for item in readings:  # one per request, on fresh connections: both workers take some
        response = requests.post(server.url + "/predict", json=item, timeout=10)
        assert response.status_code == 200, response.text
        streamed.append(response.json()["predictions"][0])
    renamed = [{**item, "module_id": "R07-M99"} for item in readings]
    batched = requests.post(server.url + "/predict", json={"readings": renamed}, timeout=10)
    batched = batched.json()["predictions"]
    # every worker saw every earlier reading: the history was shared
    # all 45 lie within the 30-minute lookback
    assert [p["history_readings"] for p in streamed] == list(range(45))
    assert {p["history_source"] for p in streamed} == {"store"}
    for one, whole in zip(streamed, batched, strict=True):
        assert one["hazard_probability"] == pytest.approx(whole["hazard_probability"], abs=1e-6)
        assert one["history_s"] == whole["history_s"]
    assert total(metric_samples(server.url), "hvs_history_seconds_count") >= 90


def test_two_workers_share_the_embedded_store(trained_store, tmp_path):
    server = start(trained_store, tmp_path, "sqlite")
    try:
        stream_then_batch(server)
        assert total(metric_samples(server.url), "hvs_history_store_up") == 1
    finally:
        assert server.stop() == 0
    assert not re.search(r"hvs-history-\w+", " ".join(p.name for p in tmp_path.iterdir()))


def test_two_workers_share_redis(trained_store, tmp_path, redis_server):
    server = start(
        trained_store, tmp_path, "redis", HVS_HISTORY_URL=redis_server.url, HVS_HISTORY_PREFIX="it"
    )
    try:
        stream_then_batch(server)
    finally:
        assert server.stop() == 0


def test_history_off_is_stateless(trained_store, tmp_path):
    server = start(trained_store, tmp_path, "off", HVS_HISTORY="off")
    try:
        for second in (0, 10):
            answer = requests.post(server.url + "/predict", json=reading("R01-M01", second))
            prediction = answer.json()["predictions"][0]
            assert prediction["history_source"] == "request"
            assert prediction["history_readings"] == 0
    finally:
        assert server.stop() == 0


def test_redis_stopped_mid_load_means_no_5xx_and_recovery_without_restart(trained_store, tmp_path):
    from tests.redis_server import RedisServer

    redis_server = RedisServer(tmp_path / "redis").start()
    server = start(
        trained_store,
        tmp_path,
        "outage",
        HVS_HISTORY_URL=redis_server.url,
        HVS_HISTORY_TIMEOUT_MS="50",
    )
    statuses: Counter[int] = Counter()
    sources: list[tuple[float, str]] = []
    stop = threading.Event()

    def stream(module: str) -> None:
        second = 0
        while not stop.is_set():
            try:
                response = requests.post(
                    server.url + "/predict", json=reading(module, second), timeout=5
                )
            except requests.RequestException:
                statuses[-1] += 1  # a dropped connection would count as a failure
                continue
            statuses[response.status_code] += 1
            if response.status_code == 200:
                source = response.json()["predictions"][0]["history_source"]
                sources.append((time.monotonic(), source))
            second += 10

    threads = [threading.Thread(target=stream, args=(f"R09-M{m:02d}",)) for m in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        stopped_at = time.monotonic()
        redis_server.stop()
        time.sleep(3)
        down = metric_samples(server.url)
        redis_server.start()  # the same port, empty: history starts fresh
        restarted_at = time.monotonic()
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        up = metric_samples(server.url)
    finally:
        stop.set()
        assert server.stop() == 0
        redis_server.stop()
    assert set(statuses) == {200}, statuses  # no 5xx, no error of any kind
    during = [s for t, s in sources if stopped_at + 0.5 < t < restarted_at]
    after = [s for t, s in sources if t > restarted_at + 2.5]  # past the retry pause
    assert during
    assert set(during) == {"request"}
    assert after
    assert set(after) == {"store"}
    assert total(down, "hvs_history_store_up") == 0
    assert total(up, "hvs_history_store_up") == 1
    assert total(up, "hvs_history_fallback_readings_total") >= len(during)
    warnings = [line for line in server.log().splitlines() if "history store unavailable" in line]
    assert 1 <= len(warnings) <= 2, warnings  # at most one per worker per minute
    print(
        f"redis outage: {sum(statuses.values())} requests, {statuses}, {len(during)} "
        f"answered from the request alone while it was down"
    )
