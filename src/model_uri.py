"""Which model to serve, as the operator names it: parsed here, resolved against a store later.

Three MLflow URI forms, plus the bare run id the seed's `BEST_MLFLOW_RUN_ID` has always
taken. Parsing does no I/O, so the settings can refuse a malformed value at start with
one line; whether the run, version or alias exists is the store's question
(src/services/model_store.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
"""An MLflow run id: 32 lower-case hexadecimal characters."""

_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[1-9][0-9]*)$")
_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
_MODEL_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")

ACCEPTED = "runs:/<run id>/<model name>, models:/<name>/<version> or models:/<name>@<alias>"


@dataclass(frozen=True)
class ModelUri:
    """A run's logged model, a registered model's version, or whatever version an alias
    points at. Exactly one of run_id and registered_name is set."""

    run_id: str | None = None
    model_path: str = "model"
    """runs:/ only: the logged model's name (MLflow 3) or its folder in the run's artifacts."""
    registered_name: str | None = None
    version: str | None = None
    alias: str | None = None

    @property
    def can_move(self) -> bool:
        """An alias may point at another version tomorrow; a run or a version cannot."""
        return self.alias is not None

    def __str__(self) -> str:
        if self.run_id is not None:
            return f"runs:/{self.run_id}/{self.model_path}"
        if self.alias is not None:
            return f"models:/{self.registered_name}@{self.alias}"
        return f"models:/{self.registered_name}/{self.version}"


def run_model_uri(run_id: str, model_path: str = "model") -> ModelUri:
    """A run id (BEST_MLFLOW_RUN_ID) as a model URI, checked like runs:/ URIs."""
    return parse_model_uri(f"runs:/{run_id}/{model_path}")


def parse_model_uri(text: str) -> ModelUri:
    """The ModelUri `text` names, or ValueError saying what is accepted."""
    text = text.strip()
    if match := _RUNS.match(text):
        run_id, path = match["run_id"], match["path"].strip("/")
        if not RUN_ID_PATTERN.match(run_id):
            raise ValueError(
                f"{run_id!r} in {text!r} is not an MLflow run id (32 hexadecimal characters)"
            )
        if not _MODEL_PATH.match(path) or ".." in path.split("/"):
            raise ValueError(f"{path!r} in {text!r} is not a logged model's name")
        return ModelUri(run_id=run_id, model_path=path)
    if match := _VERSION.match(text):
        return ModelUri(registered_name=match["name"], version=match["version"])
    if match := _ALIAS.match(text):
        return ModelUri(registered_name=match["name"], alias=match["alias"])
    if text.startswith("models:/m-"):
        raise ValueError(
            f"{text!r} names a logged model by id, which carries no run of this project's "
            f"artifacts to check; use {ACCEPTED}"
        )
    raise ValueError(f"{text!r} is not a model URI this service reads; use {ACCEPTED}")
