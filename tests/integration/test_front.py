"""The front for real: `python -m src.api.front` with real nginx before real gunicorn.

Slow and idle clients (bench/slow_clients.py's attackers) must not delay a normal
/predict; nginx's own errors are JSON in the service's shape; SIGTERM under load drains
and drops nothing; a dead child stops the rest; start-up failures stay one line, exit 3;
HVS_FRONT=none is gunicorn alone, as before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from bench.slow_clients import Attackers, client_hello, probe, probe_every
from src.api.front import find_nginx, relay_nginx_log, render_nginx_conf
from src.settings import Settings
from tests.conftest import PROJECT_ROOT
from tests.servers import FrontServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_nginx() is None, reason="needs nginx (tools/test_deps.sh installs it)"),
]

CLIENT_TIMEOUT_S = 3.0
MAX_BODY_BYTES = 1024 * 1024
ATTACK_SECONDS = 10.0
JSON = {"Content-Type": "application/json"}


def store_env(trained_store) -> dict[str, str]:
    return {
        "BEST_MLFLOW_RUN_ID": trained_store.run_id,
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
    }


def start_front(trained_store, tmp_path_factory, name: str, **env: str) -> FrontServer:
    log = tmp_path_factory.mktemp(name) / "front.log"
    server = FrontServer({**store_env(trained_store), **env}, log).start()
    try:
        server.wait_all_workers_ready()
    except Exception:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def front(trained_store, tmp_path_factory) -> Iterator[FrontServer]:
    """The default choice (auto: nginx is there), a short client timeout, a 1 MiB limit."""
    server = start_front(
        trained_store,
        tmp_path_factory,
        "front",
        HVS_FRONT="auto",
        HVS_CLIENT_TIMEOUT_S=str(CLIENT_TIMEOUT_S),
        HVS_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
    )
    yield server
    server.stop()


def exchange(port: int, data: bytes, timeout_s: float = 5.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one response: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"closed without a response; got {received!r}"
            received += chunk
        head, body = received.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split(" ", 2)[1]), headers, body


# ---------------------------------------------------------------------------- no server


def test_the_rendered_config_is_valid_nginx(tmp_path):
    nginx = find_nginx()
    for overrides in (
        {},
        {"HOST": "::", "HVS_MAX_CONNECTIONS_PER_CLIENT": "10", "HVS_LOG_LEVEL": "debug"},
    ):
        settings = Settings(BEST_MLFLOW_RUN_ID="a" * 32, **overrides)
        text = render_nginx_conf(settings, tmp_path, tmp_path / "gunicorn.sock")
        assert "@" not in text.replace("$binary_remote_addr", "")
        (tmp_path / "nginx.conf").write_text(text)
        checked = subprocess.run(
            [
                nginx,
                "-t",
                "-q",
                "-e",
                "stderr",
                "-p",
                f"{tmp_path}/",
                "-c",
                tmp_path / "nginx.conf",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stderr
    assert "limit_conn per_client 10;" in text
    assert "listen [::]:5001" in text


def test_nginx_lines_become_records_with_their_level(caplog):
    import io

    lines = (
        b"2026/12/01 10:00:00 [error] 12#12: *7 connect() to unix:/tmp/x failed (111)\n"
        b"2026/12/01 10:00:00 [error] 12#12: *8 client intended to send too large body: 9 bytes\n"
        b"nginx: [emerg] bind() to 0.0.0.0:5001 failed (98: Address already in use)\n"
        b"something else\n"
    )
    with caplog.at_level("DEBUG", logger="nginx"):
        relay_nginx_log(io.BytesIO(lines))
    got = [(r.levelname, r.getMessage()[:20]) for r in caplog.records]
    assert got == [
        ("ERROR", "connect() to unix:/t"),
        ("INFO", "client intended to s"),  # the client's doing, not the server's
        ("CRITICAL", "bind() to 0.0.0.0:50"),
        ("WARNING", "something else"),
    ]
    assert caplog.records[0].connection == 7
    assert caplog.records[0].nginx_pid == 12


def run_front(env: dict[str, str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "src.api.front"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HOST": "127.0.0.1", "PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_a_bad_setting_exits_3_with_one_line():
    completed = run_front({"BEST_MLFLOW_RUN_ID": "a" * 32, "HVS_FRONT": "apache"})
    assert completed.returncode == 3
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout + completed.stderr
    assert "HVS_FRONT='apache' is not valid" in json.loads(lines[0])["message"]
    assert completed.stderr == ""


def test_a_wrong_run_id_exits_3_with_gunicorns_one_line(trained_store, tmp_path):
    wrong = "0123456789abcdef0123456789abcdef"
    completed = run_front(
        {
            **store_env(trained_store),
            "BEST_MLFLOW_RUN_ID": wrong,
            "HVS_FRONT": "nginx",
            "TMPDIR": str(tmp_path),
        }
    )
    assert completed.returncode == 3, completed.stdout + completed.stderr
    records = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    errors = [r["message"] for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert len(errors) == 1, errors
    assert wrong in errors[0]
    assert not any(r["logger"] == "nginx" for r in records)  # nginx never started
    assert list(tmp_path.glob("hvs-front-*")) == []  # the run folder is gone


# ---------------------------------------------------------------------------- slow clients


def test_auto_puts_nginx_in_front_and_the_apps_answers_pass_through(front, payload_normal):
    assert set(front.children()) == {"gunicorn", "nginx"}
    response = requests.post(front.url + "/predict", data=payload_normal, headers=JSON, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Server"] == "nginx"
    assert response.headers["Connection"] == "close"
    assert response.headers["X-Request-ID"]
    not_json = requests.post(front.url + "/predict", data=b"{not", headers=JSON, timeout=5)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    missing = requests.get(front.url + "/made-up", timeout=5)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    "kinds",
    [
        {"idle": 200},
        {"slow_headers": 200},
        {"slow_body": 200},
        {"idle": 65, "slow_headers": 65, "slow_body": 65, "tls": 5},
    ],
    ids=["idle", "slow-headers", "slow-body", "mixed"],
)
def test_200_held_connections_do_not_delay_predict(front, kinds):
    # A dropped attacker comes back at once, so 200 stay open all along.
    attackers = Attackers("127.0.0.1", front.port, kinds, reconnect=True).start()
    try:
        time.sleep(1.0)
        during = probe_every("127.0.0.1", front.port, 0.5, ATTACK_SECONDS, timeout_s=5.0)
        held = attackers.open_now()
    finally:
        attackers.stop()
    after = [probe("127.0.0.1", front.port, timeout_s=5.0) for _ in range(3)]

    assert held >= 180, f"only {held} attacker connections open at the end"
    assert [r["status"] for r in during] == [200] * len(during), during
    assert len(during) >= 19
    assert max(r["latency_s"] for r in during) < 1.0, during
    assert [status for status, _ in after] == [200, 200, 200]
    assert max(latency for _, latency in after) < 0.5, after
    stats = attackers.stats
    # nginx ends idle connections and slow headers after HVS_CLIENT_TIMEOUT_S, whole
    for kind in ("idle", "slow_headers"):
        if kind in stats:
            held_s = stats[kind].summary()["held_s"]
            assert held_s is not None, f"{kind}: none dropped"
            assert CLIENT_TIMEOUT_S - 0.5 <= held_s["median"] <= CLIENT_TIMEOUT_S + 1.5, held_s
    if "tls" in stats:
        answers = stats["tls"].answers
        assert answers, "no TLS hello answered"
        assert all(line.startswith("HTTP/1.1 400") for line in answers), answers


def chunked(total: int, piece: int = 64 * 1024) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (piece, b" " * piece) for _ in range(total // piece)]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (client_hello(), 400, "bad_request"),
        (b"\x00\x01\x02 garbage \xff\r\n\r\n", 400, "bad_request"),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 6000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (b"GET /" + b"a" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_uri_too_long"),
        (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked(MAX_BODY_BYTES + 128 * 1024),
            413,
            "request_entity_too_large",
        ),
        (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % (MAX_BODY_BYTES + 1),
            413,
            "request_entity_too_large",
        ),
    ],
    ids=["tls-hello", "garbage", "header-line", "request-line", "chunked-body", "content-length"],
)
def test_nginxs_own_errors_are_json(front, request_bytes, status, code):
    got_status, headers, body = exchange(front.port, request_bytes)
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["details"] == []
    if status == 413:
        assert f"limit of {MAX_BODY_BYTES} bytes" in error["message"]


# ---------------------------------------------------------------------------- stopping


def test_sigterm_under_load_drains_and_drops_nothing(trained_store, tmp_path_factory, tmp_path):
    server = start_front(trained_store, tmp_path_factory, "stop", HVS_DRAIN_SECONDS="2")
    stop_file = tmp_path / "stopped"
    try:
        load = subprocess.Popen(
            [
                sys.executable,
                PROJECT_ROOT / "tests/container/stop_under_load.py",
                server.url,
                PROJECT_ROOT / "test_payload.json",
                stop_file,
                "--threads",
                "4",
                "--max-seconds",
                "30",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        tree = server.tree()
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.wait_exit(timeout=25)
        stop_seconds = time.monotonic() - started
        stop_file.touch()
        outcome = json.loads(load.communicate(timeout=30)[0])
        log = server.log()
    finally:
        server.stop()
    assert status == 0, log
    assert outcome["dropped"] == 0, outcome
    assert outcome["ok"] > 0, outcome
    # /ready went 503 (through nginx) while /predict was still answered: the drain
    assert outcome["ready_lost_at_seconds"] is not None, outcome
    assert outcome["ok_after_ready_lost"] > 0, outcome
    assert 2.0 <= stop_seconds < 10.0
    assert server.alive(tree) == set()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    events = [r.get("event") for r in records if r["logger"] == "src.api.front"]
    assert events[-4:] == ["drain", "stop", "stop", "stopped"], events


def test_a_dead_nginx_stops_gunicorn_and_the_front_fails(trained_store, tmp_path_factory):
    server = start_front(trained_store, tmp_path_factory, "kill")
    try:
        tree = server.tree()
        os.kill(server.children()["nginx"], signal.SIGKILL)
        status = server.wait_exit(timeout=30)
        log = server.log()
        left = server.alive(tree)
        run_folders = list(server.tmpdir.glob("hvs-front-*"))
    finally:
        server.stop()
    assert status not in (0, None), log
    assert left == set(), f"still running: {left}"
    assert run_folders == []
    assert "nginx exited on its own" in log
    assert all(line.startswith("{") for line in log.splitlines() if line.strip()), log


def test_max_connections_per_client_refuses_the_surplus_with_429(trained_store, tmp_path_factory):
    server = start_front(
        trained_store, tmp_path_factory, "limit", HVS_MAX_CONNECTIONS_PER_CLIENT="3"
    )
    try:
        # three bodies trickling from one address are held; the fourth is refused
        attackers = Attackers(
            "127.0.0.1", server.port, {"slow_body": 3}, reconnect=False, source="127.0.0.2"
        ).start()
        try:
            time.sleep(0.5)
            fourth = socket.create_connection(
                ("127.0.0.1", server.port), source_address=("127.0.0.2", 0)
            )
            with fourth:
                fourth.settimeout(5)
                fourth.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = fourth.recv(4096)
            other_client = probe("127.0.0.1", server.port, timeout_s=5.0)
        finally:
            attackers.stop()
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 429"), answer
    assert b'"too_many_connections"' in answer
    assert other_client[0] == 200


def test_front_none_is_gunicorn_alone(trained_store, tmp_path_factory):
    server = start_front(trained_store, tmp_path_factory, "none", HVS_FRONT="none")
    try:
        response = requests.get(server.url + "/ready", timeout=5)
        children = server.tree()
        log = server.log()
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["Server"] == "gunicorn"
    # the process started is gunicorn's master itself: its children are the two workers
    assert len(children) == 2
    assert "nginx" not in log.lower()
