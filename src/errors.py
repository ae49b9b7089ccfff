"""The project's one exception hierarchy; the API maps each to one JSON error shape."""

from __future__ import annotations

from typing import Any


class HvsError(Exception):
    """Base of every error this project raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ModelLoadError(HvsError):
    """The model of the configured run could not be found, read or checked."""

    status_code = 503
    code = "model_unavailable"


class ModelNotReadyError(HvsError):
    """A prediction was asked for before the model finished loading."""

    status_code = 503
    code = "model_not_ready"


class InvalidJsonError(HvsError):
    """The request body is not JSON at all."""

    status_code = 400
    code = "invalid_json"


class InvalidInputError(HvsError):
    """The request body is not a valid batch of readings."""

    status_code = 422
    code = "invalid_input"
