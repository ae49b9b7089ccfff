"""Reload without downtime, the real thing: gunicorn with 2 workers serving
models:/hvs@champion from a relocated file store, requests flowing from 4 clients while
the alias moves. Every request must succeed, every answer names the run that produced
it, and both workers must converge (hvs_model_info, parsed with prometheus_client)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from src.data.signals import SIGNALS
from src.training.tracking import set_alias
from tests.conftest import edit_serving_config
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration

CLIENTS = 4
POLL_S = 0.5


def model_info(url: str) -> dict[str, float]:
    """registered_version -> hvs_model_info (livemax over live workers)."""
    text = requests.get(url + "/metrics", timeout=5).text
    return {
        sample.labels["registered_version"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hvs_model_info"
    }


def counter(url: str, name: str, **labels: str) -> float:
    text = requests.get(url + "/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


class Load:
    """CLIENTS threads posting one reading each, as fast as the server answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int | str] = Counter()
        self.versions: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _post(self, client: int) -> None:
        session = requests.Session()
        second = 0
        while not self._stop.is_set():
            second += 10
            body = {"module_id": f"R09-M{client:02d}", "timestamp": 1_767_225_600 + second}
            body.update({signal.name: signal.reference for signal in SIGNALS})
            try:
                response = session.post(self.url + "/predict", json=body, timeout=10)
                status: int | str = response.status_code
                version = response.json()["predictions"][0]["model_version"]
            except Exception as error:  # counted: a refused connection is a failed request
                status, version = type(error).__name__, ""
            with self._lock:
                self.statuses[status] += 1
                if version:
                    self.versions.append((time.monotonic(), version))

    def wait_for(self, requests_: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        start = sum(self.statuses.values())
        while sum(self.statuses.values()) - start < requests_ and time.monotonic() < deadline:
            time.sleep(0.05)


def wait_until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture
def server(copied_registry, tmp_path) -> Iterator[GunicornServer]:
    env = {
        "MODEL_URI": "models:/hvs@champion",
        "BEST_MLFLOW_RUN_ID": "",
        "MLFLOW_TRACKING_URI": copied_registry.tracking_uri,
        "HVS_MODEL_POLL_SECONDS": str(POLL_S),
    }
    running = GunicornServer(env, tmp_path / "server.log", workers=2).start()
    running.wait_all_workers_ready()
    yield running
    running.stop()


def test_moving_the_alias_under_load_fails_no_request(server, copied_registry):
    store = copied_registry
    runs = store.run_ids
    assert model_info(server.url) == {"1": 1.0}
    with Load(server.url) as load:
        load.wait_for(50)
        moved_at = time.monotonic()
        set_alias(store.tracking_uri, "hvs", "champion", "2")
        converged_s = wait_until(
            lambda: model_info(server.url) == {"1": 0.0, "2": 1.0},
            timeout=60,
            what=f"the workers never all served version 2:\n{server.log()}",
        )
        load.wait_for(50)
        # a broken version: refused by both workers, version 2 keeps answering
        edit_serving_config(store.mlruns, runs["1"], lambda c: c.update(window_s=1.0))
        set_alias(store.tracking_uri, "hvs", "champion", "1")
        wait_until(
            lambda: counter(server.url, "hvs_model_reloads_total", outcome="refused") == 2,
            timeout=60,
            what=f"the broken version was not refused by both workers:\n{server.log()}",
        )
        load.wait_for(50)
    total = sum(load.statuses.values())
    print(
        f"\n{total} requests from {CLIENTS} clients, statuses {dict(load.statuses)}; both "
        f"workers served version 2 {converged_s:.2f} s after the alias moved (poll {POLL_S} s)"
    )
    assert dict(load.statuses) == {200: total}
    assert {version for _, version in load.versions} == {runs["1"], runs["2"]}
    settled = moved_at + converged_s
    assert {version for at, version in load.versions if at > settled + 0.5} == {runs["2"]}
    assert counter(server.url, "hvs_model_reloads_total", outcome="loaded") == 2
    assert model_info(server.url) == {"1": 0.0, "2": 1.0}
    described = requests.get(server.url + "/model", timeout=5).json()
    assert described["model_uri"] == "models:/hvs@champion"
    assert described["registered_model"] == {"name": "hvs", "version": "2", "alias": "champion"}
    assert "refused the new version, the previous model keeps serving" in server.log()
    # drift against the served run's baseline, from both workers' windows (livemax)
    text = requests.get(server.url + "/metrics", timeout=5).text
    drift = {
        (sample.name, sample.labels["signal"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("hvs_drift_")
    }
    for signal in (s.name for s in SIGNALS):
        assert 0.0 <= drift[("hvs_drift_out_of_range_ratio", signal)] <= 1.0
        assert drift[("hvs_drift_psi", signal)] >= 0.0
