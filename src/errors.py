"""The project's one exception hierarchy; the API maps each to one JSON error shape."""

from __future__ import annotations

from typing import Any


class HvsError(Exception):
    """Base of every error this project raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        problem_count: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.problem_count = len(self.details) if problem_count is None else problem_count
        """All the problems found, also those the listed details leave out."""

    @property
    def public_message(self) -> str:
        """What a client is told: the message, unless it holds the server's internals."""
        return self.message


class ModelLoadError(HvsError):
    """The model of the configured run could not be found, read or checked. The message
    names paths and causes: it goes to the log, never to a client."""

    status_code = 503
    code = "model_unavailable"

    @property
    def public_message(self) -> str:
        return (
            "the model could not be loaded; the server's log says why, and the server keeps "
            "retrying on its own: send requests to another instance meanwhile"
        )


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


class UnauthorizedError(HvsError):
    """The route requires a bearer token and the request had none, or a wrong one."""

    status_code = 401
    code = "unauthorized"
