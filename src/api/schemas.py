"""Request and response bodies of the API as pydantic schemas (the future OpenAPI source).

Requests are TypedDicts validated by pydantic; responses are models that the tests hold
every answer to. The reading schema is generated from the signal table, so a signal's
name, unit, range and description are written once. Every signal is required; `null`
says a sensor reported nothing (a drop-out) and is scored as missing, as in training.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from itertools import islice
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from src.api import fast_checks
from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import InvalidInputError
from src.features.engineering import CHEMISTRY_CODES
from src.readings import ReadingBatch

ModuleId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
]


Timestamp = Annotated[
    datetime,
    Field(description="When the reading was taken: ISO 8601 (UTC if no offset) or epoch seconds"),
]
SIGNAL_TYPES: dict[str, Any] = {
    signal.name: Annotated[
        float | None,
        Field(
            ge=signal.sensor_min,
            le=signal.sensor_max,
            strict=True,
            description=f"{signal.description} [{signal.unit}]; null if not reported",
        ),
    ]
    for signal in SIGNALS
}

Chemistry = Annotated[
    Literal[CHEMISTRY_CODES] | None,  # type: ignore[valid-type]
    Field(
        description="The module's cell chemistry; null or absent: the site's HVS_CHEMISTRY, "
        "or unknown"
    ),
]

# Readings are validated as TypedDicts: the same pydantic-core checks and error paths as
# models, without building 1,000 model instances per request (4x faster on a batch).
Reading = with_config(ConfigDict(extra="forbid", allow_inf_nan=False))(
    TypedDict(  # type: ignore[operator]
        "Reading",
        {
            "module_id": Annotated[ModuleId, Field(description="Module identifier, e.g. R03-M07")],
            "timestamp": Timestamp,
            **SIGNAL_TYPES,
            "chemistry": NotRequired[Chemistry],
        },
    )
)
Reading.__doc__ = "One telemetry reading of one battery module."

Explain = Annotated[
    bool,
    Field(
        strict=True,
        description="true: explain every reading (its top contributing signals). Absent "
        "or false: only readings at warning or alarm carry an explanation",
    ),
]


@with_config(ConfigDict(extra="forbid"))
class PredictRequest(TypedDict):
    """A batch of readings from any modules, in any order."""

    readings: Annotated[list[Reading], Field(min_length=1)]  # type: ignore[valid-type]
    explain: NotRequired[Explain]


Columns = with_config(ConfigDict(extra="forbid", allow_inf_nan=False))(
    TypedDict(  # type: ignore[operator]
        "Columns",
        {
            "module_id": Annotated[list[ModuleId], Field(min_length=1)],
            "timestamp": list[Timestamp],
            **{name: list[kind] for name, kind in SIGNAL_TYPES.items()},
            "chemistry": NotRequired[list[Chemistry]],
        },
    )
)
Columns.__doc__ = "The same readings, one list per field, all of equal length (bulk scoring)."


@with_config(ConfigDict(extra="forbid"))
class PredictColumnsRequest(TypedDict):
    """A batch of readings as columns: smaller to send and faster to check than rows."""

    columns: Columns  # type: ignore[valid-type]
    explain: NotRequired[Explain]


class SignalContribution(BaseModel):
    signal: str = Field(
        description="A raw signal (its level, rates, window statistics, slopes, deviation "
        "and rise together), or a group: cell_voltage_spread_v, temp_above_ambient_c "
        "(quantities of two signals), chemistry, history"
    )
    log_odds: float = Field(description="Its exact (TreeSHAP) contribution to the log-odds")
    value: float | None = Field(
        description="The reading's value of the signal (null: missing); a two-signal "
        "quantity's value; history: seconds of history; chemistry: null"
    )
    healthy_range: tuple[float, float] | None = Field(
        description="The signal's healthy range (docs/api.md, Readings); null for groups"
    )


class Explanation(BaseModel):
    base_log_odds: float = Field(description="The model's log-odds before any signal")
    log_odds: float = Field(
        description="The reading's log-odds: base_log_odds plus every signal's part "
        "(listed or not); hazard_probability = 1 / (1 + exp(-log_odds))"
    )
    top: list[SignalContribution] = Field(
        description="The largest parts, by magnitude (HVS_EXPLAIN_TOP of them)"
    )


class Prediction(BaseModel):
    module_id: str
    timestamp: str | float = Field(description="The reading's timestamp, as it was sent")
    hazard_probability: float = Field(
        ge=0.0, le=1.0, description="The model's probability of runaway onset within 10 min"
    )
    level: Literal["normal", "warning", "alarm", "unknown"] = Field(
        description="The highest of the model's level (its thresholds) and the physical "
        "guards'; unknown instead of normal when a key signal group is missing"
    )
    hazardous: bool = Field(description="level is alarm")
    reasons: list[str] = Field(
        description="Why the level is not normal: model:<level>, guard:<rule>, missing:<group>"
    )
    missing: list[Literal["gas", "temperature", "voltage"]] = Field(
        description="Key signal groups this reading lacks (none of their sensors reported)"
    )
    history_s: float = Field(
        ge=0.0,
        description="Seconds back to the oldest earlier reading of the module (stored or in "
        "this request) that the features used; 0: the reading was scored alone",
    )
    history_readings: int = Field(ge=0, description="How many earlier readings the features used")
    history_source: Literal["store", "request"] = Field(
        description="store: the module's stored history plus the request; request: the "
        "request alone (history off, or the store unavailable)"
    )
    model_version: str = Field(description="MLflow run id of the model that scored it")
    explanation: Explanation | None = Field(
        description="Which signals drove the model's probability: readings at warning or "
        "alarm, and every reading when the request has explain: true; else null"
    )


class Thresholds(BaseModel):
    warning: float = Field(gt=0.0, lt=1.0)
    alarm: float = Field(gt=0.0, lt=1.0)


class PredictResponse(BaseModel):
    model_version: str
    thresholds: Thresholds
    predictions: list[Prediction]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model_version: str


class ModelDescription(BaseModel):
    """What /model shows: PredictionService.describe()."""

    model_version: str
    experiment_id: str
    thresholds: Thresholds
    absent_signals: list[str]
    feature_names: list[str]
    feature_set_version: str
    hazard_horizon_s: float
    code_version: str
    training_metrics: dict[str, float]
    training_params: dict[str, str]
    load_seconds: float
    onnx_max_rows: int


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


MAX_ERROR_DETAILS = 20
"""An error lists at most this many problems, and its message says how many there were."""

READING_FIELDS = frozenset(("module_id", "timestamp", *SIGNAL_NAMES))
"""Every reading has these; field names are the only client keys ever echoed."""
OPTIONAL_FIELDS = frozenset(("chemistry",))
WITH_OPTIONAL = READING_FIELDS | OPTIONAL_FIELDS

_ROWS_ADAPTER = TypeAdapter(PredictRequest)
_COLUMNS_ADAPTER = TypeAdapter(PredictColumnsRequest)
_signal_values = itemgetter(*SIGNAL_NAMES)
_timestamp_of = itemgetter("timestamp")


def parse_predict_request(
    body: Any, max_readings: int, latest_timestamp_s: float = np.inf
) -> ReadingBatch:
    """Validate a decoded JSON body into the service's array batch.

    Accepts `{"readings": [...]}`, one reading object, or `{"columns": {...}}`; the first
    and the last may also hold `"explain": true` (explain_requested). Readings stamped
    after latest_timestamp_s (the server's clock plus the allowed skew) and a second
    reading of one module at one timestamp are refused.
    """
    if not isinstance(body, dict):
        raise InvalidInputError(
            'the body must be a JSON object: {"readings": [...]}, one reading, '
            'or {"columns": {...}}',
            [{"field": "(body)", "problem": f"expected an object, got {type(body).__name__}"}],
        )
    if "columns" in body:
        batch = _parse_columns(body, max_readings)
        field = "columns.timestamp[{}]"
    else:
        batch = _parse_rows(body, max_readings)
        field = "readings[{}].timestamp"
    return _check_timestamps(batch, latest_timestamp_s, field)


def explain_requested(body: dict[str, Any]) -> bool:
    """Whether a body that parse_predict_request accepted asks to explain every reading."""
    return body.get("explain") is True


EXPLAIN_QUERY_VALUES = ("true", "false")


def explain_query(value: str | None) -> bool:
    """Whether `?explain=` asks to explain every reading: `true` or `false`, absent is
    false. The query suits a lone reading object, whose body has no room for options."""
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise InvalidInputError(
        'the query parameter "explain" must be true or false (or absent)',
        [{"field": "explain (query)", "problem": "not true or false"}],
    )


def _parse_rows(body: dict[str, Any], max_readings: int) -> ReadingBatch:
    if "readings" not in body:
        body = {"readings": [body]}
    _check_top_level(body, "readings")
    _check_count(body["readings"], "readings", max_readings)
    _check_reading_fields(body["readings"])
    batch = _fast_rows(body) if _is_large(body["readings"]) else None
    return _pydantic_rows(body) if batch is None else batch


def _pydantic_rows(body: dict[str, Any]) -> ReadingBatch:
    readings = _validate(_ROWS_ADAPTER, body)["readings"]
    chemistry = [reading.get("chemistry") for reading in readings]
    return ReadingBatch(
        module_ids=[reading["module_id"] for reading in readings],
        timestamps_s=fast_checks.epoch_seconds(map(_timestamp_of, readings), len(readings)),
        signals=np.array(list(map(_signal_values, readings)), dtype=np.float64),
        timestamps_sent=list(map(_timestamp_of, body["readings"])),
        chemistry=chemistry if any(chemistry) else None,
    )


def _parse_columns(body: dict[str, Any], max_readings: int) -> ReadingBatch:
    _check_top_level(body, "columns")
    columns = body["columns"]
    if isinstance(columns, dict):
        _check_count(columns.get("module_id"), "columns.module_id", max_readings)
        _check_column_fields(columns)
        batch = _fast_columns(body) if _is_large(columns["module_id"]) else None
        if batch is not None:
            return batch
    return _pydantic_columns(body)


def _pydantic_columns(body: dict[str, Any]) -> ReadingBatch:
    columns = body["columns"]
    validated = _validate(_COLUMNS_ADAPTER, body)["columns"]
    count = len(validated["module_id"])
    return ReadingBatch(
        module_ids=validated["module_id"],
        timestamps_s=fast_checks.epoch_seconds(validated["timestamp"], count),
        signals=np.column_stack(
            [np.array(validated[name], dtype=np.float64) for name in SIGNAL_NAMES]
        ),
        timestamps_sent=columns["timestamp"],
        chemistry=validated.get("chemistry"),
    )


FAST_PATH_MIN_READINGS = 8
"""Below this many readings pydantic alone is faster than the array checks' set-up."""


def _is_large(items: Any) -> bool:
    return isinstance(items, list) and len(items) >= FAST_PATH_MIN_READINGS


def _fast_rows(body: dict[str, Any]) -> ReadingBatch | None:
    """The batch of a well-formed rows body, checked as arrays (fast_checks), or None:
    then pydantic validates it and words any error. Runs after _check_reading_fields, so
    every reading is a dict of exactly the schema's fields."""
    readings = body["readings"]
    if type(readings) is not list or not readings or not fast_checks.explain_ok(body):
        return None
    module_ids = [reading["module_id"] for reading in readings]
    sent = list(map(_timestamp_of, readings))
    chemistry = [reading.get("chemistry") for reading in readings]
    if not (fast_checks.module_ids_ok(module_ids) and fast_checks.chemistry_ok(chemistry)):
        return None
    signals = fast_checks.signal_rows_or_none(list(map(_signal_values, readings)))
    timestamps_s = None if signals is None else fast_checks.epoch_seconds_or_none(sent)
    if timestamps_s is None:
        return None
    return ReadingBatch(
        module_ids=module_ids,
        timestamps_s=timestamps_s,
        signals=signals,
        timestamps_sent=sent,
        chemistry=chemistry if any(chemistry) else None,
    )


def _fast_columns(body: dict[str, Any]) -> ReadingBatch | None:
    """As _fast_rows, for a columns body that passed _check_column_fields."""
    columns = body["columns"]
    values = list(columns.values())
    if not all(type(column) is list for column in values) or not fast_checks.explain_ok(body):
        return None
    count = len(columns["module_id"])
    if count == 0 or any(len(column) != count for column in values):
        return None
    module_ids = columns["module_id"]
    chemistry = columns.get("chemistry")
    if not fast_checks.module_ids_ok(module_ids) or (
        chemistry is not None and not fast_checks.chemistry_ok(chemistry)
    ):
        return None
    signals = fast_checks.signal_columns_or_none([columns[name] for name in SIGNAL_NAMES])
    timestamps = columns["timestamp"]
    timestamps_s = None if signals is None else fast_checks.epoch_seconds_or_none(timestamps)
    if timestamps_s is None:
        return None
    return ReadingBatch(
        module_ids=list(module_ids),
        timestamps_s=timestamps_s,
        signals=signals,
        timestamps_sent=columns["timestamp"],
        chemistry=None if chemistry is None else list(chemistry),
    )


def _check_timestamps(batch: ReadingBatch, latest_s: float, field: str) -> ReadingBatch:
    """No reading from the future (a wrong clock would head its module's history), and
    one reading per module and timestamp: a second with other values is refused, one with
    the same values (a retry) is marked a repeat and answered as the first."""
    ahead = np.flatnonzero(batch.timestamps_s > latest_s)
    if ahead.size:
        seconds = float(batch.timestamps_s[ahead[0]] - latest_s)
        raise InvalidInputError(
            f"{ahead.size} reading(s) stamped in the future, the first {seconds:.0f} s beyond "
            "the accepted clock skew (HVS_MAX_CLOCK_AHEAD_S); check the gateway's clock (NTP)",
            [{"field": field.format(int(ahead[0])), "problem": "later than the server's clock"}],
        )
    keys = list(zip(batch.module_ids, batch.timestamps_s.tolist(), strict=True))
    if len(set(keys)) < len(keys):  # a set in C first: most batches hold no repeat
        seen: dict[tuple[str, float], int] = {}
        repeats = None
        for index, key in enumerate(keys):
            first = seen.setdefault(key, index)
            if first == index:
                continue
            if not _same_reading(batch, first, index):
                raise InvalidInputError(
                    "two different readings of one module at one timestamp; send each once",
                    [
                        {
                            "field": field.format(index),
                            "problem": f"reading {first} has this module and timestamp, with "
                            "other values",
                        }
                    ],
                )
            if repeats is None:
                repeats = np.full(len(batch), -1, dtype=np.int64)
            repeats[index] = first
        if repeats is not None:
            return replace(batch, repeats=repeats)
    return batch


def _same_reading(batch: ReadingBatch, first: int, other: int) -> bool:
    """A reading sent twice (a retry): the same values, missing ones included."""
    same_signals = np.array_equal(batch.signals[first], batch.signals[other], equal_nan=True)
    chemistry = batch.chemistry
    return same_signals and (chemistry is None or chemistry[first] == chemistry[other])


# The checks below run before pydantic: each is a few set operations per reading, and they
# keep the cost of a hostile body (thousands of unknown keys, thousands of empty readings)
# and the size of its error bounded, and no unknown key's name in the answer.


def _check_top_level(body: dict[str, Any], expected: str) -> None:
    unknown = len(body) - (expected in body) - ("explain" in body)
    if unknown:
        raise InvalidInputError(
            f'the body has {unknown} field(s) besides "{expected}" and "explain"; send only '
            f'{{"{expected}": ...}} (fields: docs/api.md)',
            [{"field": "(body)", "problem": f"{unknown} unknown field(s)"}],
        )


def _field_problems(present: Any, where: str) -> list[dict[str, str]]:
    """Missing fields by name, unknown ones only counted (their names are the client's)."""
    missing = [name for name in ("module_id", "timestamp", *SIGNAL_NAMES) if name not in present]
    problems = [{"field": f"{where}.{name}", "problem": "Field required"} for name in missing]
    optional = sum(name in present for name in OPTIONAL_FIELDS)
    unknown = len(present) - (len(READING_FIELDS) - len(missing)) - optional
    if unknown:
        problems.append({"field": where, "problem": f"{unknown} unknown field(s); see docs/api.md"})
    return problems


def _check_reading_fields(readings: Any) -> None:
    if not isinstance(readings, list):
        return  # pydantic says "Input should be a valid list"
    problems: list[dict[str, str]] = []
    total = 0
    for index, reading in enumerate(readings):
        if type(reading) is dict and (
            reading.keys() == READING_FIELDS or reading.keys() == WITH_OPTIONAL
        ):
            continue
        if isinstance(reading, dict):
            found = _field_problems(reading, f"readings[{index}]")
        else:
            found = [{"field": f"readings[{index}]", "problem": "expected an object"}]
        total += len(found)
        problems.extend(found[: MAX_ERROR_DETAILS - len(problems)])
    if total:
        raise _bounded(total, problems)


def _check_column_fields(columns: dict[str, Any]) -> None:
    if columns.keys() != READING_FIELDS and columns.keys() != WITH_OPTIONAL:
        problems = _field_problems(columns, "columns")
        raise _bounded(len(problems), problems)
    count = len(columns["module_id"]) if isinstance(columns["module_id"], list) else None
    uneven = [
        {"field": f"columns.{name}", "problem": f"has {len(values)} values, module_id has {count}"}
        for name, values in columns.items()
        if count and isinstance(values, list) and len(values) != count
    ]
    if uneven:
        raise InvalidInputError("every column must have one value per reading", uneven)


def _bounded(total: int, details: list[dict[str, str]]) -> InvalidInputError:
    shown = details[:MAX_ERROR_DETAILS]
    more = f"; the first {len(shown)} are listed" if total > len(shown) else ""
    return InvalidInputError(f"{total} problem(s) in the request body{more}", shown, total)


def _check_count(items: Any, field: str, max_readings: int) -> None:
    """Refuse an oversized batch before validating any of it."""
    if isinstance(items, list) and len(items) > max_readings:
        raise InvalidInputError(
            f"too many readings: {len(items)} in one request, at most {max_readings}; "
            "split the batch",
            [{"field": field, "problem": f"at most {max_readings} readings"}],
        )


def _validate(adapter: TypeAdapter, body: dict[str, Any]) -> Any:
    try:
        return adapter.validate_python(body)
    except ValidationError as error:
        details = [
            {"field": _field_path(item["loc"]), "problem": item["msg"]}
            for item in islice(
                error.errors(include_url=False, include_input=False), MAX_ERROR_DETAILS
            )
        ]
        raise _bounded(error.error_count(), details) from None


_PATH_PARTS = WITH_OPTIONAL | {"readings", "columns", "explain"}


def _field_path(location: tuple[int | str, ...]) -> str:
    """`("readings", 3, "h2_ppm")` -> `readings[3].h2_ppm`; pydantic's union tags dropped,
    and any name that is not the schema's shown as `(unknown field)`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("float", "none"):
            continue
        else:
            name = part if part in _PATH_PARTS else "(unknown field)"
            path += f".{name}" if path else name
    return path or "(body)"
