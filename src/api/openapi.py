"""The OpenAPI 3.1 document of the API, generated from the pydantic schemas (never by hand),
served at /openapi.json and fuzzed by the test suite (schemathesis)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from src.api import schemas

_REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {
    "400": "The body is not JSON",
    "401": "A bearer token is required here (when the server is configured with some)",
    "404": "No such route",
    "405": "The route does not take this method",
    "413": "The body is larger than HVS_MAX_BODY_BYTES",
    "422": "The body is not a valid batch of readings (each problem named)",
    "500": "A bug: logged and counted; the client learns nothing more",
    "503": "No model yet (loading, or it could not be loaded), or shutting down",
}


def document() -> dict[str, Any]:
    components: dict[str, Any] = {}

    def ref(kind: Any) -> dict[str, Any]:
        generated = TypeAdapter(kind).json_schema(ref_template=_REF)
        components.update(generated.pop("$defs", {}))
        name = getattr(kind, "__name__", None) or generated.get("title")
        components[name] = generated
        return {"$ref": _REF.format(model=name)}

    error = {"application/json": {"schema": ref(schemas.ErrorResponse)}}

    def answers(ok: dict[str, Any], description: str, *errors: str) -> dict[str, Any]:
        statuses = {
            code: {"description": _ERROR_STATUSES[code], "content": error} for code in errors
        }
        return {"200": {"description": description, "content": ok}, **statuses}

    json_of = lambda kind: {"application/json": {"schema": ref(kind)}}  # noqa: E731
    everywhere = ("404", "405", "500")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hvs-prediction-api",
            "version": "0.1.0",
            "description": "Early warning of thermal runaway in battery energy storage: "
            "per reading, the probability that runaway starts within 10 minutes.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "security": [{}, {"bearer": []}],
                    "summary": "Score readings (rows, one reading, or columns)",
                    "parameters": [
                        {
                            "name": "explain",
                            "in": "query",
                            "required": False,
                            "description": "true: explain every reading, as the body's "
                            '"explain": true does (for a lone reading object)',
                            "schema": {
                                "type": "string",
                                "enum": list(schemas.EXPLAIN_QUERY_VALUES),
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        ref(schemas.PredictRequest),
                                        ref(schemas.Reading),
                                        ref(schemas.PredictColumnsRequest),
                                    ]
                                }
                            }
                        },
                    },
                    "responses": answers(
                        json_of(schemas.PredictResponse),
                        "One prediction per reading, in the request's order",
                        "400",
                        "401",
                        "413",
                        "422",
                        "503",
                        *everywhere,
                    ),
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": answers(json_of(schemas.HealthResponse), "Alive", *everywhere),
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: the model is loaded and warmed up",
                    "responses": answers(
                        json_of(schemas.ReadyResponse), "Ready", "503", *everywhere
                    ),
                }
            },
            "/model": {
                "get": {
                    "security": [{}, {"bearer": []}],
                    "summary": "The served run",
                    "responses": answers(
                        json_of(schemas.ModelDescription), "The run", "401", "503", *everywhere
                    ),
                }
            },
            "/metrics": {
                "get": {
                    "security": [{}, {"bearer": []}],
                    "summary": "Prometheus text format",
                    "responses": answers(
                        {"text/plain": {"schema": {"type": "string"}}},
                        "Metrics",
                        "401",
                        *everywhere,
                    ),
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": answers(
                        {"application/json": {"schema": {"type": "object"}}},
                        "OpenAPI 3.1",
                        *everywhere,
                    ),
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
