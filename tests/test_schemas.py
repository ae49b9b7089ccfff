"""The array checks of src/api/fast_checks.py against pydantic, the schema of record.

Whatever the fast path accepts, pydantic accepts with the same values; whatever pydantic
refuses, the fast path hands to pydantic (returns None), so every error is pydantic's.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.api import schemas
from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import InvalidInputError
from src.features.engineering import CHEMISTRY_CODES


def _valid_value(signal: Any) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(signal.sensor_min, signal.sensor_max),
        st.none(),
        st.integers(math.ceil(signal.sensor_min), math.floor(signal.sensor_max)),
        st.sampled_from([signal.sensor_min, signal.sensor_max]),
    )


any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
    st.text(max_size=70),
    st.sampled_from(["", "x" * 64, "x" * 65, "R01\n", "R01 M01", "lfp", 10**400, None]),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.lists(st.integers(), max_size=2),
)
valid_module_ids = st.one_of(
    st.sampled_from(["R01-M01", "R02-M07", "a.b:c/d_e-1", "x" * 64]),
    st.from_regex(r"[A-Za-z0-9._:/-]{1,64}", fullmatch=True),
)
valid_timestamps = st.one_of(
    st.integers(0, 2_000_000_000),
    st.floats(0, 2e9),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:00+02:00", "2026-11-27"]),
    # The format numpy parses (fast_checks._UTC_STAMP): real moments, and any digits.
    st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda m: f"{m:%Y-%m-%dT%H:%M:%S.%f}Z"),
    st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda m: f"{m:%Y-%m-%dT%H:%M:%S}Z"),
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z", fullmatch=True
    ),
)
explains = st.one_of(st.booleans(), st.sampled_from([1, "true", None]))


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    """A valid reading, then up to two of its fields given any value at all."""
    reading = {"module_id": draw(valid_module_ids), "timestamp": draw(valid_timestamps)}
    reading.update({signal.name: draw(_valid_value(signal)) for signal in SIGNALS})
    if draw(st.booleans()):
        reading["chemistry"] = draw(st.sampled_from([*CHEMISTRY_CODES, None]))
    for name in draw(st.lists(st.sampled_from(sorted(reading)), max_size=2)):
        reading[name] = draw(any_value)
    return reading


def _pydantic_or_none(parse: Any, body: dict[str, Any]) -> Any:
    try:
        return parse(body)
    except InvalidInputError:
        return None


def _assert_same(fast: Any, slow: Any) -> None:
    assert fast.module_ids == slow.module_ids
    assert np.array_equal(fast.timestamps_s, slow.timestamps_s)
    assert np.array_equal(fast.signals, slow.signals, equal_nan=True)
    assert fast.signals.flags.c_contiguous
    assert list(fast.timestamps_sent) == list(slow.timestamps_sent)
    assert fast.chemistry == slow.chemistry


def _rows_body(draw: st.DrawFn, batch: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"readings": batch}
    if draw(st.booleans()):
        body["explain"] = draw(explains)
    return body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(readings(), min_size=1, max_size=4), st.data())
def test_fast_rows_agree_with_pydantic(batch: list[dict[str, Any]], data: st.DataObject) -> None:
    body = _rows_body(data.draw, batch)
    fast = schemas._fast_rows(body)
    slow = _pydantic_or_none(schemas._pydantic_rows, body)
    if slow is None:
        assert fast is None
    elif fast is not None:
        _assert_same(fast, slow)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(readings(), min_size=1, max_size=4), st.data())
def test_fast_columns_agree_with_pydantic(batch: list[dict[str, Any]], data: st.DataObject) -> None:
    with_chemistry = all("chemistry" in reading for reading in batch)
    names = ["module_id", "timestamp", *SIGNAL_NAMES] + (["chemistry"] if with_chemistry else [])
    body: dict[str, Any] = {"columns": {name: [r[name] for r in batch] for name in names}}
    if data.draw(st.booleans()):
        body["explain"] = data.draw(explains)
    fast = schemas._fast_columns(body)
    slow = _pydantic_or_none(schemas._pydantic_columns, body)
    if slow is None:
        assert fast is None
    elif fast is not None:
        _assert_same(fast, slow)


def _valid_reading(index: int) -> dict[str, Any]:
    return {
        "module_id": f"R01-M{index:02d}",
        "timestamp": 1_764_000_000 + 10 * index,
        **{signal.name: signal.reference for signal in SIGNALS},
    }


def test_fast_path_takes_a_valid_batch() -> None:
    body = {"readings": [_valid_reading(i) for i in range(3)]}
    fast = schemas._fast_rows(body)
    assert fast is not None
    _assert_same(fast, schemas._pydantic_rows(body))


def test_fast_path_takes_a_large_batch_and_leaves_its_errors_to_pydantic() -> None:
    body = {"readings": [_valid_reading(i) for i in range(schemas.FAST_PATH_MIN_READINGS)]}
    assert schemas._fast_rows(body) is not None
    body["readings"][5][SIGNAL_NAMES[2]] = float("inf")
    with pytest.raises(InvalidInputError) as raised:
        schemas.parse_predict_request(body, 100)
    assert raised.value.details == [
        {"field": f"readings[5].{SIGNAL_NAMES[2]}", "problem": "Input should be a finite number"}
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("h2_ppm", float("nan")), ("h2_ppm", True), ("module_id", "R01 M01"), ("timestamp", "x")],
)
def test_refused_values_get_pydantic_errors(field: str, value: Any) -> None:
    name = field if field != "h2_ppm" else SIGNAL_NAMES[0]
    reading = {**_valid_reading(1), name: value}
    with pytest.raises(InvalidInputError) as raised:
        schemas.parse_predict_request({"readings": [reading]}, 10)
    assert raised.value.details[0]["field"].startswith(f"readings[0].{name}")
