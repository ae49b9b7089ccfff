"""The service object the app carries: one `app.extensions` entry, reached only through here."""

from __future__ import annotations

from flask import Flask, current_app

from src.services.prediction_service import PredictionService

_KEY = "hvs"


def init_service(app: Flask, service: PredictionService) -> None:
    app.extensions[_KEY] = service


def get_service(app: Flask | None = None) -> PredictionService:
    """The app's prediction service (the current app's inside a request)."""
    return (app or current_app).extensions[_KEY]
