"""Same answers before any load: a benchmark of a wrong answer is worthless.

Every server that predicts must return, for every reading of every shape it is sent, the
training code's own probabilities within TOLERANCE (MLServer: for the engineered rows it
is given, which are the same readings' features). Our history configurations must also
stream as they claim: a module's fourth reading, posted alone, is scored with the three
before it from the store (and equals the training code on all four); the stateless one
with none. The ceiling must answer `{}`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
import requests

from bench import inprocess, mlserver_peer, servers, workload
from src.services.prediction_service import LoadedModel

logger = logging.getLogger(__name__)

TOLERANCE = 1e-5
STREAM_CHECK_READINGS = 4


def post(url: str, body: bytes, check: bool = False) -> requests.Response:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if check:
        response.raise_for_status()
    return response


def answers(server: servers.Server, shape: workload.Shape) -> np.ndarray:
    """The probabilities a predicting server returns for a (non-streaming) shape."""
    url = server.url + server.predict_path
    if server.body == "v2":
        return mlserver_peer.probabilities(post(url, shape.v2_body, check=True).json())
    if server.body == "peer":
        return np.asarray(post(url, shape.peer_body, check=True).json()["predictions"])
    predictions = post(url, shape.ours_body, check=True).json()["predictions"]
    return np.asarray([p["hazard_probability"] for p in predictions])


def check_predictions(
    server: servers.Server, shapes: list[workload.Shape], references: dict[str, np.ndarray]
) -> float:
    """Largest |difference| from the references over every reading of every shape."""
    worst = 0.0
    for shape in shapes:
        got = np.asarray(answers(server, shape), dtype=np.float64)
        expected = references[shape.name]
        diff = np.inf if got.shape != expected.shape else float(np.abs(got - expected).max())
        worst = max(worst, diff)
    return worst


def check_stream(
    server: servers.Server, model: LoadedModel, template: bytes, history: bool
) -> dict[str, Any]:
    """One module's readings posted one per request, as the load will: the last one's
    history and probability against what the training code gives for all of them."""
    clock = workload.Stream(prefix=f"check-{server.key}-")
    bodies = [clock.render(template, 0, n) for n in range(STREAM_CHECK_READINGS)]
    for body in bodies:
        response = post(server.url + server.predict_path, body, check=True)
    last = response.json()["predictions"][0]
    readings = [reading for body in bodies for reading in _readings(body)]
    expected_readings = STREAM_CHECK_READINGS - 1 if history else 0
    context = orjson.dumps({"readings": readings if history else readings[-1:]})
    expected = float(inprocess.training_probabilities(model, context)[-1])
    return {
        "history_readings": last["history_readings"],
        "history_source": last["history_source"],
        "abs_diff": abs(last["hazard_probability"] - expected),
        "ok": last["history_readings"] == expected_readings
        and last["history_source"] == ("store" if history else "request")
        and abs(last["hazard_probability"] - expected) <= TOLERANCE,
    }


def check_ceiling(server: servers.Server, shapes: list[workload.Shape]) -> bool:
    return all(
        post(server.url + server.predict_path, shape.ours_body, check=True).content == b"{}"
        for shape in shapes
    )


def _readings(body: bytes) -> list[dict]:
    return orjson.loads(body)["readings"]
