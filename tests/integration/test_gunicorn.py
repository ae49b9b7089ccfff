"""The real thing: gunicorn with 2 workers on a free loopback port, real HTTP, a relocated
MLflow store written by the real training code, /metrics parsed by prometheus_client."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from src.data.signals import SIGNALS
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration


def reading(module_id: str = "R01-M01", second: int = 0, **overrides) -> dict:
    body = {"module_id": module_id, "timestamp": 1_767_225_600 + second}
    body.update({signal.name: signal.reference for signal in SIGNALS})
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory) -> Iterator[GunicornServer]:
    env = {
        "BEST_MLFLOW_RUN_ID": trained_store.run_id,
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
    }
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    running = GunicornServer(env, log).start()
    running.wait_all_workers_ready()
    yield running
    running.stop()


def metric_samples(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url + "/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and all((k, v) in sample_labels for k, v in labels.items())
    )


def test_payload_files(server, payload_normal, payload_hazardous):
    headers = {"Content-Type": "application/json"}
    normal = requests.post(server.url + "/predict", data=payload_normal, headers=headers)
    hazardous = requests.post(server.url + "/predict", data=payload_hazardous, headers=headers)
    assert normal.status_code == 200, normal.text
    assert hazardous.status_code == 200, hazardous.text
    assert {p["level"] for p in normal.json()["predictions"]} == {"normal"}
    # The suite's small model is not the default one (which alarms here, as the README
    # shows); it must still not let the end of the precursor pass as normal.
    assert hazardous.json()["predictions"][-1]["level"] in ("warning", "alarm")


def test_batches_of_several_modules(server, trained_store):
    readings = [reading(f"R01-M{m:02d}", 10 * s) for s in range(30) for m in range(8)]
    response = requests.post(server.url + "/predict", json={"readings": readings}, timeout=10)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 240
    assert {p["model_version"] for p in predictions} == {trained_store.run_id}


# Every class of bad input is checked in process (tests/test_api.py); over real HTTP, one
# of each status is enough to show gunicorn passes the JSON errors through unchanged.
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (json.dumps({"readings": [reading(co_ppm=-3)]}), 422, "readings[0].co_ppm"),
        ("{not json", 400, "(body)"),
    ],
)
def test_bad_input_gets_a_json_4xx(server, body, status, field):
    response = requests.post(
        server.url + "/predict", data=body, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in [detail["field"] for detail in error["details"]]
    assert "Traceback" not in response.text


def test_oversized_body_gets_413_and_the_server_keeps_serving(server):
    huge = b'{"readings": [' + b" " * (17 * 1024 * 1024) + b"]}"
    response = requests.post(
        server.url + "/predict", data=huge, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_entity_too_large"
    assert requests.post(server.url + "/predict", json=reading(), timeout=5).status_code == 200


def test_metrics_add_up_across_workers(server):
    before = metric_samples(server.url)
    sizes = [1, 3, 5, 7] * 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda n: (
                    requests.post(
                        server.url + "/predict",
                        json={"readings": [reading("R02-M01", 10 * i) for i in range(n)]},
                        timeout=10,
                    ).status_code
                ),
                sizes,
            )
        )
    assert statuses == [200] * len(sizes)
    for _ in range(10):  # probes and scrapes are not traffic
        requests.get(server.url + "/health", timeout=5)
        requests.get(server.url + "/ready", timeout=5)
    for _ in range(6):  # every scrape, whichever worker answers, shows the same totals
        after = metric_samples(server.url)
        predictions = total(after, "hvs_predictions_total") - total(before, "hvs_predictions_total")
        assert predictions == sum(sizes)
        requests_200 = total(
            after, "flask_http_request_total", status="200", method="POST"
        ) - total(before, "flask_http_request_total", status="200", method="POST")
        assert requests_200 == len(sizes)
        assert total(after, "hvs_hazard_probability_count") - total(
            before, "hvs_hazard_probability_count"
        ) == sum(sizes)
    durations = [key for key in after if key[0] == "flask_http_request_duration_seconds_count"]
    endpoints = {dict(labels).get("endpoint") for _, labels in durations}
    assert "api.predict" in endpoints
    assert not endpoints & {"api.health", "api.ready", "prometheus_metrics"}
    assert total(after, "hvs_model_info", run_id=server.env["BEST_MLFLOW_RUN_ID"]) >= 1
    assert total(after, "hvs_model_ready") == 1
    assert total(after, "hvs_model_load_seconds") > 0


def test_workers_both_serve(server):
    """Two workers really run: the master has two children answering."""
    log = server.log()
    booted = set(re.findall(r"Booting worker with pid: (\d+)", log))
    assert len(booted) >= 2, log


def test_wrong_run_id_stops_the_server_with_one_clear_line(trained_store, tmp_path):
    wrong = "f" * 32
    failing = GunicornServer(
        {"BEST_MLFLOW_RUN_ID": wrong, "MLFLOW_TRACKING_URI": trained_store.tracking_uri},
        tmp_path / "wrong.log",
    ).start()
    assert failing.wait_exit(timeout=60) != 0
    lines = [line for line in failing.log().splitlines() if wrong in line]
    assert lines, failing.log()
    assert "not found" in lines[0]
    assert str(trained_store.mlruns) in lines[0]
    assert "Traceback" not in failing.log()


def test_missing_store_and_unset_run_id_fail_clearly(tmp_path):
    missing = GunicornServer(
        {"BEST_MLFLOW_RUN_ID": "a" * 32, "MLFLOW_TRACKING_URI": str(tmp_path / "nowhere")},
        tmp_path / "missing.log",
    ).start()
    assert missing.wait_exit(timeout=60) != 0
    assert "does not exist" in missing.log()
    assert "mount" in missing.log()
    unset = GunicornServer({"BEST_MLFLOW_RUN_ID": "RUN_ID_NOT_SET"}, tmp_path / "unset.log").start()
    assert unset.wait_exit(timeout=60) != 0
    assert "BEST_MLFLOW_RUN_ID is not set" in unset.log()


def test_without_the_startup_check_readiness_reports_the_problem(trained_store, tmp_path):
    wrong = "e" * 32
    server = GunicornServer(
        {
            "BEST_MLFLOW_RUN_ID": wrong,
            "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
            "HVS_SKIP_STARTUP_CHECK": "1",
        },
        tmp_path / "skip.log",
    ).start()
    try:
        server.wait_until("/health")
        deadline = time.monotonic() + 30
        while True:  # "still loading" first, then the load error, never 200
            response = server.wait_until("/ready", status=503)
            error = response.json()["error"]
            if error["code"] == "model_unavailable" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert error["code"] == "model_unavailable"
        assert wrong not in error["message"]  # the client gets no internals...
        assert wrong in server.log()  # ...the log says which run could not be found
        assert requests.post(server.url + "/predict", json=reading(), timeout=5).status_code == 503
    finally:
        assert server.stop() == 0


def test_store_copied_again_elsewhere_still_serves(trained_store, tmp_path):
    """A second relocation, with Windows paths recorded in meta.yaml as if written there."""
    moved = tmp_path / "elsewhere" / "mlruns"
    shutil.copytree(trained_store.mlruns, moved)
    for meta in moved.rglob("meta.yaml"):
        text = meta.read_text()
        text = re.sub(r"file://\S*?/mlruns/", "file:///C:/Users/operator/hvs/mlruns/", text)
        meta.write_text(text)
    assert "C:/Users" in next(moved.rglob("models/*/meta.yaml")).read_text()
    server = GunicornServer(
        {"BEST_MLFLOW_RUN_ID": trained_store.run_id, "MLFLOW_TRACKING_URI": moved.as_uri()},
        tmp_path / "moved.log",
    ).start()
    try:
        server.wait_until("/ready")
        assert requests.post(server.url + "/predict", json=reading(), timeout=5).status_code == 200
    finally:
        assert server.stop() == 0


def access_lines(log: str) -> list[dict]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "gunicorn.access"]


def test_access_log_only_when_asked_and_graceful_stop_exits_zero(server, trained_store, tmp_path):
    assert requests.post(server.url + "/predict", json=reading(), timeout=5).status_code == 200
    assert access_lines(server.log()) == []  # the default: no access log
    logged = GunicornServer(
        {
            "BEST_MLFLOW_RUN_ID": trained_store.run_id,
            "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
            "GUNICORN_ACCESS_LOG": "-",
        },
        tmp_path / "access.log",
    ).start()
    logged.wait_until("/ready")
    assert requests.post(logged.url + "/predict", json=reading(), timeout=5).status_code == 200
    assert logged.stop() == 0
    messages = [line["message"] for line in access_lines(logged.log())]
    assert any('"POST /predict HTTP/1.1" 200' in message for message in messages), messages


def test_a_killed_worker_is_replaced_and_totals_stay_whole(server):
    """SIGKILL one worker: gunicorn forks a new one, which loads its model before taking
    connections, requests keep being served, and the dead worker's counts stay in the
    totals."""
    send = lambda: requests.post(server.url + "/predict", json=reading(), timeout=10)  # noqa: E731
    assert all(send().status_code == 200 for _ in range(10))
    before = total(metric_samples(server.url), "hvs_predictions_total")
    workers = {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.log())}
    victim = max(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        booted = {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log())}
        if booted - workers:
            break
        time.sleep(0.1)
    assert booted - workers, server.log()
    # Until the new worker has created its metrics, the gauge's minimum covers only the
    # survivor: wait for the newcomer's own "model ready" line first.
    newcomer = (booted - workers).pop()
    while time.monotonic() < deadline and not re.search(
        rf'"pid": {newcomer}, "message": "model ready"', server.log()
    ):
        time.sleep(0.1)
    server.wait_all_workers_ready()
    assert all(send().status_code == 200 for _ in range(10))
    after = metric_samples(server.url)
    assert total(after, "hvs_predictions_total") == before + 10
    assert total(after, "hvs_model_ready") == 1


def test_store_gone_and_a_worker_replaced_heals_when_the_store_is_back(trained_store, tmp_path):
    """The mounted store disappears, a worker dies and its replacement cannot load: it
    answers 503 and retries; once the store is back, every answer is 200 again, with no
    restart."""
    store = tmp_path / "mounted" / "mlruns"
    shutil.copytree(trained_store.mlruns, store)
    server = GunicornServer(
        {"BEST_MLFLOW_RUN_ID": trained_store.run_id, "MLFLOW_TRACKING_URI": store.as_uri()},
        tmp_path / "heal.log",
    ).start()
    try:
        server.wait_all_workers_ready()
        store.rename(store.with_name("away"))
        workers = {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log())}
        os.kill(max(workers), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "model load failed, /ready answers 503" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        statuses: set[int] = set()
        for _ in range(200):  # whichever worker accepts: until both have answered
            statuses.add(
                requests.post(server.url + "/predict", json=reading(), timeout=5).status_code
            )
            if len(statuses) == 2:
                break
        assert statuses == {200, 503}  # one worker serves, the new one says it cannot
        store.with_name("away").rename(store)
        server.wait_all_workers_ready(timeout=60)
        answers = [
            requests.post(server.url + "/predict", json=reading(), timeout=5).status_code
            for _ in range(40)
        ]
        assert answers == [200] * 40
    finally:
        assert server.stop() == 0


def series_count(url: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    text = requests.get(url + "/metrics", timeout=10).text
    elapsed = time.perf_counter() - started
    count = sum(len(family.samples) for family in text_string_to_metric_families(text))
    return count, len(text), elapsed


def test_made_up_methods_and_paths_do_not_grow_metrics(server):
    import http.client

    for method in ("GET", "BREW", "PROPFIND"):  # every label value that can appear, first
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request(method, "/nope")
        connection.getresponse().read()
        connection.close()
    before = series_count(server.url)
    for index in range(1000):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request(f"X{index:04d}ZAP".replace("0", "Q"), f"/made-up/{index}")
        response = connection.getresponse()
        body = response.read()
        assert response.status in (404, 405), response.status
        assert json.loads(body)["error"]["code"] in ("not_found", "method_not_allowed")
        connection.close()
    after = series_count(server.url)
    assert after[0] == before[0], (before, after)  # not one series more
    assert after[1] < before[1] + 500  # the same text, bigger counts
    assert after[2] < 10 * before[2] + 0.05  # loose: the scrape did not slow with them


def test_worker_restarts_keep_totals_and_the_metrics_folder_small(trained_store, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    server = GunicornServer(
        {
            "BEST_MLFLOW_RUN_ID": trained_store.run_id,
            "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
            "GUNICORN_MAX_REQUESTS": "20",  # each worker replaced after 20-21 requests
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        tmp_path / "restarts.log",
    ).start()
    try:
        server.wait_all_workers_ready()
        for index in range(300):
            response = requests.post(server.url + "/predict", json=reading("R05-M01", 10 * index))
            assert response.status_code == 200
        server.wait_all_workers_ready()
        booted = len(re.findall(r"Booting worker with pid", server.log()))
        assert booted >= 10, booted
        assert total(metric_samples(server.url), "hvs_predictions_total") == 300
        files = sorted(path.name for path in metrics_dir.glob("*.db"))
        # the live workers' files, plus one archive per type: not one per worker that lived
        assert len(files) <= 2 * 6 + 2, "\n".join(files)
        assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
    finally:
        assert server.stop() == 0
