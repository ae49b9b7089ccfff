"""Logging for the service: one JSON object per line on stdout, or plain text for humans."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

from pythonjsonlogger.json import JsonFormatter

from src.settings import STARTUP_FAILURE_EXIT_CODE

_HANDLER_NAME = "hvs-stdout"
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"

logger = logging.getLogger(__name__)


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        JSON_FORMAT,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
    )


def configure_logging(level: str = "INFO", log_format: str = "json") -> logging.Handler:
    """Route the root logger to stdout once; calling again only updates level and format.
    Returns the handler (the app adds its request-id filter to it)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.setLevel(level)
    return handler


def exit_on_startup_failure(message: str, log_format: str = "json") -> NoReturn:
    """One error line saying why the service cannot start, then exit status 3.

    Used before the settings are known to be good, so the format is the container's
    default unless the caller knows better."""
    configure_logging("INFO", log_format)
    logger.error("cannot serve: %s", message)
    logging.shutdown()
    sys.exit(STARTUP_FAILURE_EXIT_CODE)
