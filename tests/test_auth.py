"""Optional bearer tokens: /predict and /model with one set, /metrics with another."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from src.api import create_app
from src.settings import SettingsError
from tests.test_api import assert_error, reading


@pytest.fixture
def guarded(settings, tmp_path):
    secret = tmp_path / "metrics-tokens"
    secret.write_text("scrape-token-1\n\nscrape-token-2\n")
    app = create_app(
        settings.model_copy(
            update={
                "predict_tokens": SecretStr("gateway-token,next-gateway-token"),
                "metrics_tokens_file": str(secret),
            }
        )
    )
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/predict", "/model"])
def test_predict_and_model_need_the_gateway_token(guarded, path):
    call = (
        (lambda **kw: guarded.post(path, json=reading(), **kw))
        if path == "/predict"
        else (lambda **kw: guarded.get(path, **kw))
    )
    for headers in ({}, bearer("wrong"), bearer("scrape-token-1"), {"Authorization": "Basic x"}):
        response = call(headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert call(headers=bearer("gateway-token")).status_code == 200
    assert call(headers=bearer("next-gateway-token")).status_code == 200  # rotation


def test_metrics_need_the_scrape_token_and_probes_stay_open(guarded):
    assert_error(guarded.get("/metrics"), 401, "unauthorized")
    assert_error(guarded.get("/metrics", headers=bearer("gateway-token")), 401, "unauthorized")
    assert guarded.get("/metrics", headers=bearer("scrape-token-2")).status_code == 200
    for path in ("/health", "/ready", "/openapi.json"):
        assert guarded.get(path).status_code == 200


def test_off_by_default_and_said_so(settings, caplog):
    client = create_app(settings).test_client()
    assert client.post("/predict", json=reading()).status_code == 200
    assert any("no authentication on predict" in r.getMessage() for r in caplog.records)


def test_an_unreadable_token_file_is_a_clear_settings_error(settings, tmp_path):
    missing = settings.model_copy(update={"predict_tokens_file": str(tmp_path / "nope")})
    with pytest.raises(SettingsError, match=r"HVS_PREDICT_TOKENS_FILE=.*cannot be read"):
        create_app(missing)
