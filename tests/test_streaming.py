"""Posting one reading per request, as a BMS does, gives what the whole series gives: the
training code's own probabilities, and the answer of one request holding every reading."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from src.api import create_app
from src.data.signals import SIGNALS
from src.features.engineering import HISTORY_LOOKBACK_S


def as_reading(row) -> dict:
    reading = {
        "module_id": row.module_id,
        "timestamp": datetime.fromtimestamp(row.timestamp_s, tz=UTC).isoformat(),
    }
    for signal in SIGNALS:
        value = getattr(row, signal.name)
        reading[signal.name] = None if np.isnan(value) else float(value)
    reading["chemistry"] = row.chemistry  # as training saw it for the test site
    return reading


@pytest.fixture(params=["sqlite", "redis"])
def stream_settings(request, settings, redis_server, tmp_path):
    if request.param == "sqlite":
        return settings.model_copy(update={"history_path": str(tmp_path / "h.sqlite3")})
    return settings.model_copy(
        update={"history_url": redis_server.url, "history_prefix": f"stream-{tmp_path.name}"}
    )


def faulty_series(trained_store, length: int):
    frame = trained_store.result.test_frame
    module = frame.loc[frame["fault_type"] != "none", "module_id"].iloc[0]
    rows = frame[frame["module_id"] == module]
    return rows.tail(length)  # the minutes before onset, where the warning matters


def test_one_reading_per_request_equals_one_request_and_training(stream_settings, trained_store):
    series = faulty_series(trained_store, 300)
    readings = [as_reading(row) for row in series.itertuples(index=False)]
    streamed_app = create_app(stream_settings)
    streamed = []
    with streamed_app.test_client() as client:
        for reading in readings:
            answer = client.post("/predict", json=reading).get_json()["predictions"][0]
            streamed.append(answer)
    with create_app(stream_settings.model_copy(update={"history": False})).test_client() as c:
        batched = c.post("/predict", json={"readings": readings}).get_json()["predictions"]
    streamed_p = np.array([p["hazard_probability"] for p in streamed])
    batched_p = np.array([p["hazard_probability"] for p in batched])
    np.testing.assert_allclose(streamed_p, batched_p, rtol=0, atol=1e-6)
    assert {p["history_source"] for p in streamed} == {"store"}
    assert {p["history_source"] for p in batched} == {"request"}
    assert [p["history_s"] for p in streamed] == [p["history_s"] for p in batched]
    assert [p["history_readings"] for p in streamed] == [p["history_readings"] for p in batched]
    assert streamed[0]["history_readings"] == 0  # the stream's first reading was alone
    assert streamed[-1]["history_s"] >= 1400.0  # later ones see their past (150 readings)
    # The series is the test module's last readings, not its start, and training saw the
    # earlier ones too: readings whose whole lookback lies inside the series must get
    # exactly what training computed for them.
    times = series["timestamp_s"].to_numpy()
    inside = times - HISTORY_LOOKBACK_S > times[0]
    assert inside.sum() > 80
    expected = trained_store.result.test_probabilities[series.index.to_numpy()]
    np.testing.assert_allclose(streamed_p[inside], expected[inside], rtol=0, atol=1e-6)


def test_a_late_reading_and_a_retry_in_the_stream(stream_settings, trained_store):
    series = faulty_series(trained_store, 40)
    readings = [as_reading(row) for row in series.itertuples(index=False)]
    with create_app(stream_settings).test_client() as client:
        post = lambda r: client.post("/predict", json=r).get_json()["predictions"][0]  # noqa: E731
        order = list(range(40))
        order[20], order[21] = order[21], order[20]  # one reading arrives late
        answers = {index: post(readings[index]) for index in order}
        again = post(readings[39])  # a retried request
    with create_app(stream_settings.model_copy(update={"history": False})).test_client() as c:
        batched = c.post("/predict", json={"readings": readings}).get_json()["predictions"]
    # the late one is placed where it belongs and uses only readings before it; the one
    # that overtook it had one reading less behind it, and says so
    assert answers[20]["hazard_probability"] == pytest.approx(
        batched[20]["hazard_probability"], abs=1e-6
    )
    assert answers[21]["history_readings"] == batched[21]["history_readings"] - 1
    for index in range(22, 40):
        assert answers[index]["hazard_probability"] == pytest.approx(
            batched[index]["hazard_probability"], abs=1e-6
        )
    assert again == answers[39]
