"""A real Prometheus (Debian's package) scraping the real service, with the project's own
scrape configurations and alert rules: the service's metrics arrive, the Kubernetes job's
relabelling finds the pod by its annotations, the rules load and evaluate, and an alarm
reading posted to the service fires HvsHazardAlarm.

Both on free loopback ports, scraped and evaluated every second; Prometheus is stopped by
its pid. The Kubernetes pod discovery is stood in for by file-based discovery carrying the
same __meta_kubernetes_* labels (Debian's build has no Kubernetes discovery)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from src.data.signals import SIGNALS
from tests.servers import GunicornServer, free_port
from tests.test_monitoring import (
    EXPORTED,
    MONITORING,
    ONLY_AFTER_AN_EVENT,
    alert_rules,
    scraped_names,
)

pytestmark = pytest.mark.integration
JOB = "hvs-prediction-api"
POD = "hvs-prediction-api-7d9f8-abcde"


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory) -> Iterator[GunicornServer]:
    env = {
        "BEST_MLFLOW_RUN_ID": trained_store.run_id,
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
    }
    running = GunicornServer(env, tmp_path_factory.mktemp("gunicorn") / "server.log").start()
    running.wait_all_workers_ready()
    yield running
    running.stop()


def rendered_config(folder: Path, service_port: int) -> Path:
    """monitoring/prometheus.yml aimed at the test's server, plus prometheus-kubernetes.yml's
    pod job on file-based targets that look like the pod discovery's, every second."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    (static,) = config["scrape_configs"]
    static["static_configs"] = [{"targets": [f"127.0.0.1:{service_port}"]}]
    (pods,) = yaml.safe_load((MONITORING / "prometheus-kubernetes.yml").read_text())[
        "scrape_configs"
    ]
    del pods["kubernetes_sd_configs"]
    pods["file_sd_configs"] = [{"files": [str(folder / "pods.json")], "refresh_interval": "1s"}]
    meta = "__meta_kubernetes_"
    pod_labels = {
        f"{meta}namespace": "hvs",
        f"{meta}pod_name": POD,
        f"{meta}pod_phase": "Running",
        f"{meta}pod_label_app_kubernetes_io_name": JOB,
        f"{meta}pod_annotation_prometheus_io_scrape": "true",
        f"{meta}pod_annotation_prometheus_io_port": str(service_port),
        f"{meta}pod_annotation_prometheus_io_path": "/metrics",
    }
    decoy = {**pod_labels, f"{meta}pod_name": "redis-0"}
    del decoy[f"{meta}pod_annotation_prometheus_io_scrape"]  # not annotated: not scraped
    # the pod discovery's address is the pod IP with a container port (or none): here a
    # port nothing listens on, which the annotation's port must replace
    (folder / "pods.json").write_text(
        json.dumps(
            [
                {"targets": ["127.0.0.1:9"], "labels": pod_labels},
                {"targets": ["127.0.0.1:9"], "labels": decoy},
            ]
        )
    )
    config["scrape_configs"].append(pods)
    shutil.copy(MONITORING / "alerts.yml", folder / "alerts.yml")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory) -> Iterator[str]:
    executable = shutil.which("prometheus")
    if executable is None:
        pytest.fail("prometheus is missing: apt-get install prometheus (tools/test_deps.sh)")
    folder = tmp_path_factory.mktemp("prometheus")
    config = rendered_config(folder, server.port)
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited: {(folder / 'prometheus.log').read_text()}")
            try:
                if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus never ready: {(folder / 'prometheus.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()  # by its pid: the Popen's own
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    response = requests.get(url + "/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for(url: str, expr: str, ok, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(url, expr)
        if ok(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr} never as expected; last: {result}")
        time.sleep(0.25)


def reading(module_id: str, second: int, **overrides) -> dict:
    body = {"module_id": module_id, "timestamp": 1_767_225_600 + second}
    body.update({signal.name: signal.reference for signal in SIGNALS})
    body.update(overrides)
    return body


def test_prometheus_scrapes_the_service_and_evaluates_the_rules(
    server, prometheus, payload_normal, payload_hazardous
):
    started = time.monotonic()
    timings = {}

    # both jobs' targets are up: the static one, and the pod found by its annotations
    # (its address rewritten to the annotated port, the unannotated decoy dropped)
    up = wait_for(prometheus, f'up{{job="{JOB}"}} == 1', lambda r: len(r) == 2)
    assert {series["metric"].get("pod") for series in up} == {None, POD}
    assert {series["metric"]["instance"] for series in up} == {f"127.0.0.1:{server.port}"}
    targets = requests.get(prometheus + "/api/v1/targets", timeout=5).json()["data"]
    assert len(targets["activeTargets"]) == 2
    timings["up"] = time.monotonic() - started

    ready = wait_for(prometheus, f'hvs_model_ready{{job="{JOB}"}}', lambda r: len(r) == 2)
    assert {series["value"][1] for series in ready} == {"1"}

    # traffic: a healthy module, a hazardous one, a reading with no gas, one with smoke
    headers = {"Content-Type": "application/json"}
    for body in (payload_normal, payload_hazardous):
        assert requests.post(server.url + "/predict", data=body, headers=headers).status_code == 200
    blind = reading("R09-M01", 0, h2_ppm=None, co_ppm=None, voc_ppm=None)
    answer = requests.post(server.url + "/predict", json=blind, timeout=10)
    assert answer.json()["predictions"][0]["level"] == "unknown"
    # the suite's small model warns on the hazardous payload; smoke alarms whatever it says
    smoke = reading("R09-M02", 0, smoke_obscuration_pct_per_m=6.0)
    answer = requests.post(server.url + "/predict", json=smoke, timeout=10)
    assert answer.json()["predictions"][0]["level"] == "alarm"
    service = {
        sample.labels["level"]: sample.value
        for family in text_string_to_metric_families(requests.get(server.url + "/metrics").text)
        for sample in family.samples
        if sample.name == "hvs_predictions_total"
    }
    assert service["alarm"] > 0
    assert service["unknown"] == 1

    static = f'job="{JOB}", pod=""'  # the static target's copy
    wanted = {level: str(int(count)) for level, count in service.items()}
    scored = wait_for(
        prometheus,
        f"sum by (level) (hvs_predictions_total{{{static}}})",
        lambda r: {s["metric"]["level"]: s["value"][1] for s in r} == wanted,
    )
    assert len(scored) == len(wanted)
    timings["predictions"] = time.monotonic() - started

    # an alarm reading on a module: HvsHazardAlarm fires (no `for`), as the rule intends
    firing = wait_for(
        prometheus,
        'ALERTS{alertname="HvsHazardAlarm", alertstate="firing"}',
        lambda r: len(r) == 1,
    )
    assert firing[0]["metric"]["severity"] == "critical"
    timings["alarm firing"] = time.monotonic() - started

    # every rule loaded and evaluated without error; the quiet ones stay inactive
    groups = requests.get(prometheus + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == {rule["alert"] for rule in alert_rules()}
    assert {name: rule["health"] for name, rule in rules.items() if rule["health"] != "ok"} == {}
    assert rules["HvsHazardAlarm"]["state"] == "firing"
    for quiet in ("HvsServiceDown", "HvsInstanceDown", "HvsNotReady", "HvsHistoryStoreDown"):
        assert rules[quiet]["state"] == "inactive", quiet

    # the names Prometheus stored are the service's, as tests/test_monitoring.py lists them
    stored = {
        series["metric"]["__name__"]
        for series in query(prometheus, f"count by (__name__) ({{{static}}})")
    }
    own = {name for name in stored if name == "up" or name.startswith("scrape_")}
    expected = scraped_names(EXPORTED) - scraped_names(dict.fromkeys(ONLY_AFTER_AN_EVENT, ""))
    assert stored - own == expected, "keep EXPORTED in tests/test_monitoring.py in step"
    timings["total"] = time.monotonic() - started
    print("prometheus test timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert timings["total"] < 45
