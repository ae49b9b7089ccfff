"""The real server, fuzzed from its own OpenAPI document by schemathesis: every endpoint,
1,000+ generated requests (valid and not), no 5xx, every answer as documented."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from src.api.openapi import document
from tests.servers import GunicornServer

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SENT: list[tuple[str, int]] = []
"""Operation and status of every fuzzed request, for the count at the end."""


@pytest.fixture(scope="module")
def fuzzed_server(trained_store, tmp_path_factory) -> Iterator[GunicornServer]:
    server = GunicornServer(
        {
            "BEST_MLFLOW_RUN_ID": trained_store.run_id,
            "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        },
        tmp_path_factory.mktemp("fuzz") / "server.log",
    ).start()
    server.wait_all_workers_ready()
    yield server
    server.stop()


# The document the server serves (checked below), loaded at import: schemathesis' lazy
# fixture loader does not run under pytest 9.
schema = schemathesis.openapi.from_dict(document())


def test_the_server_serves_this_document(fuzzed_server):
    served = requests.get(fuzzed_server.url + "/openapi.json", timeout=10).json()
    assert served == document()


@schema.parametrize()
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_5xx(case, fuzzed_server):
    response = case.call(base_url=fuzzed_server.url, timeout=30)
    SENT.append((f"{case.method} {case.path}", response.status_code))
    case.validate_response(response, checks=CHECKS)


def test_enough_requests_were_sent(fuzzed_server):
    assert len(SENT) >= 1000, len(SENT)
    assert not [sent for sent in SENT if sent[1] >= 500]
    assert {operation for operation, _ in SENT} >= {
        "POST /predict",
        "GET /health",
        "GET /ready",
        "GET /model",
        "GET /metrics",
        "GET /openapi.json",
    }
    accepted = sum(
        1 for operation, status in SENT if operation == "POST /predict" and status == 200
    )
    assert accepted >= 50, accepted  # valid batches reached the model, not only refusals
    assert "Traceback" not in fuzzed_server.log()
    print(f"fuzzed {len(SENT)} requests: {Counter(SENT).most_common()}")
