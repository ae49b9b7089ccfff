"""Request ids: an incoming X-Request-ID is kept (when it is a plausible id) or one is made;
it is echoed in the answer's header and added to every log line of that request."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-ID"
_PLAUSIBLE = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
"""A gateway's or proxy's id (UUIDs, ULIDs, trace ids) kept; anything else replaced, so a
client cannot put arbitrary text into the logs."""


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


def init_app(app: Flask, handler: logging.Handler) -> None:
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())

    @app.before_request
    def take_or_make_id() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _PLAUSIBLE.match(given) else uuid.uuid4().hex

    @app.after_request
    def echo_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response


def current() -> str | None:
    """This request's id, or None outside a request."""
    return g.get("request_id") if has_request_context() else None
