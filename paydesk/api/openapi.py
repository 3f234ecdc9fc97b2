"""OpenAPI for endpoints that read their own raw body (to verify signatures over it):
their request schemas are declared here and merged into the generated document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"
_request_models: dict[str, type[BaseModel]] = {}
_security_schemes: dict[str, dict[str, Any]] = {}


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body of `model`.

    An optional body may also be absent, `null` or `[]`: clients send all of these for
    "no parameters"."""
    _request_models[model.__name__] = model
    schema: dict[str, Any] = {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    if not required:
        schema = {"anyOf": [schema, {"type": "null"}, {"type": "array", "maxItems": 0}]}
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def security_scheme(name: str, scheme: dict[str, Any]) -> None:
    _security_schemes[name] = scheme


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name, model in _request_models.items():
            generated = model.model_json_schema(ref_template=REF_TEMPLATE)
            schemas.update(generated.pop("$defs", {}))
            schemas[name] = generated
        if _security_schemes:
            components.setdefault("securitySchemes", {}).update(_security_schemes)
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]
