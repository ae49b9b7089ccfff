"""The front: nginx before gunicorn's sync workers, supervised here. `python -m src.api.front`.

A sync worker serves one connection at a time and waits as long as its client takes, so
two clients that connect and send nothing (or trickle their headers or body) hold both
workers. nginx reads every request whole before a worker sees it and takes the whole
response at once (src/api/nginx.conf; docs/design.md, "Slow clients"). One container,
this process as PID 1, two children:

- gunicorn (`python -m src.api.server`), bound to a unix socket in a fresh per-run folder
  under $TMPDIR (HVS_BIND), started first: its start-up check (a wrong run id, a missing
  store) exits 3 with one log line, and then so does this, without starting nginx;
- nginx in the foreground on HOST:PORT, once the socket answers, with the config
  rendered from the typed settings into the same folder. Its error log is its stderr,
  read here and logged as JSON records like every other line (level from nginx's own).

Signals (a terminal's Ctrl-C reaches only this process: the children run in their own
sessions, so the order below is kept):
- SIGTERM (`docker stop`): gunicorn gets SIGTERM and starts its drain (/ready answers
  503, through nginx, while requests are still served) and is told to hold it until this
  process says so; after HVS_DRAIN_SECONDS nginx gets SIGQUIT (it closes its port and
  finishes the requests it has, still proxied to gunicorn); once nginx has exited,
  gunicorn gets a second SIGTERM, which ends its drain and stops it gracefully. Exit 0
  when both exited 0. A second SIGTERM during the drain cuts it short.
- SIGINT, SIGQUIT: stop both at once (nginx's fast stop is SIGTERM, gunicorn's SIGINT or
  SIGQUIT). SIGHUP: passed to gunicorn (new workers).
- A child that exits on its own: the other is stopped, and this exits non-zero (the
  child's status, or 1), so the container is restarted.
HVS_FRONT=none (or auto without nginx) runs gunicorn in this process instead, exactly as
`python -m src.api.server`. The run folder is removed on exit.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from src.logging_setup import configure_logging, exit_on_startup_failure
from src.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("src.api.front")  # not __main__ under -m
nginx_logger = logging.getLogger("nginx")

TEMPLATE = Path(__file__).with_name("nginx.conf")
CHILD_FAILED_EXIT_CODE = 1
"""Exit status when a child exits on its own with 0 or by a signal (nginx killed, ...)."""
_TICK_S = 0.05
_GUNICORN_LISTEN_TIMEOUT_S = 120.0
_UNIX_PATH_MAX = 107
# Where Debian and most distributions put nginx; a non-root user's PATH often lacks sbin.
_NGINX_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_MAX_WORKER_CONNECTIONS = 16384


# ---------------------------------------------------------------------------- nginx config


def find_nginx() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_NGINX_SEARCH_PATH])
    return shutil.which("nginx", path=path)


def render_nginx_conf(settings: Settings, run_dir: Path, upstream_socket: Path) -> str:
    """src/api/nginx.conf with every @NAME@ filled from the settings."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    limit = settings.max_connections_per_client
    values = {
        "USER": _same_user(),
        "RUN_DIR": str(run_dir),
        "UPSTREAM": f"unix:{upstream_socket}",
        "LISTEN": f"{host}:{settings.port}",
        "BACKLOG": str(settings.backlog),
        "NOFILE": str(nofile),
        # each proxied request holds two descriptors: the client's and gunicorn's
        "WORKER_CONNECTIONS": str(min(_MAX_WORKER_CONNECTIONS, nofile // 2 - 16)),
        "SHUTDOWN_TIMEOUT": f"{settings.graceful_timeout_s}s",
        "ERROR_LOG_LEVEL": "notice" if settings.log_level == "DEBUG" else "warn",
        "CLIENT_TIMEOUT": f"{round(settings.client_timeout_s * 1000)}ms",
        "PROXY_TIMEOUT": f"{settings.timeout_s + 10}s",
        "LIMIT_CONN": f"limit_conn per_client {limit};" if limit else "",
        "MAX_BODY_BYTES": str(settings.max_body_bytes),
        # the app's own 413 message (src/api/errors.py)
        "MAX_BODY_MESSAGE": (
            f"the request body is larger than the limit of {settings.max_body_bytes} bytes; "
            "split the batch"
        ),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise RuntimeError(f"{TEMPLATE} has placeholders nothing fills: {', '.join(left)}")
    return text


def _same_user() -> str:
    """nginx started by root switches its workers to a compiled-in user (www-data), which
    could not reach the private run folder: keep them as the user gunicorn's workers run
    as. Not root: nginx cannot switch anyway (and warns if asked)."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


# ---------------------------------------------------------------------------- nginx's log

# "2026/11/28 10:00:00 [warn] 12#12: *5 message" (the error log), or
# "nginx: [emerg] message" (before the configuration is read)
_NGINX_LINE = re.compile(
    r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?P<level>\w+)\] (?P<pid>\d+)#\d+: "
    r"(?:\*(?P<connection>\d+) )?|nginx: \[(?P<early_level>\w+)\] )(?P<message>.*)$"
)
_NGINX_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emerg": logging.CRITICAL,
}
# What a client causes, and nginx logs at warn or error: one line per oversized request
# or large body is not a server problem (the app logs its own refusals at INFO, too).
_CLIENT_CAUSED = (
    "client intended to send too large",
    "a client request body is buffered to a temporary file",
    "an upstream response is buffered to a temporary file",
    "client sent ",
    "client timed out",
    "client prematurely closed",
    "limiting connections by zone",
)


def relay_nginx_log(stream: IO[bytes]) -> None:
    """Log each line nginx writes as one record of the `nginx` logger, until EOF."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip()
        if not line:
            continue
        match = _NGINX_LINE.match(line)
        if match is None:
            nginx_logger.warning(line)
            continue
        message = match["message"]
        level = _NGINX_LEVELS.get(match["level"] or match["early_level"], logging.WARNING)
        if level > logging.INFO and message.startswith(_CLIENT_CAUSED):
            level = logging.INFO
        extra = {"nginx_pid": int(match["pid"])} if match["pid"] else {}
        if match["connection"]:
            extra["connection"] = int(match["connection"])
        nginx_logger.log(level, message, extra=extra)
    stream.close()


# ---------------------------------------------------------------------------- supervisor


class Front:
    """gunicorn on a unix socket and nginx on HOST:PORT, for one run."""

    def __init__(self, settings: Settings, nginx_binary: str) -> None:
        self.settings = settings
        self.nginx_binary = nginx_binary
        self.run_dir = Path(tempfile.mkdtemp(prefix="hvs-front-"))  # mode 0700
        self.socket_path = self.run_dir / "gunicorn.sock"
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.relay: threading.Thread | None = None
        self.signals: deque[int] = deque()

    # ------------------------------------------------------------------ start

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            # deque.append is safe in a handler; the loops below look at it every tick
            signal.signal(signum, lambda signum, _frame: self.signals.append(signum))
        try:
            return self._run()
        finally:
            self._kill_leftovers()
            if self.relay is not None:
                self.relay.join(timeout=5)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _run(self) -> int:
        if len(str(self.socket_path)) > _UNIX_PATH_MAX:
            exit_on_startup_failure(
                f"the front's socket path {self.socket_path} is longer than a unix socket "
                f"allows ({_UNIX_PATH_MAX} bytes): set TMPDIR to a shorter folder",
                self.settings.log_format,
            )
        conf = self.run_dir / "nginx.conf"
        conf.write_text(render_nginx_conf(self.settings, self.run_dir, self.socket_path))
        self.gunicorn = self._start_gunicorn()
        started = time.monotonic()
        while not _unix_socket_answers(self.socket_path):
            status = self.gunicorn.poll()
            if status is not None:
                # Its start-up check has said why, in one line; say nothing more at ERROR.
                logger.info("gunicorn exited with %s before listening", status)
                return status if status > 0 else CHILD_FAILED_EXIT_CODE
            if self.signals:
                logger.info("signal %s before gunicorn listened: stopping it", self.signals[-1])
                self._stop_gunicorn(signal.SIGTERM, check=False)
                return 0
            if time.monotonic() - started > _GUNICORN_LISTEN_TIMEOUT_S:
                logger.error(
                    "gunicorn did not listen on %s within %.0f s: stopping",
                    self.socket_path,
                    _GUNICORN_LISTEN_TIMEOUT_S,
                )
                self._stop_gunicorn(signal.SIGINT, check=False)
                return CHILD_FAILED_EXIT_CODE
            time.sleep(_TICK_S)
        self.nginx = self._start_nginx(conf)
        logger.info(
            "nginx serving on %s:%s in front of gunicorn (unix:%s)",
            self.settings.host,
            self.settings.port,
            self.socket_path,
            extra={"event": "serving", "nginx_pid": self.nginx.pid},
        )
        return self._supervise()

    def _start_gunicorn(self) -> subprocess.Popen[bytes]:
        settings = self.settings
        env = {
            **os.environ,
            "HVS_BIND": f"unix:{self.socket_path}",
            # gunicorn's drain timer only as a safety net: it stops when told (after
            # nginx), so it must not end its drain on its own while nginx still proxies.
            "HVS_DRAIN_SECONDS": str(
                min(300.0, settings.drain_s + settings.graceful_timeout_s + 15.0)
            ),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "src.api.server"], env=env, start_new_session=True
        )
        logger.info(
            "gunicorn starting on unix:%s",
            self.socket_path,
            extra={"event": "start", "child": "gunicorn", "child_pid": process.pid},
        )
        return process

    def _start_nginx(self, conf: Path) -> subprocess.Popen[bytes]:
        # -e stderr: nginx would otherwise open its compiled-in error log
        # (/var/log/nginx/error.log) before reading the config, which fails on a read-only
        # root; -p: nothing relative resolves into the system's folders.
        process = subprocess.Popen(
            [
                self.nginx_binary,
                "-e",
                "stderr",
                "-p",
                f"{self.run_dir}/",
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        self.relay = threading.Thread(
            target=relay_nginx_log, args=(process.stdout,), name="nginx-log", daemon=True
        )
        self.relay.start()
        return process

    # ------------------------------------------------------------------ run and stop

    def _supervise(self) -> int:
        assert self.gunicorn is not None
        assert self.nginx is not None
        while True:
            while self.signals:
                signum = self.signals.popleft()
                if signum == signal.SIGTERM:
                    return self._graceful_stop()
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: passed to gunicorn (new workers)")
                    self.gunicorn.send_signal(signal.SIGHUP)
                    continue
                return self._fast_stop(signum)
            for name, child, other in (
                ("nginx", self.nginx, self.gunicorn),
                ("gunicorn", self.gunicorn, self.nginx),
            ):
                if child.poll() is not None:
                    return self._child_died(name, child, other)
            time.sleep(_TICK_S)

    def _graceful_stop(self) -> int:
        assert self.gunicorn is not None
        assert self.nginx is not None
        drain_s = self.settings.drain_s
        logger.info(
            "SIGTERM: draining for %.1f s (/ready answers 503, requests are still served), "
            "then nginx stops, then gunicorn",
            drain_s,
            extra={"event": "drain"},
        )
        self.gunicorn.send_signal(signal.SIGTERM)
        first_term = time.monotonic()
        deadline = first_term + drain_s
        while time.monotonic() < deadline:
            if self.signals:
                signum = self.signals.popleft()
                if signum in (signal.SIGINT, signal.SIGQUIT):
                    return self._fast_stop(signum)
                if signum == signal.SIGTERM:
                    logger.info("second SIGTERM: the drain is cut short")
                    break
            if self.nginx.poll() is not None or self.gunicorn.poll() is not None:
                break
            time.sleep(_TICK_S)
        logger.info(
            "drain over: nginx stops gracefully (SIGQUIT: its port closes, its requests finish)",
            extra={"event": "stop", "child": "nginx"},
        )
        nginx_status = self._wait_stopped(
            self.nginx, signal.SIGQUIT, self.settings.graceful_timeout_s + 5.0
        )
        # Two SIGTERMs too close together reach gunicorn as one, and the first would then
        # never have started its drain: keep them apart.
        time.sleep(max(0.0, first_term + 0.2 - time.monotonic()))
        logger.info(
            "nginx exited with %s; gunicorn stops gracefully (second SIGTERM)",
            nginx_status,
            extra={"event": "stop", "child": "gunicorn"},
        )
        gunicorn_status = self._stop_gunicorn(signal.SIGTERM)
        return 0 if nginx_status == 0 and gunicorn_status == 0 else CHILD_FAILED_EXIT_CODE

    def _fast_stop(self, signum: int) -> int:
        assert self.gunicorn is not None
        assert self.nginx is not None
        logger.info("%s: stopping at once", signal.Signals(signum).name, extra={"event": "stop"})
        self.nginx.send_signal(signal.SIGTERM)  # nginx's fast stop
        gunicorn_status = self._stop_gunicorn(signum)
        nginx_status = self._wait_stopped(self.nginx, None, 10.0)
        return 0 if nginx_status == 0 and gunicorn_status == 0 else CHILD_FAILED_EXIT_CODE

    def _child_died(
        self, name: str, child: subprocess.Popen[bytes], other: subprocess.Popen[bytes]
    ) -> int:
        status = child.returncode
        logger.error(
            "%s exited on its own (status %s): stopping %s and exiting, to be restarted",
            name,
            status,
            "gunicorn" if name == "nginx" else "nginx",
            extra={"event": "child_died", "child": name},
        )
        # Its own children may outlive it (nginx's worker keeps the port open): they are
        # in its process group, as each child runs in a session of its own.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        if other is self.gunicorn:
            self._stop_gunicorn(signal.SIGINT, check=False)
        else:
            self._wait_stopped(other, signal.SIGTERM, 10.0)
        return status if status > 0 else CHILD_FAILED_EXIT_CODE

    def _stop_gunicorn(self, signum: int, check: bool = True) -> int:
        assert self.gunicorn is not None
        status = self._wait_stopped(self.gunicorn, signum, self.settings.graceful_timeout_s + 10.0)
        if check:
            logger.info("gunicorn exited with %s", status, extra={"event": "stopped"})
        return status

    @staticmethod
    def _wait_stopped(child: subprocess.Popen[bytes], signum: int | None, timeout_s: float) -> int:
        """Send signum (if any), wait up to timeout_s, then SIGKILL; the exit status."""
        if signum is not None and child.poll() is None:
            child.send_signal(signum)
        try:
            return child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %s still running after %.0f s: killed", child.pid, timeout_s)
            child.kill()
            return child.wait()

    def _kill_leftovers(self) -> None:
        """Only after an unexpected error here: no child may outlive the supervisor."""
        for child in (self.nginx, self.gunicorn):
            if child is not None and child.poll() is None:
                self._wait_stopped(child, signal.SIGTERM, 10.0)


def _unix_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------- entry point


def _serve_directly(settings: Settings) -> None:
    """HVS_FRONT=none: `python -m src.api.server`, in this process (PID 1 stays gunicorn)."""
    from src.api.auth import token_digests
    from src.api.server import serve

    try:
        token_digests(settings)
    except SettingsError as error:
        exit_on_startup_failure(str(error), settings.log_format)
    serve(settings)


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        exit_on_startup_failure(str(error))
    configure_logging(settings.log_level, settings.log_format)
    nginx = find_nginx() if settings.front != "none" else None
    if settings.front == "nginx" and nginx is None:
        exit_on_startup_failure(
            "HVS_FRONT=nginx, but no nginx binary is on PATH or in /usr/sbin: install nginx "
            "(apt-get install nginx), or set HVS_FRONT=none",
            settings.log_format,
        )
    if nginx is None:
        if settings.front == "auto":
            logger.warning(
                "HVS_FRONT=auto found no nginx: serving gunicorn directly on %s:%s, where slow "
                "or idle clients can hold every worker; install nginx (apt-get install "
                "nginx) or use the image",
                settings.host,
                settings.port,
            )
        _serve_directly(settings)
        return
    sys.exit(Front(settings, nginx).run())


if __name__ == "__main__":
    main()
