"""Optional bearer tokens: one set for /predict and /model, another for /metrics.

Off unless configured (a start-up log line says so, per route group). Tokens come from a
variable (comma-separated) or a file (one per line, e.g. a mounted Kubernetes secret);
several may be valid at once, for rotation. They are compared as SHA-256 digests with
hmac.compare_digest, so neither a token's content nor its length leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from flask import Flask, request
from pydantic import SecretStr

from src.errors import UnauthorizedError
from src.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

PROTECTED = {
    "/predict": "predict",
    "/model": "predict",
    "/metrics": "metrics",
}
"""Which token set guards which path; /health, /ready and /openapi.json stay open."""


def token_digests(settings: Settings) -> dict[str, list[bytes]]:
    """Each group's token digests; SettingsError (one line) if a token file is unreadable.
    The server calls it before starting, so a missing secret stops it at once."""
    return {
        "predict": _digests(settings.predict_tokens, settings.predict_tokens_file, "HVS_PREDICT"),
        "metrics": _digests(settings.metrics_tokens, settings.metrics_tokens_file, "HVS_METRICS"),
    }


def init_app(app: Flask, settings: Settings) -> None:
    digests = token_digests(settings)
    for group, found in digests.items():
        if found:
            logger.info("bearer tokens required for %s (%d configured)", group, len(found))
        else:
            logger.info(
                "no authentication on %s: set HVS_%s_TOKENS_FILE (or HVS_%s_TOKENS) to require "
                "a bearer token",
                group,
                group.upper(),
                group.upper(),
            )
    if not any(digests.values()):
        return

    @app.before_request
    def check_token() -> None:
        group = PROTECTED.get(request.path)
        if group is None or not digests[group]:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and _matches(token.strip(), digests[group]):
            return
        raise UnauthorizedError(
            f"{request.path} needs a bearer token: send Authorization: Bearer <token>"
        )


def _digests(tokens: SecretStr | None, path: str | None, prefix: str) -> list[bytes]:
    values: list[str] = []
    if tokens is not None:
        values += tokens.get_secret_value().split(",")
    if path is not None:
        try:
            values += Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise SettingsError(
                f"{prefix}_TOKENS_FILE={path!r} cannot be read ({error.strerror}); mount the "
                "token file there, or unset the variable"
            ) from None
    return [hashlib.sha256(value.strip().encode()).digest() for value in values if value.strip()]


def _matches(token: str, digests: list[bytes]) -> bool:
    digest = hashlib.sha256(token.encode()).digest()
    found = False
    for expected in digests:  # every one compared: the time says nothing about which
        found |= hmac.compare_digest(digest, expected)
    return found
