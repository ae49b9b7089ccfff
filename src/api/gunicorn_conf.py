"""Gunicorn configuration: `gunicorn -c src/api/gunicorn_conf.py 'src.api:create_app()'`.

Every knob is an environment variable (README, "Configuration"). Decisions:
- No `preload_app`: XGBoost's OpenMP runtime is not fork-safe, so each worker loads its
  own model after the fork, with HVS_XGBOOST_NTHREAD (default 1) OpenMP threads.
- Prometheus multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set here, before anything
  imports prometheus_client, emptied at start, and dead workers are marked in child_exit.
- The master checks the configured run before forking (`on_starting`): a wrong run id or
  a missing volume stops the server at once with one log line, instead of workers that
  never become ready.
- No control socket (gunicorn 26+ opens one under $HOME by default): nothing here uses
  it, two servers on one host would collide, and the container's home is read-only.
- SIGTERM drains before the graceful stop (src/api/drain.py): HVS_DRAIN_SECONDS of /ready
  answering 503 while requests are still served, then no request left in the listen queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger

# Before anything imports prometheus_client (the app, in the workers, after the fork).
_metrics_dir_given = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="hvs-prometheus-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
# One OpenMP thread per worker unless asked otherwise: 2 workers on 2 cores fighting over
# OpenMP threads made one-reading requests 14x slower (measured for issue 2).
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("HVS_XGBOOST_NTHREAD", "1"))

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root

bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5001')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# sync: one request at a time per worker, a connection per request. Scoring is CPU-bound,
# so threads only queue behind the GIL; and gthread's keep-alive connections stay with the
# worker that accepted them, which left one of two workers idle under wrk's 8 connections
# (bench/README.md). gunicorn silently turns `sync` into `gthread` when threads > 1.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1" if worker_class == "sync" else "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
preload_app = False
control_socket_disable = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("HVS_LOG_LEVEL", "INFO").lower()
_drain_seconds = float(os.environ.get("HVS_DRAIN_SECONDS", "3"))

if os.environ.get("HVS_LOG_FORMAT", "json") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "src.logging_setup.json_formatter"}},
        "handlers": {
            # the name configure_logging() looks for, so the app adds no second handler
            "hvs-stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"handlers": ["hvs-stdout"], "level": loglevel.upper()},
        "loggers": {
            "gunicorn.error": {
                "handlers": ["hvs-stdout"],
                "level": loglevel.upper(),
                "propagate": False,
            },
            # With a logconfig_dict gunicorn logs every request unless this logger is quiet.
            "gunicorn.access": {
                "handlers": ["hvs-stdout"] if accesslog else [],
                "level": "INFO" if accesslog else "WARNING",
                "propagate": False,
            },
        },
    }


class QuietAccessLogger(Logger):
    """gunicorn's logger, minus the access-log work when the access log goes nowhere.

    With a logconfig_dict, gunicorn builds every request's access-log fields (headers and
    the whole WSGI environ) before the quiet `gunicorn.access` logger drops them: 6.6 %
    of a worker's time on one-reading requests (py-spy), 13 % more requests/s without."""

    @property
    def access_log_enabled(self) -> bool:
        return super().access_log_enabled and self.access_log.isEnabledFor(logging.INFO)


logger_class = QuietAccessLogger


def on_starting(server) -> None:
    """Empty the metrics folder, then refuse to start on a run that cannot be served."""
    for entry in Path(_metrics_dir).glob("*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if os.environ.get("HVS_SKIP_STARTUP_CHECK", "").lower() in ("1", "true", "yes"):
        return
    from pydantic import ValidationError

    from src.errors import ModelLoadError
    from src.services.startup_check import check_run

    try:
        check_run()
    except (ModelLoadError, ValidationError) as error:
        message = error.message if isinstance(error, ModelLoadError) else _first_error(error)
        server.log.error("cannot serve: %s", message)
        logging.shutdown()
        on_exit(server)
        sys.exit(3)


def when_ready(server) -> None:
    from src.api import drain

    drain.install(server, _drain_seconds)


def post_worker_init(worker) -> None:
    import gc

    from src.api import drain

    drain.wrap_app(worker)
    # The app and its model are loaded: move those ~150,000 objects out of the garbage
    # collector's sight, so its full collections only walk what requests allocate. They
    # had been the slowest 1 % of one-reading requests: p99 8.9-10.1 ms in half the A/B
    # runs, 6.1-6.5 ms in every run with this (bench/README.md).
    gc.freeze()


def pre_request(worker, req) -> None:
    from src.api import drain

    drain.close_connection_if_draining(req)


def on_exit(server) -> None:
    """Remove the metrics folder this config made itself; an operator's is only emptied."""
    if not _metrics_dir_given:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _first_error(error) -> str:
    first = error.errors(include_url=False)[0]
    return first["msg"].removeprefix("Value error, ")
