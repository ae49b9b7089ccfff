"""The benchmark's ceiling: a Flask app that reads the body and answers `{}`, nothing else.

Served by our own server code with our settings (`python -m src.api.server --app
bench.ceiling:create_app`: the same gunicorn options, worker class, workers and hooks), so
its requests/s are what this HTTP stack can do at all on this machine; ours divided by
it is the share of that our validation, history, features, model and metrics leave.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

_EMPTY = b"{}"


def create_app(settings: Any = None) -> Flask:
    """The ceiling app; `settings` (our Settings) is accepted and ignored."""
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Response:
        request.get_data()  # read the whole body, as any server must
        return Response(_EMPTY, mimetype="application/json")

    @app.get("/ready")
    def ready() -> Response:  # the benchmark's readiness probe, as for ours
        return Response(_EMPTY, mimetype="application/json")

    return app
