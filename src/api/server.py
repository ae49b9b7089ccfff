"""The production server: gunicorn, configured from the typed settings. `python -m src.api.server`.

The settings are read once, here in the master, before gunicorn is even imported (gunicorn
itself reads WEB_CONCURRENCY at import and crashes with a traceback on a bad value); a bad
value stops the start with one line and exit status 3. Every worker builds its app from
that same settings object. Decisions:
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
- sync workers by default: one request at a time per worker, a connection per request.
  Scoring is CPU-bound, so threads only queue behind the GIL, and gthread's keep-alive
  connections stay with the worker that accepted them (bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.logging_setup import exit_on_startup_failure
from src.settings import STARTUP_FAILURE_EXIT_CODE, Settings, SettingsError, load_settings


def _json_log_config(settings: Settings) -> dict[str, Any]:
    """gunicorn's own logs as the service's: one JSON object per line on stdout."""
    return {
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
        "root": {"handlers": ["hvs-stdout"], "level": settings.log_level},
        "loggers": {
            "gunicorn.error": {
                "handlers": ["hvs-stdout"],
                "level": settings.log_level,
                "propagate": False,
            },
            # With a logconfig_dict gunicorn logs every request unless this logger is quiet.
            "gunicorn.access": {
                "handlers": ["hvs-stdout"] if settings.access_log else [],
                "level": "INFO" if settings.access_log else "WARNING",
                "propagate": False,
            },
        },
    }


class _Hooks:
    """gunicorn's server hooks for one server. Made in the master before the first fork,
    so every worker holds the same drain (its flag is shared memory)."""

    def __init__(self, settings: Settings, made_dirs: list[str]) -> None:
        from src.api.drain import Drain

        self.settings = settings
        self.made_dirs = made_dirs
        self.drain = Drain(settings.drain_s)

    def on_starting(self, server: Any) -> None:
        """Empty the metrics folder, then refuse a run that cannot be served."""
        for entry in Path(self.settings.prometheus_multiproc_dir or "").glob("*"):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if self.settings.skip_startup_check:
            return
        from src.errors import ModelLoadError
        from src.services.model_loader import load_run_artifacts

        try:
            load_run_artifacts(self.settings).location.release()
        except ModelLoadError as error:
            server.log.error("cannot serve: %s", error.message)
            logging.shutdown()
            self.on_exit(server)
            raise SystemExit(STARTUP_FAILURE_EXIT_CODE) from None

    def when_ready(self, server: Any) -> None:
        self.drain.install(server)

    def post_worker_init(self, worker: Any) -> None:
        self.drain.wrap_app(worker)
        # The app and its model are loaded: move those objects out of the garbage
        # collector's sight, so its full collections only walk what requests allocate.
        # They had been the slowest 1 % of one-reading requests (bench/README.md).
        gc.freeze()

    def pre_request(self, worker: Any, request: Any) -> None:
        self.drain.close_connection_if_draining(request)

    def child_exit(self, server: Any, worker: Any) -> None:
        from src.api.metrics import archive_dead_worker

        archive_dead_worker(self.settings.prometheus_multiproc_dir or "", worker.pid)

    def on_exit(self, server: Any) -> None:
        """Remove the folders this server made itself; an operator's are left alone."""
        for folder in self.made_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def gunicorn_options(settings: Settings, hooks: _Hooks) -> dict[str, Any]:
    """gunicorn's settings, every one from the typed settings."""
    from gunicorn.glogging import Logger

    class QuietAccessLogger(Logger):
        """gunicorn's logger, minus the access-log work when the access log goes nowhere:
        with a logconfig_dict, gunicorn builds every request's access-log fields (headers
        and the whole WSGI environ) before a quiet logger drops them (bench/README.md)."""

        @property
        def access_log_enabled(self) -> bool:
            return super().access_log_enabled and self.access_log.isEnabledFor(logging.INFO)

    options: dict[str, Any] = {
        # HVS_BIND: the unix socket the front (src/api/front.py) proxies to
        "bind": [settings.bind or f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": settings.worker_class,
        "threads": settings.threads_per_worker,
        "timeout": settings.timeout_s,
        "graceful_timeout": settings.graceful_timeout_s,
        "keepalive": settings.keepalive_s,
        "backlog": settings.backlog,
        "max_requests": settings.max_requests,
        "max_requests_jitter": settings.max_requests // 10,
        "preload_app": False,
        "control_socket_disable": True,
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "accesslog": "-" if settings.access_log else None,
        # the request id the app echoes, so an access line and the app's lines join up
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s',
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logger_class": QuietAccessLogger,
        "proc_name": "hvs-prediction-api",
        "on_starting": hooks.on_starting,
        "when_ready": hooks.when_ready,
        "post_worker_init": hooks.post_worker_init,
        "pre_request": hooks.pre_request,
        "child_exit": hooks.child_exit,
        "on_exit": hooks.on_exit,
    }
    if settings.log_format == "json":
        options["logconfig_dict"] = _json_log_config(settings)
    return options


def serve(settings: Settings, app_factory: Callable[[Settings], Any] | None = None) -> None:
    """Run gunicorn in this process (the master; PID 1 in the container) until stopped.

    app_factory(settings), if given, builds each worker's app instead of the service, under
    the same options and hooks: the benchmark's do-nothing ceiling (bench/ceiling.py)."""
    from gunicorn.app.base import BaseApplication

    made_dirs: list[str] = []
    metrics_dir = settings.prometheus_multiproc_dir
    if metrics_dir is None:
        metrics_dir = tempfile.mkdtemp(prefix="hvs-prometheus-")
        made_dirs.append(metrics_dir)
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"prometheus_multiproc_dir": metrics_dir})
    if settings.history and settings.history_url is None and settings.history_path is None:
        # One embedded store for all of this server's workers, none shared with another.
        history_dir = tempfile.mkdtemp(prefix="hvs-history-")
        made_dirs.append(history_dir)
        history_path = str(Path(history_dir) / "history.sqlite3")
        settings = settings.model_copy(update={"history_path": history_path})
    # Before anything imports prometheus_client (the app, in the workers, after the fork).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # One OpenMP thread per worker unless asked otherwise: two workers on two cores
    # fighting over OpenMP threads made one-reading requests many times slower.
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.xgboost_nthread))
    hooks = _Hooks(settings, made_dirs)

    class HvsServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings, hooks).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from src.api import create_app

            return (app_factory or create_app)(settings)

    HvsServer().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.api.server")
    parser.add_argument(
        "--app",
        metavar="MODULE:FACTORY",
        help="serve FACTORY(settings) instead of the service (the benchmark's ceiling)",
    )
    args = parser.parse_args(argv)
    from src.api.auth import token_digests

    try:
        settings = load_settings()
        token_digests(settings)  # an unreadable token file stops the start here, not later
    except SettingsError as error:
        exit_on_startup_failure(str(error))
    factory = None
    if args.app:
        module, _, name = args.app.partition(":")
        factory = getattr(importlib.import_module(module), name)
    serve(settings, factory)


if __name__ == "__main__":
    main()
