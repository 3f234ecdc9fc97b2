"""Laravel-style request validation for the Cryptomus dialect.

Cryptomus is a Laravel application: it trims strings, turns empty strings into null,
coerces loosely typed input, and reports failures as untranslated rule keys
(`{"amount": ["validation.required"]}`). These pydantic types reproduce that: each raises
an error whose type *is* the Laravel key, so mapping errors is a lookup.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from paydesk.money import parse_decimal

M = TypeVar("M", bound=BaseModel)

_ALPHA_DASH = re.compile(r"^[A-Za-z0-9_-]+$")
_INTEGER = re.compile(r"^[+-]?\d+$")


class RequestInvalid(Exception):
    """Field errors in Laravel's shape: {"field": ["validation.rule", ...]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    #: Fields of which at least one is required (Laravel `required_without`).
    required_without: ClassVar[tuple[str, ...]] = ()


def fail(rule: str) -> PydanticCustomError:
    return PydanticCustomError(rule, rule)


def _passes_none(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapper(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapper


# -------------------------------------------------------------------- rule builders
def string_rule(
    *,
    min_length: int | None = None,
    max_length: int | None = None,
    alpha_dash: bool = False,
    url: bool = False,
    one_of: Iterable[str] | None = None,
    numbers_as_text: bool = False,
) -> BeforeValidator:
    choices = {c.lower(): c for c in one_of} if one_of is not None else None

    def check(value: Any) -> str:
        if numbers_as_text and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise fail("validation.string")
        if min_length is not None and len(value) < min_length:
            raise fail("validation.min.string")
        if max_length is not None and len(value) > max_length:
            raise fail("validation.max.string")
        if alpha_dash and not _ALPHA_DASH.match(value):
            raise fail("validation.alpha_dash")
        if url and not is_url(value):
            raise fail("validation.url")
        if choices is not None:
            if value.lower() not in choices:
                raise fail("validation.in")
            value = choices[value.lower()]
        return value

    return BeforeValidator(_passes_none(check))


def integer_rule(*, minimum: int, maximum: int) -> BeforeValidator:
    def check(value: Any) -> int:
        number: Decimal | None = None
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            number = Decimal(value)
        elif isinstance(value, str) and _INTEGER.match(value.strip()):
            number = Decimal(value.strip())
        if number is None or not number.is_finite() or number != number.to_integral_value():
            raise fail("validation.integer")
        if number < minimum:
            raise fail("validation.min.numeric")
        if number > maximum:
            raise fail("validation.max.numeric")
        return int(number)

    return BeforeValidator(_passes_none(check))


def numeric_rule(
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    positive: bool = False,
) -> BeforeValidator:
    def check(value: Any) -> Decimal:
        number = parse_decimal(value)
        if number is None:
            raise fail("validation.numeric")
        if positive and number <= 0:
            raise fail("validation.gt.numeric")
        if minimum is not None and number < minimum:
            raise fail("validation.min.numeric")
        if maximum is not None and number > maximum:
            raise fail("validation.max.numeric")
        return number

    return BeforeValidator(_passes_none(check))


def boolean_rule() -> BeforeValidator:
    """true/false, 1/0, "1"/"0", "true"/"false": every form real clients send."""
    truthy = {"1", "true"}
    falsy = {"0", "false"}

    def check(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in truthy:
                return True
            if text in falsy:
                return False
        raise fail("validation.boolean")

    return BeforeValidator(_passes_none(check))


def uuid_rule() -> BeforeValidator:
    def check(value: Any) -> uuid.UUID:
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                pass
        raise fail("validation.uuid")

    return BeforeValidator(_passes_none(check))


def array_rule() -> BeforeValidator:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise fail("validation.array")
        return value

    return BeforeValidator(_passes_none(check))


def is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and " " not in value


# -------------------------------------------------------------------- JSON schemas
def schema(**fields: Any) -> WithJsonSchema:
    return WithJsonSchema(fields)


NUMERIC_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"},
        {"type": "number"},
    ]
}
INTEGER_SCHEMA = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^[+-]?\d+$"}]}
BOOLEAN_SCHEMA = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "integer", "enum": [0, 1]},
        {"type": "string", "enum": ["0", "1", "true", "false"]},
    ]
}


