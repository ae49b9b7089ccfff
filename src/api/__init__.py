"""The Flask application factory: the table of contents of the service."""

from __future__ import annotations

import logging
from typing import Literal

from flask import Flask

from src.settings import Settings

logger = logging.getLogger(__name__)

LoadMode = Literal["now", "never"]


def create_app(settings: Settings | None = None, load: LoadMode = "now") -> Flask:
    """Build the service; with load="now" the model is loaded and warmed up before return.

    Under gunicorn that happens in each worker after the fork and before it accepts a
    connection, so no request ever reaches a worker without its model, and /ready is 200
    from whichever worker answers. `load="never"` leaves loading to the caller (tests).
    """
    from src.api import auth, metrics, request_ids, routes
    from src.api.errors import register_error_handlers
    from src.api.extension import init_service
    from src.errors import ModelLoadError
    from src.logging_setup import configure_logging
    from src.services.history import open_store
    from src.services.metrics import PredictionMetrics
    from src.services.model_watch import ModelWatch
    from src.services.prediction_service import PredictionService
    from src.settings import load_settings

    settings = settings or load_settings()
    log_handler = configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    request_ids.init_app(app, log_handler)
    register_error_handlers(app)
    auth.init_app(app, settings)
    registry = metrics.init_app(app, multiprocess=settings.prometheus_multiproc_dir is not None)
    model_metrics = PredictionMetrics(registry)
    service = PredictionService(settings, model_metrics, open_store(settings))
    init_service(app, service)
    app.register_blueprint(routes.bp)
    if load == "now":
        try:
            service.load()
        except ModelLoadError as error:  # /ready answers 503 until a retry works
            logger.error("model load failed, /ready answers 503 until it works: %s", error.message)
            service.keep_trying()
    if load == "now" and settings.model_source.can_move and settings.model_poll_seconds > 0:
        app.extensions["hvs_model_watch"] = ModelWatch(
            service, settings.model_poll_seconds, model_metrics
        ).start()
    return app
