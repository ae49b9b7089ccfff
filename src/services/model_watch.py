"""Follows a moving alias: each worker asks the registry now and then what
`models:/<name>@<alias>` points at, and when it moved, loads the new version beside the
served one and swaps it in.

Each worker polls on its own (no signal from the master, no shared state), so all of them
converge within one poll interval whichever one an operator's request would have reached.
The new version is read, checked against the code's contract and warmed up before the
swap; requests in flight finish on the model they started with. A version that fails is
refused once (logged, counted) and the old one keeps serving until the alias moves again.
"""

from __future__ import annotations

import logging
import threading

from src.errors import ModelLoadError
from src.services.metrics import PredictionMetrics
from src.services.model_store import ModelStore, ModelTarget
from src.services.prediction_service import PredictionService

logger = logging.getLogger(__name__)


def _key(target: ModelTarget) -> tuple[str, str | None]:
    return (target.run_id, None if target.registered is None else target.registered.version)


class ModelWatch:
    """One worker's poller of the configured alias (start() it; stop() ends it)."""

    def __init__(
        self,
        service: PredictionService,
        interval_s: float,
        metrics: PredictionMetrics | None = None,
    ) -> None:
        self.service = service
        self.interval_s = interval_s
        self._metrics = metrics
        self._refused: tuple[str, str | None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelWatch:
        self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # never let the poller die: the next poll tries again
                logger.exception("checking the model alias failed")

    def check(self) -> bool:
        """Resolve the alias once; load and swap in what it points at if that is new.
        True when a new model is now served."""
        settings = self.service.settings
        try:
            target = ModelStore(settings.mlflow_tracking_uri).resolve(
                settings.model_source, settings.model_artifact_name
            )
        except ModelLoadError as error:  # the registry is away: keep serving, ask again
            logger.warning(
                "cannot resolve %s, keeping the served model: %s",
                settings.model_source,
                error.message,
            )
            return False
        key = _key(target)
        served = self.service.served_target_key()
        if key == served or key == self._refused:
            return False
        logger.info(
            "the alias moved, loading the new version",
            extra={
                "model_uri": target.source,
                "run_id": target.run_id,
                "registered_version": key[1],
            },
        )
        try:
            self.service.load(target)
        except ModelLoadError as error:
            self._refused = key
            if self._metrics is not None:
                self._metrics.model_reloads.labels(outcome="refused").inc()
            logger.error(
                "refused the new version, the previous model keeps serving: %s",
                error.message,
                extra={
                    "model_uri": target.source,
                    "run_id": target.run_id,
                    "registered_version": key[1],
                },
            )
            return False
        self._refused = None
        if self._metrics is not None:
            self._metrics.model_reloads.labels(outcome="loaded").inc()
        return True
