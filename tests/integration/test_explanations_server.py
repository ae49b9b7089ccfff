"""Explanations over real HTTP: gunicorn on a free loopback port, the relocated MLflow store
written by the real training code, the JSON log as the container writes it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
import requests

from src.data.signals import SIGNALS
from src.features.engineering import FEATURE_GROUP_NAMES
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory) -> Iterator[GunicornServer]:
    env = {
        "BEST_MLFLOW_RUN_ID": trained_store.run_id,
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "HVS_EXPLAIN_TOP": str(len(FEATURE_GROUP_NAMES)),  # every group: the sum is whole
        "HVS_HISTORY": "0",  # each request is scored alone, so repeats answer alike
    }
    log = tmp_path_factory.mktemp("gunicorn-explain") / "server.log"
    running = GunicornServer(env, log, workers=1).start()
    running.wait_all_workers_ready()
    yield running
    running.stop()


def post(server: GunicornServer, body: bytes, request_id: str) -> requests.Response:
    return requests.post(
        server.url + "/predict",
        data=body,
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
        timeout=30,
    )


def log_lines(server: GunicornServer) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_the_contributions_add_up_to_the_served_log_odds(server, payload_hazardous, trained_store):
    """Both runtimes: the hazardous payload (few readings: ONNX) and the test modules'
    last readings (many: XGBoost). base + every group = log_odds exactly as sent, and
    log_odds is the log-odds of the hazard_probability the server answered."""
    frame = trained_store.result.test_frame
    columns = ["module_id", "timestamp_s", "chemistry", *(signal.name for signal in SIGNALS)]
    many = frame.groupby("module_id").tail(40)[columns]
    readings = json.loads(
        many.rename(columns={"timestamp_s": "timestamp"}).to_json(orient="records")
    )
    bodies = [
        json.dumps({**json.loads(payload_hazardous), "explain": True}).encode(),
        json.dumps({"readings": readings, "explain": True}).encode(),
    ]
    largest_sum, largest_served, checked = 0.0, 0.0, 0
    for number, body in enumerate(bodies):
        response = post(server, body, f"additivity-{number}")
        assert response.status_code == 200, response.text[:500]
        for prediction in response.json()["predictions"]:
            explanation = prediction["explanation"]
            parts = explanation["top"]
            assert {part["signal"] for part in parts} == set(FEATURE_GROUP_NAMES)
            total = explanation["base_log_odds"] + sum(part["log_odds"] for part in parts)
            largest_sum = max(largest_sum, abs(total - explanation["log_odds"]))
            probability = prediction["hazard_probability"]
            if 1e-4 < probability < 1 - 1e-4:  # a float32 nearer 0 or 1 loses the log-odds
                served = math.log(probability / (1 - probability))
                largest_served = max(largest_served, abs(served - total))
                checked += 1
    print(
        f"over HTTP: largest |base + parts - log_odds| {largest_sum:.2e}, "
        f"largest |base + parts - logit(hazard_probability)| {largest_served:.2e} "
        f"over {checked} readings"
    )
    assert checked >= 100
    assert largest_sum <= 1e-9
    assert largest_served <= 1e-5


def test_a_flagged_reading_writes_one_json_audit_line_with_the_request_id_and_no_payload(
    server, payload_hazardous
):
    response = post(server, payload_hazardous, "audit-over-http")
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "audit-over-http"
    flagged = [p for p in response.json()["predictions"] if p["level"] in ("warning", "alarm")]
    assert flagged  # the suite's small model warns here (the default one alarms)
    lines = [
        line
        for line in log_lines(server)
        if line.get("event") == "hazard_reading" and line.get("request_id") == "audit-over-http"
    ]
    assert len(lines) == len(flagged)
    for line, prediction in zip(lines, flagged, strict=True):
        assert line["level"] == "WARNING"
        assert line["logger"] == "src.api.audit"
        assert line["module_id"] == prediction["module_id"]
        assert line["hazard_level"] == prediction["level"]
        assert line["hazard_probability"] == prediction["hazard_probability"]
        assert line["reasons"] == prediction["reasons"]
        assert line["top_signals"] == prediction["explanation"]["top"]
        assert line["model_version"] == prediction["model_version"]
        assert not set(line) & {signal.name for signal in SIGNALS}  # no payload


@pytest.mark.parametrize("explain", ['"yes"', "1", "null", "[true]"])
def test_explain_not_a_boolean_gets_a_json_422_naming_it(server, explain):
    reading = {"module_id": "R01-M01", "timestamp": 1_767_225_600}
    reading.update({signal.name: signal.reference for signal in SIGNALS})
    body = f'{{"readings": [{json.dumps(reading)}], "explain": {explain}}}'.encode()
    response = post(server, body, "bad-explain")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "explain" in [detail["field"] for detail in error["details"]]
    assert "Traceback" not in response.text
    assert "R01-M01" not in response.text  # the payload is not echoed