def numeric_type(**rule: Any) -> Any:
    bounds = {
        name: int(rule[name]) for name in ("minimum", "maximum") if rule.get(name) is not None
    }
    return Annotated[Decimal, numeric_rule(**rule), WithJsonSchema({**NUMERIC_SCHEMA, **bounds})]


def integer_type(minimum: int, maximum: int) -> Any:
    bounds = {"minimum": minimum, "maximum": maximum}
    return Annotated[
        int,
        integer_rule(minimum=minimum, maximum=maximum),
        WithJsonSchema({"anyOf": [{"type": "integer", **bounds}, INTEGER_SCHEMA["anyOf"][1]]}),
    ]


def string_type(**rule: Any) -> Any:
    text: dict[str, Any] = {"type": "string"}
    if rule.get("min_length") is not None:
        text["minLength"] = rule["min_length"]
    if rule.get("max_length") is not None:
        text["maxLength"] = rule["max_length"]
    if rule.get("alpha_dash"):
        text["pattern"] = _ALPHA_DASH.pattern
    if rule.get("url"):
        text["format"] = "uri"
    if rule.get("one_of") is not None:
        text["enum"] = list(rule["one_of"])
    json_schema: dict[str, Any] = text
    if rule.get("numbers_as_text"):
        json_schema = {"anyOf": [text, {"type": "integer", "minimum": 0}]}
    return Annotated[str, string_rule(**rule), WithJsonSchema(json_schema)]


Boolean = Annotated[bool, boolean_rule(), WithJsonSchema(BOOLEAN_SCHEMA)]
UuidText = Annotated[uuid.UUID, uuid_rule(), WithJsonSchema({"type": "string", "format": "uuid"})]


# -------------------------------------------------------------------- running it
def laravel_input(value: Any) -> Any:
    """Laravel's input middleware: strings trimmed, empty strings become null."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, dict):
        return {k: laravel_input(v) for k, v in value.items()}
    if isinstance(value, list):
        return [laravel_input(v) for v in value]
    return value


_FALLBACK_RULES = {
    "string_type": "validation.string",
    "list_type": "validation.array",
    "model_type": "validation.array",
    "model_attributes_type": "validation.array",
    "dict_type": "validation.array",
    "int_type": "validation.integer",
    "int_parsing": "validation.integer",
    "bool_type": "validation.boolean",
    "bool_parsing": "validation.boolean",
    "decimal_type": "validation.numeric",
    "decimal_parsing": "validation.numeric",
    "uuid_type": "validation.uuid",
    "uuid_parsing": "validation.uuid",
}


def validate(model: type[M], data: dict[str, Any]) -> M:
    data = laravel_input(data)
    errors: dict[str, list[str]] = {}
    pair = model.required_without
    pair_missing = bool(pair) and all(data.get(name) is None for name in pair)
    try:
        instance = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False):
            field = ".".join(str(part) for part in error["loc"])
            errors.setdefault(field, []).append(_rule_of(error))
        instance = None
    if pair_missing:
        for name in pair:
            errors[name] = ["validation.required_without"]
    if errors or instance is None:
        ordered = {name: errors[name] for name in model.model_fields if name in errors}
        ordered.update({k: v for k, v in errors.items() if k not in ordered})
        raise RequestInvalid(ordered)
    return instance


def _rule_of(error: Any) -> str:
    kind = error["type"]
    if kind.startswith("validation."):
        return str(kind)
    if kind == "missing" or error.get("input", ...) is None:
        return "validation.required"
    return _FALLBACK_RULES.get(kind, "validation.invalid")
