"""Properties of the feature code over any valid input (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from src.data.signals import SIGNALS
from src.features.engineering import compute_features

T0 = 1_767_225_600.0


@st.composite
def readings(draw, max_rows: int = 40):
    """Readings of up to 4 modules: any values in the accepted ranges (or missing), any
    timestamps (clock steps, bursts a fraction of a second apart), one per module and time."""
    n_rows = draw(st.integers(1, max_rows))
    modules = draw(
        st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=n_rows, max_size=n_rows)
    )
    offsets = draw(
        st.lists(
            st.floats(0.0, 3600.0, allow_nan=False).map(lambda x: round(x, 2)),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    seen = set()
    keep = [
        i
        for i, key in enumerate(zip(modules, offsets, strict=True))
        if not (key in seen or seen.add(key))
    ]
    columns = []
    for signal in SIGNALS:
        value = st.floats(signal.sensor_min, signal.sensor_max, allow_nan=False)
        columns.append(
            draw(st.lists(st.one_of(value, st.just(np.nan)), min_size=n_rows, max_size=n_rows))
        )
    signals = np.array(columns, dtype=np.float64).T
    chemistry_of = {m: draw(st.sampled_from([0.0, 1.0])) for m in sorted(set(modules))}
    return (
        [modules[i] for i in keep],
        T0 + np.array([offsets[i] for i in keep]),
        signals[keep],
        np.array([chemistry_of[modules[i]] for i in keep]),
    )


@settings(max_examples=150, deadline=None)
@given(readings())
def test_features_are_never_infinite_and_finite_when_nothing_is_missing(batch):
    module_ids, timestamps, signals, chemistry = batch
    features = compute_features(module_ids, timestamps, signals, chemistry)
    assert not np.isinf(features).any()
    if not np.isnan(signals).any():
        assert np.isfinite(features).all()


@settings(max_examples=150, deadline=None)
@given(readings(), st.randoms(use_true_random=False))
def test_the_order_of_a_batch_changes_no_reading_s_features(batch, random):
    module_ids, timestamps, signals, chemistry = batch
    order = list(range(len(module_ids)))
    random.shuffle(order)
    features = compute_features(module_ids, timestamps, signals, chemistry)
    shuffled = compute_features(
        [module_ids[i] for i in order], timestamps[order], signals[order], chemistry[order]
    )
    np.testing.assert_array_equal(shuffled, features[order])


@settings(max_examples=100, deadline=None)
@given(readings())
def test_a_module_s_features_do_not_depend_on_other_modules(batch):
    module_ids, timestamps, signals, chemistry = batch
    features = compute_features(module_ids, timestamps, signals, chemistry)
    mine = [i for i, module in enumerate(module_ids) if module == module_ids[0]]
    alone = compute_features(
        [module_ids[i] for i in mine], timestamps[mine], signals[mine], chemistry[mine]
    )
    np.testing.assert_array_equal(alone, features[mine])
