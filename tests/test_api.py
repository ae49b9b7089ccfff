"""The Flask app in-process: every route, every class of bad input, one error shape."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from src.api import create_app
from src.api.extension import get_service
from src.api.schemas import ErrorResponse, PredictResponse
from src.data.signals import SIGNALS
from src.features.engineering import FEATURE_NAMES
from src.settings import Settings


def reading(**overrides):
    body = {"module_id": "R01-M01", "timestamp": "2026-01-01T00:00:00Z"}
    body.update({signal.name: signal.reference for signal in SIGNALS})
    body.update(overrides)
    return body


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    ErrorResponse.model_validate(response.get_json())  # the one documented error shape
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        fields = [detail["field"] for detail in error["details"]]
        assert field in fields, fields
    return error


def test_prediction_fields_and_order(client, trained_store):
    readings = [
        reading(module_id="B", timestamp="2026-01-01T00:00:10Z"),
        reading(module_id="A", timestamp="2026-01-01T00:00:00+00:00"),
        reading(module_id="B", timestamp=1767225600),
    ]
    response = client.post("/predict", json={"readings": readings})
    assert response.status_code == 200
    body = response.get_json()
    PredictResponse.model_validate(body)  # the documented response schema
    assert body["model_version"] == trained_store.run_id
    assert [p["module_id"] for p in body["predictions"]] == ["B", "A", "B"]
    assert body["predictions"][0]["timestamp"] == "2026-01-01T00:00:10Z"
    for prediction in body["predictions"]:
        assert 0.0 <= prediction["hazard_probability"] <= 1.0
        assert prediction["hazardous"] == (prediction["level"] == "alarm")
        if prediction["hazard_probability"] >= body["thresholds"]["alarm"]:
            assert prediction["level"] == "alarm"
            assert "model:alarm" in prediction["reasons"]
        assert prediction["model_version"] == trained_store.run_id


def test_single_reading_object_is_accepted(client):
    response = client.post("/predict", json=reading())
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 1


def test_null_signal_is_scored_as_missing(client):
    response = client.post("/predict", json={"readings": [reading(h2_ppm=None)]})
    assert response.status_code == 200


def test_service_reproduces_the_training_codes_probabilities(client, trained_store):
    """JSON in, probabilities out, equal to what training computed for the same readings."""
    frame = trained_store.result.test_frame
    module = frame["module_id"].iloc[0]
    rows = frame[frame["module_id"] == module].head(120)
    readings = []
    for row in rows.itertuples(index=False):
        item = {
            "module_id": row.module_id,
            "timestamp": datetime.fromtimestamp(row.timestamp_s, tz=UTC).isoformat(),
        }
        for signal in SIGNALS:
            value = getattr(row, signal.name)
            item[signal.name] = None if np.isnan(value) else float(value)
        item["chemistry"] = row.chemistry
        readings.append(item)
    response = client.post("/predict", json={"readings": readings})
    assert response.status_code == 200
    served = np.array([p["hazard_probability"] for p in response.get_json()["predictions"]])
    # Training saw the whole series; the request holds its first 120 readings, which is
    # all the history those readings have, so the features are the same.
    expected = trained_store.result.test_probabilities[rows.index.to_numpy()]
    np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"readings": [reading(h2_ppm="high")]}, "readings[0].h2_ppm", "valid number"),
        ({"readings": [reading(h2_ppm=True)]}, "readings[0].h2_ppm", "valid number"),
        ({"readings": [reading(h2_ppm=-1)]}, "readings[0].h2_ppm", "greater than or equal"),
        (
            {"readings": [reading(cell_temp_max_c=5000)]},
            "readings[0].cell_temp_max_c",
            "less than or equal",
        ),
        (
            {"readings": [{k: v for k, v in reading().items() if k != "co_ppm"}]},
            "readings[0].co_ppm",
            "Field required",
        ),
        ({"readings": [reading(module_id="")]}, "readings[0].module_id", "at least 1"),
        ({"readings": [reading(timestamp="yesterday")]}, "readings[0].timestamp", "datetime"),
        ({"readings": [reading(h2ppm=3)]}, "readings[0]", "1 unknown field(s)"),
        ({"readings": []}, "readings", "at least 1"),
        ({"readings": "all of them"}, "readings", "valid list"),
    ],
)
def test_invalid_readings_name_the_field_and_problem(client, body, field, problem):
    error = assert_error(client.post("/predict", json=body), 422, "invalid_input", field)
    problems = {d["field"]: d["problem"] for d in error["details"]}
    assert problem in problems[field]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_not_json(client, literal):
    text = json.dumps({"readings": [reading()]}).replace('"h2_ppm": 1.0', f'"h2_ppm": {literal}')
    assert literal in text
    response = client.post("/predict", data=text, content_type="application/json")
    assert_error(response, 400, "invalid_json", "(body)")


@pytest.mark.parametrize("body", [b"", b"not json", b'{"readings": [', b"\xff\xfe"])
def test_non_json_bodies_get_400(client, body):
    assert_error(
        client.post("/predict", data=body, content_type="application/json"),
        400,
        "invalid_json",
        "(body)",
    )


@pytest.mark.parametrize("body", ["[1, 2]", "42", '"text"', "null"])
def test_json_that_is_not_an_object_gets_422(client, body):
    assert_error(
        client.post("/predict", data=body, content_type="application/json"),
        422,
        "invalid_input",
        "(body)",
    )


def test_batch_and_body_limits(settings):
    limited = settings.model_copy(update={"max_batch_readings": 3, "max_body_bytes": 4096})
    client = create_app(limited, load="now").test_client()
    error = assert_error(
        client.post("/predict", json={"readings": [reading()] * 4}),
        422,
        "invalid_input",
        "readings",
    )
    assert "at most 3" in error["message"]
    big = json.dumps({"readings": [reading()] * 3, "padding": "x" * 5000})
    assert_error(
        client.post("/predict", data=big, content_type="application/json"),
        413,
        "request_entity_too_large",
    )


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(client.get("/nope"), 404, "not_found")
    response = client.get("/predict")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_health_ready_and_model(client, trained_store):
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.get_json()["model_version"] == trained_store.run_id
    info = client.get("/model").get_json()
    assert info["model_version"] == trained_store.run_id
    assert info["feature_names"] == list(FEATURE_NAMES)
    assert info["thresholds"]["alarm"] == pytest.approx(trained_store.result.thresholds.alarm)
    assert info["thresholds"]["warning"] == pytest.approx(trained_store.result.thresholds.warning)
    assert info["training_metrics"]["test_pr_auc"] > 0.5


def test_readiness_before_and_after_load(settings):
    app = create_app(settings, load="never")
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503, "model_not_ready")
    assert_error(client.post("/predict", json=reading()), 503, "model_not_ready")
    get_service(app).load()
    assert client.get("/ready").status_code == 200
    assert client.post("/predict", json=reading()).status_code == 200


def test_a_run_that_cannot_be_loaded_keeps_ready_at_503(trained_store):
    missing = "0" * 32
    settings = Settings(BEST_MLFLOW_RUN_ID=missing, MLFLOW_TRACKING_URI=trained_store.tracking_uri)
    app = create_app(settings, load="now")
    client = app.test_client()
    try:
        assert client.get("/health").status_code == 200
        error = assert_error(client.get("/ready"), 503, "model_unavailable")
        # the log says which run and where (above); a client learns no server path
        assert "log says why" in error["message"]
        assert missing not in error["message"]
        assert str(trained_store.mlruns) not in error["message"]
        assert_error(client.post("/predict", json=reading()), 503, "model_unavailable")
    finally:
        get_service(app).close()  # its retries would go on for the rest of the session


def test_a_model_that_could_not_load_loads_once_the_store_is_back(trained_store, tmp_path):
    store = tmp_path / "mounted" / "mlruns"
    settings = Settings(BEST_MLFLOW_RUN_ID=trained_store.run_id, MLFLOW_TRACKING_URI=store.as_uri())
    app = create_app(settings, load="now")  # the store is not there yet
    client = app.test_client()
    try:
        assert_error(client.get("/ready"), 503, "model_unavailable")
        shutil.copytree(trained_store.mlruns, store)
        deadline = time.monotonic() + 20
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.2)
        assert client.post("/predict", json=reading()).status_code == 200
    finally:
        get_service(app).close()


def as_columns(readings: list[dict]) -> dict:
    return {"columns": {key: [r[key] for r in readings] for key in readings[0]}}


def test_columns_score_exactly_as_rows(client, payload_hazardous):
    readings = json.loads(payload_hazardous)["readings"]
    rows = client.post("/predict", json={"readings": readings}).get_json()
    columns = client.post("/predict", json=as_columns(readings)).get_json()
    assert columns == rows


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda c: c["h2_ppm"].__setitem__(1, -2), "columns.h2_ppm[1]", "greater than"),
        (lambda c: c["co_ppm"].pop(), "columns.co_ppm", "module_id has 3"),
        (lambda c: c.pop("voc_ppm"), "columns.voc_ppm", "Field required"),
        (lambda c: c.__setitem__("module_id", []), "columns.module_id", "at least 1"),
    ],
)
def test_invalid_columns_name_the_column_and_index(client, mutate, field, problem):
    body = as_columns([reading(), reading(timestamp=10), reading(timestamp=20)])
    mutate(body["columns"])
    error = assert_error(client.post("/predict", json=body), 422, "invalid_input", field)
    assert problem in {d["field"]: d["problem"] for d in error["details"]}[field]


def test_column_batches_respect_the_batch_limit(settings):
    limited = settings.model_copy(update={"max_batch_readings": 2})
    client = create_app(limited, load="now").test_client()
    body = as_columns([reading(), reading(timestamp=10), reading(timestamp=20)])
    assert_error(client.post("/predict", json=body), 422, "invalid_input", "columns.module_id")


def test_every_timestamp_form_means_the_same_instant():
    from src.api.schemas import parse_predict_request

    same_instant = [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00",  # no offset: UTC
        1767225600,
        1767225600.0,
    ]
    readings = [
        reading(module_id=f"R01-M{i:02d}", timestamp=moment)
        for i, moment in enumerate(same_instant)
    ]
    for body in ({"readings": readings}, as_columns(readings)):
        batch = parse_predict_request(body, max_readings=10)
        assert batch.timestamps_s.tolist() == [1767225600.0] * len(same_instant)
        assert list(batch.timestamps_sent) == same_instant  # echoed as sent


def test_an_unexpected_error_is_a_json_500_logged_and_counted(settings, caplog):
    from prometheus_client.parser import text_string_to_metric_families

    app = create_app(settings, load="never")

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_url_rule("/broken", "broken", broken)  # a route with a bug, for this test only
    client = app.test_client()
    error = assert_error(client.get("/broken"), 500, "internal_error")
    assert "a bug" not in error["message"]  # the client gets no internals
    assert any("a bug" in str(record.exc_info) for record in caplog.records)
    samples = {
        (sample.name, sample.labels.get("status"))
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
        if sample.value > 0
    }
    assert ("flask_http_request_exceptions_total", "500") in samples
    assert ("flask_http_request_total", "500") in samples


def test_a_reading_from_the_future_or_twice_with_other_values_is_refused(client):
    now = datetime.now(UTC).timestamp()
    error = assert_error(
        client.post("/predict", json={"readings": [reading(), reading(timestamp=now + 3600)]}),
        422,
        "invalid_input",
        "readings[1].timestamp",
    )
    assert "check the gateway's clock" in error["message"]
    assert client.post("/predict", json=reading(timestamp=now + 60)).status_code == 200
    twice = as_columns([reading(), reading(h2_ppm=3.0), reading(timestamp=5)])
    error = assert_error(client.post("/predict", json=twice), 422, "invalid_input")
    assert error["details"][0] == {
        "field": "columns.timestamp[1]",
        "problem": "reading 0 has this module and timestamp, with other values",
    }


def test_a_reading_sent_twice_in_a_request_is_answered_twice_and_counted_once(client):
    body = {"readings": [reading(), reading(timestamp="2026-01-01T00:00:10Z"), reading()]}
    predictions = client.post("/predict", json=body).get_json()["predictions"]
    assert len(predictions) == 3
    assert predictions[2] == predictions[0]
    assert predictions[1]["history_readings"] == 1  # the retry is not a second reading


@pytest.mark.parametrize(
    "body",
    [
        # 15 MiB of unknown keys in one reading
        {**reading(), **{f"k{i:07d}" + "x" * 200: 1 for i in range(70_000)}},
        # unknown keys named to hurt if echoed
        {"readings": [reading(**{"<script>alert(1)</script>": 1, "x" * 100_000: 2})]},
        # thousands of empty readings (16 problems each)
        {"readings": [{}] * 7_500},
        # thousands of readings with every value of the wrong type
        {"readings": [dict.fromkeys(reading(), "x")] * 2_000},
        # unknown top-level keys
        {"readings": [reading()], **{f"junk{i}": i for i in range(10_000)}},
        {"columns": {**{k: [v] for k, v in reading().items()}, "<b>": [1]}},
    ],
)
def test_a_hostile_body_gets_a_small_422_that_echoes_no_client_key(client, body):
    text = json.dumps(body)
    response = client.post("/predict", data=text, content_type="application/json")
    error = assert_error(response, 422, "invalid_input")
    assert len(response.data) < 4_000, len(response.data)
    assert len(error["details"]) <= 20
    for detail in error["details"]:
        assert not any(bad in detail["field"] for bad in ("<", "k0", "xxx", "junk")), detail
    assert "<script>" not in response.get_data(as_text=True)


def test_an_error_says_how_many_problems_there_were(client):
    error = assert_error(
        client.post("/predict", json={"readings": [{}] * 100}), 422, "invalid_input"
    )
    assert error["message"] == "1600 problem(s) in the request body; the first 20 are listed"
    assert error["details"][0] == {"field": "readings[0].module_id", "problem": "Field required"}


def test_request_ids_are_kept_or_made_and_in_every_log_line(client, caplog):
    kept = client.post("/predict", json={"readings": []}, headers={"X-Request-ID": "gw-42:7"})
    assert kept.headers["X-Request-ID"] == "gw-42:7"
    made = client.get("/health", headers={"X-Request-ID": "<script>" + "x" * 300})
    assert len(made.headers["X-Request-ID"]) == 32  # replaced, not echoed
    refused = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert refused[-1].request_id == "gw-42:7"
    assert refused[-1].code == "invalid_input"
    assert refused[-1].problems == 1
    assert not hasattr(refused[-1], "body")


def test_a_refused_request_is_logged_once_with_its_problem_count_not_its_payload(client, caplog):
    client.post("/predict", json={"readings": [{"secret-key": "secret-value"}] * 50})
    lines = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert len(lines) == 1
    assert lines[0].problems == 50 * 17  # 16 missing fields and 1 unknown field per reading
    assert "secret" not in str(lines[0].__dict__)


def audit_lines(caplog) -> list:
    return [r for r in caplog.records if r.name == "src.api.audit"]


def test_explain_true_explains_every_reading_and_otherwise_only_warnings_and_alarms(client):
    readings = [reading(), reading(timestamp="2026-01-01T00:00:10Z")]
    for body, explained in (
        ({"readings": readings, "explain": True}, True),
        ({"readings": readings, "explain": False}, False),
        ({"readings": readings}, False),
        ({**as_columns(readings), "explain": True}, True),
    ):
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.get_json()
        PredictResponse.model_validate(response.get_json())
        for prediction in response.get_json()["predictions"]:
            flagged = prediction["level"] in ("warning", "alarm")
            assert (prediction["explanation"] is not None) == (explained or flagged)


def test_flagged_readings_are_explained_and_logged_without_being_asked(
    client, payload_hazardous, caplog
):
    response = client.post(
        "/predict",
        data=payload_hazardous,
        content_type="application/json",
        headers={"X-Request-ID": "audit-1"},
    )
    predictions = response.get_json()["predictions"]
    flagged = [p for p in predictions if p["level"] in ("warning", "alarm")]
    assert flagged  # the suite's small model warns here (the default one alarms)
    for prediction in predictions:
        explanation = prediction["explanation"]
        assert (explanation is not None) == (prediction in flagged)
        if explanation is not None:
            assert len(explanation["top"]) == 3
            odds = explanation["log_odds"]
            assert 1 / (1 + np.exp(-odds)) == pytest.approx(prediction["hazard_probability"])
    lines = audit_lines(caplog)
    assert len(lines) == len(flagged)  # one line per reading at warning or alarm
    for line, prediction in zip(lines, flagged, strict=True):
        assert line.levelname == "WARNING"
        assert line.getMessage().startswith(
            f"reading at {prediction['level']}: module {prediction['module_id']}"
        )
        assert line.module_id == prediction["module_id"]
        assert line.reading_timestamp == prediction["timestamp"]  # the payload's are ISO, ms
        assert line.hazard_probability == prediction["hazard_probability"]
        assert line.hazard_level == prediction["level"]
        assert line.reasons == prediction["reasons"]
        assert line.top_signals == prediction["explanation"]["top"]
        assert line.model_version == prediction["model_version"]
        assert line.request_id == "audit-1"
        assert not set(line.__dict__) & {signal.name for signal in SIGNALS}  # no payload


def test_a_request_without_warnings_or_alarms_writes_no_audit_line(client, payload_normal, caplog):
    body = {**json.loads(payload_normal), "explain": True}
    predictions = client.post("/predict", json=body).get_json()["predictions"]
    assert {p["level"] for p in predictions} == {"normal"}
    assert all(p["explanation"] is not None for p in predictions)  # asked for
    assert audit_lines(caplog) == []


def test_explanations_over_json_add_up_to_the_log_odds(settings, payload_hazardous):
    from src.features.engineering import FEATURE_GROUP_NAMES

    every_group = settings.model_copy(update={"explain_top": len(FEATURE_GROUP_NAMES)})
    client = create_app(every_group, load="now").test_client()
    body = {**json.loads(payload_hazardous), "explain": True}
    largest = 0.0
    for prediction in client.post("/predict", json=body).get_json()["predictions"]:
        explanation = prediction["explanation"]
        assert {part["signal"] for part in explanation["top"]} == set(FEATURE_GROUP_NAMES)
        total = explanation["base_log_odds"] + sum(p["log_odds"] for p in explanation["top"])
        assert total == pytest.approx(explanation["log_odds"], abs=1e-9)
        probability = prediction["hazard_probability"]
        largest = max(largest, abs(np.log(probability / (1 - probability)) - total))
    print(f"largest |base + sum(signals) - logit(hazard_probability)| over JSON: {largest:.2e}")
    assert largest <= 1e-5


def test_explain_top_zero_turns_explanations_off(settings, payload_hazardous, caplog):
    off = create_app(settings.model_copy(update={"explain_top": 0}), load="now").test_client()
    body = {**json.loads(payload_hazardous), "explain": True}
    predictions = off.post("/predict", json=body).get_json()["predictions"]
    assert [p["explanation"] for p in predictions] == [None] * len(predictions)
    lines = audit_lines(caplog)
    assert lines  # the trail stays, without top signals
    assert all(line.top_signals == [] for line in lines)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"readings": [reading()], "explain": "yes"}, "explain"),
        ({"readings": [reading()], "explain": 1}, "explain"),
        ({**reading(), "explain": True}, "readings[0]"),  # one reading alone: no options
    ],
)
def test_explain_is_a_boolean_beside_readings_or_columns(client, body, field):
    assert_error(client.post("/predict", json=body), 422, "invalid_input", field)


def test_the_explain_query_flag_explains_a_lone_reading(client, payload_normal):
    lone = json.loads(payload_normal)["readings"][0]  # a healthy module: normal
    for query, explained in (("?explain=true", True), ("?explain=false", False), ("", False)):
        response = client.post(f"/predict{query}", json=lone)
        assert response.status_code == 200, response.get_json()
        prediction = response.get_json()["predictions"][0]
        assert prediction["level"] == "normal"
        assert (prediction["explanation"] is not None) == explained
    either = client.post("/predict?explain=false", json={"readings": [lone], "explain": True})
    assert either.get_json()["predictions"][0]["explanation"] is not None


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", "", "<script>"])
def test_an_explain_query_other_than_true_or_false_is_a_422_naming_it(client, value):
    response = client.post(f"/predict?explain={value}", json=reading())
    assert_error(response, 422, "invalid_input", "explain (query)")
    assert not value or value not in response.get_data(as_text=True)  # not echoed
