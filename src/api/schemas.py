"""Request and response bodies of the API, as pydantic models (the future OpenAPI source).

The reading model is generated from the signal table, so a signal's name, unit, range
and description are written once. Every signal is required; `null` says a sensor
reported nothing (a drop-out) and is scored as missing, which the model was trained on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)

from src.data.signals import SIGNAL_NAMES, SIGNALS
from src.errors import InvalidInputError
from src.services.prediction_service import ReadingBatch

ModuleId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
]

_READING_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

Reading: type[BaseModel] = create_model(
    "Reading",
    __config__=_READING_CONFIG,
    __doc__="One telemetry reading of one battery module.",
    module_id=(ModuleId, Field(description="Module identifier, e.g. R03-M07")),
    timestamp=(
        datetime,
        Field(
            description="When the reading was taken: ISO 8601 (UTC if no offset) or epoch seconds"
        ),
    ),
    **{
        signal.name: (
            float | None,
            Field(
                ge=signal.sensor_min,
                le=signal.sensor_max,
                strict=True,
                description=f"{signal.description} [{signal.unit}]; null if not reported",
            ),
        )
        for signal in SIGNALS
    },
)


class PredictRequest(BaseModel):
    """A batch of readings from any modules, in any order."""

    model_config = ConfigDict(extra="forbid")
    readings: list[Reading] = Field(min_length=1)  # type: ignore[valid-type]


class Prediction(BaseModel):
    module_id: str
    timestamp: datetime
    hazard_probability: float = Field(ge=0.0, le=1.0)
    hazardous: bool = Field(description="hazard_probability >= the run's threshold")
    model_version: str = Field(description="MLflow run id of the model that scored it")


class PredictResponse(BaseModel):
    model_version: str
    threshold: float
    predictions: list[Prediction]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


_REQUEST_ADAPTER = TypeAdapter(PredictRequest)


def parse_predict_request(body: Any, max_readings: int) -> tuple[list[Any], ReadingBatch]:
    """Validate a decoded JSON body into readings and the service's array batch.

    Accepts `{"readings": [...]}` or a single reading object.
    """
    if isinstance(body, dict) and "readings" not in body:
        body = {"readings": [body]}
    if isinstance(body, dict) and isinstance(body.get("readings"), list):
        count = len(body["readings"])
        if count > max_readings:
            raise InvalidInputError(
                f"too many readings: {count} in one request, at most {max_readings}; "
                "split the batch",
                [{"field": "readings", "problem": f"at most {max_readings} readings"}],
            )
    if not isinstance(body, dict):
        raise InvalidInputError(
            'the body must be a JSON object: {"readings": [...]} or one reading',
            [{"field": "(body)", "problem": f"expected an object, got {type(body).__name__}"}],
        )
    try:
        request = _REQUEST_ADAPTER.validate_python(body)
    except ValidationError as error:
        raise InvalidInputError(
            f"{error.error_count()} problem(s) in the request body", _details(error)
        ) from None
    readings = request.readings
    batch = ReadingBatch(
        module_ids=[reading.module_id for reading in readings],
        timestamps_s=np.fromiter(
            (_epoch_seconds(reading.timestamp) for reading in readings),
            dtype=np.float64,
            count=len(readings),
        ),
        signals=np.array(
            [[getattr(reading, name) for name in SIGNAL_NAMES] for reading in readings],
            dtype=np.float64,
        ),
    )
    return readings, batch


def _epoch_seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _details(error: ValidationError) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False, include_input=False):
        details.append({"field": _field_path(item["loc"]), "problem": item["msg"]})
    return details


def _field_path(location: tuple[int | str, ...]) -> str:
    """`("readings", 3, "h2_ppm")` -> `readings[3].h2_ppm`; pydantic's union tags dropped."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("float", "none", "function-after[...]"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"
