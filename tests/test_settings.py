"""Settings: every knob in one typed object; a bad value is one line naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from src.settings import Settings, SettingsError, load_settings
from tests.conftest import PROJECT_ROOT

RUN = "a" * 32


def test_defaults_and_case_insensitive_choices():
    settings = Settings(
        BEST_MLFLOW_RUN_ID=RUN, HVS_LOG_LEVEL="debug", GUNICORN_WORKER_CLASS="GTHREAD"
    )
    assert settings.log_level == "DEBUG"
    assert settings.worker_class == "gthread"
    assert settings.threads_per_worker == 4
    assert Settings(BEST_MLFLOW_RUN_ID=RUN).threads_per_worker == 1
    assert Settings(BEST_MLFLOW_RUN_ID=RUN, GUNICORN_ACCESS_LOG="-").access_log is True


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"WEB_CONCURRENCY": "two"},
            "WEB_CONCURRENCY='two' is not valid: Input should be a valid integer",
        ),
        (
            {"HVS_LOG_LEVEL": "loud"},
            "HVS_LOG_LEVEL='LOUD' is not valid: Input should be 'DEBUG', 'INFO', 'WARNING' or "
            "'ERROR'",
        ),
        (
            {"GUNICORN_WORKER_CLASS": "gevent"},
            "GUNICORN_WORKER_CLASS='gevent' is not valid: Input should be 'sync' or 'gthread'",
        ),
        (
            {"PORT": "70000"},
            "PORT='70000' is not valid: Input should be less than or equal to 65535",
        ),
        (
            {"HVS_DRAIN_SECONDS": "-1"},
            "HVS_DRAIN_SECONDS='-1' is not valid: Input should be greater than or equal to 0",
        ),
        (
            {"HVS_EXPLAIN_TOP": "-1"},
            "HVS_EXPLAIN_TOP='-1' is not valid: Input should be greater than or equal to 0",
        ),
        (
            {"BEST_MLFLOW_RUN_ID": "RUN_ID_NOT_SET"},
            "BEST_MLFLOW_RUN_ID is not set: pass the id of a training run",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_accepts(overrides, expected):
    with pytest.raises(SettingsError) as raised:
        load_settings(**{"BEST_MLFLOW_RUN_ID": RUN, **overrides})
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_environment_is_read_by_load_settings(monkeypatch):
    monkeypatch.setenv("BEST_MLFLOW_RUN_ID", RUN)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert load_settings().workers == 3
    monkeypatch.delenv("BEST_MLFLOW_RUN_ID")
    with pytest.raises(SettingsError, match="BEST_MLFLOW_RUN_ID is not set"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"), [("WEB_CONCURRENCY", "two"), ("HVS_LOG_LEVEL", "loud")]
)
def test_the_server_refuses_a_bad_value_with_one_line_and_status_3(variable, value):
    """gunicorn itself would crash on WEB_CONCURRENCY=two with a traceback: the server
    reads the settings before gunicorn is imported."""
    completed = subprocess.run(
        [sys.executable, "-m", "src.api.server"],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "BEST_MLFLOW_RUN_ID": RUN, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 3
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "ERROR"
    assert record["message"].startswith(f"cannot serve: {variable}=")
