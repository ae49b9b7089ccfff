"""The batch histogram update against prometheus_client's own observe(), value by value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from src.services.metrics import PROBABILITY_BUCKETS, observe_many


def bucket_counts(histogram: Histogram) -> dict[str, float]:
    return {
        sample.name + sample.labels.get("le", ""): sample.value
        for sample in histogram.collect()[0].samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_observe_many_equals_observe_one_by_one(seed):
    registry = CollectorRegistry()
    one_by_one = Histogram("one", "", buckets=PROBABILITY_BUCKETS, registry=registry)
    batched = Histogram("batched", "", buckets=PROBABILITY_BUCKETS, registry=registry)
    # random values, every bucket bound exactly (<= is inclusive), and the extremes
    values = np.concatenate(
        (np.random.default_rng(seed).random(500), PROBABILITY_BUCKETS, [0.0, 1.0, 1.5])
    )
    for value in values:
        one_by_one.observe(float(value))
    observe_many(batched, values, PROBABILITY_BUCKETS)
    expected = {k.replace("one", "batched", 1): v for k, v in bucket_counts(one_by_one).items()}
    assert bucket_counts(batched) == pytest.approx(expected)


def test_a_failed_model_load_is_counted(settings):
    """hvs_model_load_failures_total, which the HvsModelLoadFailures alert watches."""
    from src.errors import ModelLoadError
    from src.services.metrics import PredictionMetrics
    from src.services.prediction_service import PredictionService

    registry = CollectorRegistry()
    missing = settings.model_copy(update={"best_mlflow_run_id": "0" * 32})
    service = PredictionService(missing, PredictionMetrics(registry))
    for attempt in (1, 2):
        with pytest.raises(ModelLoadError):
            service.load()
        assert registry.get_sample_value("hvs_model_load_failures_total") == attempt
    healthy = CollectorRegistry()
    PredictionService(settings, PredictionMetrics(healthy)).load()
    assert healthy.get_sample_value("hvs_model_load_failures_total") == 0
