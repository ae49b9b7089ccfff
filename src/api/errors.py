"""One JSON error shape for every 4xx and 5xx, Werkzeug's HTTP errors included."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError

from src.errors import HvsError

logger = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    details: list | None = None,
    problem_count: int | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    if 400 <= status < 500:
        # One line per refused request: what and how much, never the payload (request id
        # added by the log filter). 5xx are logged where they happen, with their cause.
        logger.info(
            "request refused",
            extra={
                "status": status,
                "code": code,
                "problems": len(details or []) if problem_count is None else problem_count,
                "method": request.method,
                "path": request.url_rule.rule if request.url_rule else "(unknown route)",
            },
        )
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HvsError)
    def handle_hvs_error(error: HvsError) -> Response:
        response = error_response(
            error.status_code, error.code, error.public_message, error.details, error.problem_count
        )
        if error.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="hvs-prediction-api"'
        return response

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        code = (error.name or "http_error").lower().replace(" ", "_")
        message = error.description or error.name
        if error.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is larger than the limit of {limit} bytes; split the batch"
        response = error_response(error.code or 500, code, message)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    # Not a handler for Exception: an unexpected error stays unhandled until Flask turns it
    # into this 500 (after logging it with its traceback), so the metrics exporter's
    # teardown sees it and counts it in flask_http_request_exceptions_total.
    @app.errorhandler(InternalServerError)
    def handle_unexpected(error: InternalServerError) -> Response:
        return error_response(
            500,
            "internal_error",
            "the service failed on this request; it has been logged. Retry, and report it "
            "if it persists",
        )
