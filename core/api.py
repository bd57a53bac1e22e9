"""DRF building blocks every API of the project shares: strict fields, the error shape's schema, and the
OpenAPI helpers for hand-paginated views. No domain in here."""

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

# What every DRF CharField enforces (ProhibitNullCharactersValidator) without saying so in the schema.
NO_NUL_PATTERN = r"^[^\x00]*$"
# No NUL and at least one non-blank character: what `.strip()` then "may not be blank" accepts.
NOT_BLANK_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of coercing them to text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that refuses strings ("2"), floats (2.0) and booleans instead of coercing them."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A BooleanField that takes only JSON true/false, not "yes", 1 or "on"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class InstantField(serializers.DateTimeField):
    """Any RFC 3339 date-time, including those whose UTC value falls outside Python's datetime range
    (`0001-01-01T00:00:00+01:00`, `9999-12-31T23:59:59-01:00`): for a "changed since" filter they mean
    the earliest / latest instant. DRF would answer 400 "Datetime value out of range" to valid input."""

    def enforce_timezone(self, value: datetime) -> datetime:
        if value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                # DTZ901 is a false positive: the naive min/max get tzinfo=UTC right here
                return (datetime.min if value.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)  # noqa: DTZ901
        return super().enforce_timezone(value)


def blank_or(schema: dict) -> dict:
    """A query parameter that may also be sent empty (`?status=`): DRF reads an empty optional query
    value as "not given", so the filter is simply not applied."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor",
        {"type": "string"},
        OpenApiParameter.QUERY,
        description="Opaque: take it from `next` or `previous`; a tampered cursor is a 404",
    ),
    OpenApiParameter(
        "page_size",
        blank_or({"type": "integer", "minimum": 1}),
        OpenApiParameter.QUERY,
        description="Orders a page (capped)",
    ),
]


# Staff lists (dead letters) still page by number.
PAGE = OpenApiParameter(
    "page",
    blank_or({"type": "integer", "minimum": 1}),
    OpenApiParameter.QUERY,
    description="Page number (50 a page); past the last page is a 404",
)


def paginated(name: str, serializer: serializers.Serializer) -> serializers.Serializer:
    """The page DRF's PageNumberPagination actually returns, for APIViews that paginate by hand."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(min_value=0),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer,
        },
    )


def cursor_paginated(name: str, serializer: serializers.Serializer) -> serializers.Serializer:
    """The page DRF's CursorPagination returns: no count, links to the next and previous pages."""
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer,
        },
    )


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()
    extra = serializers.DictField()


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; `extra.fields` has per-field errors"),
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong bearer key"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ErrorSerializer, description="Not found"),
    415: OpenApiResponse(ErrorSerializer, description="Only application/json bodies are accepted"),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests; `Retry-After` says when to retry"),
    503: OpenApiResponse(ErrorSerializer, description="A backing service is down; retry with the same key"),
}


READ_ERRORS = {code: ERRORS[code] for code in (400, 401, 403, 429, 503)}
