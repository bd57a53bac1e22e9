"""Operator REST API for the dead-letter archive (staff only: session or HTTP basic auth; core/operator_auth.py)."""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import (
    ERRORS,
    NO_NUL_PATTERN,
    NOT_BLANK_PATTERN,
    PAGE,
    ErrorSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    blank_or,
    paginated,
)
from core.operator_auth import StaffApi
from orders.dead_letters.redrive import (
    dead_letter_discard,
    dead_letter_redrive,
    dead_letter_redrive_many,
)
from orders.dead_letters.selectors import dead_letter_groups, dead_letter_list
from orders.models import DeadLetter, DeadLetterStatus

# The URL takes digits only (`\d+`); anything else never reaches a view.
DEAD_LETTER_ID = OpenApiParameter("id", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, OpenApiParameter.PATH)


class DeadLetterApi(StaffApi):
    required_permissions: tuple[str, ...] = ("orders.view_deadletter",)

    def get_dead_letter(self, pk: int) -> DeadLetter:
        try:
            return DeadLetter.objects.get(pk=pk)
        except DeadLetter.DoesNotExist:
            raise NotFound("Dead letter not found.") from None


class DeadLetterSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="failure_group")

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "status",
            "order",
            "task_name",
            "stage",
            "queue",
            "reason",
            "exception",
            "error_message",
            "attempts",
            "group",
            "first_death_at",
            "last_death_at",
            "archived_at",
            "redriven_at",
            "redriven_by",
            "redrive_task_id",
        ]


@extend_schema_serializer(component_name="DeadLetterDetail")
class DeadLetterDetailSerializer(DeadLetterSerializer):
    class Meta(DeadLetterSerializer.Meta):
        fields = [*DeadLetterSerializer.Meta.fields, "headers", "properties", "body", "content_type"]


class DeadLetterListApi(DeadLetterApi):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=DeadLetterStatus.choices, required=False)
        group = serializers.CharField(required=False)
        order_id = serializers.UUIDField(required=False)

    FILTER_PARAMETERS = [
        OpenApiParameter(
            "status", blank_or({"type": "string", "enum": DeadLetterStatus.values}), OpenApiParameter.QUERY
        ),
        OpenApiParameter(
            "group",
            blank_or({"type": "string", "pattern": NOT_BLANK_PATTERN}),
            OpenApiParameter.QUERY,
            description="`task:exception`, as listed by /ops/dead-letters/groups",
        ),
        OpenApiParameter("order_id", blank_or({"type": "string", "format": "uuid"}), OpenApiParameter.QUERY),
        PAGE,
    ]

    @extend_schema(
        operation_id="dead_letters_list",
        parameters=FILTER_PARAMETERS,
        responses={200: paginated("PaginatedDeadLetterList", DeadLetterSerializer(many=True)), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(dead_letter_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(DeadLetterSerializer(page, many=True).data)


class DeadLetterDetailApi(DeadLetterApi):
    @extend_schema(
        operation_id="dead_letters_retrieve",
        parameters=[DEAD_LETTER_ID],
        responses={200: DeadLetterDetailSerializer, **ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeadLetterDetailSerializer(self.get_dead_letter(pk)).data)


class DeadLetterRedriveApi(DeadLetterApi):
    required_permissions = ("orders.redrive_deadletter",)

    @extend_schema(
        operation_id="dead_letters_redrive",
        request=None,
        parameters=[DEAD_LETTER_ID],
        responses={200: DeadLetterSerializer, 409: OpenApiResponse(ErrorSerializer, description="Refused"), **ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        self.get_dead_letter(pk)
        return Response(DeadLetterSerializer(dead_letter_redrive(dead_letter_id=pk, actor=self.actor())).data)


class DeadLetterDiscardApi(DeadLetterApi):
    required_permissions = ("orders.discard_deadletter",)

    @extend_schema(
        operation_id="dead_letters_discard",
        request=None,
        parameters=[DEAD_LETTER_ID],
        responses={200: DeadLetterSerializer, 409: OpenApiResponse(ErrorSerializer, description="Refused"), **ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        self.get_dead_letter(pk)
        return Response(DeadLetterSerializer(dead_letter_discard(dead_letter_id=pk, actor=self.actor())).data)


class RequiredBodySchema(AutoSchema):
    """The body is required even though none of its fields is (one of them must be given)."""

    def _get_request_body(self, direction: str = "request") -> Any:
        body = super()._get_request_body(direction)
        if body:
            body["required"] = True
        return body


class DeadLetterBulkRedriveApi(DeadLetterApi):
    required_permissions = ("orders.redrive_deadletter",)
    schema = RequiredBodySchema()

    @extend_schema_serializer(component_name="DeadLetterRedriveBulk")
    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(
            child=StrictIntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=1000
        )
        # Taken as given (not trimmed), so the schema's length and pattern say exactly what is accepted.
        group = StrictCharField(required=False, max_length=300, trim_whitespace=False)
        all = StrictBooleanField(required=False, default=False)

        def validate(self, attrs: dict) -> dict:
            if sum(bool(attrs.get(k)) for k in ("ids", "group", "all")) != 1:
                raise serializers.ValidationError("Give exactly one of ids, group or all=true.")
            return attrs

    @extend_schema_serializer(component_name="DeadLetterRedriveBulkResult")
    class OutputSerializer(serializers.Serializer):
        redriven = serializers.ListField(child=serializers.IntegerField())
        refused = serializers.DictField(child=serializers.CharField())

    @extend_schema(
        operation_id="dead_letters_redrive_bulk", request=InputSerializer, responses={200: OutputSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ids = data.get("ids") or list(
            dead_letter_list(status=DeadLetterStatus.ARCHIVED, group=data.get("group")).values_list("pk", flat=True)
        )
        result = dead_letter_redrive_many(dead_letter_ids=ids, actor=self.actor())
        return Response(self.OutputSerializer({"redriven": result.redriven, "refused": result.refused}).data)


class DeadLetterBulkRedriveInputScheme(OpenApiSerializerExtension):
    """States "exactly one of ids (non-empty), group or all=true" in the schema, as `validate` checks it."""

    target_class = DeadLetterBulkRedriveApi.InputSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["properties"]["group"]["pattern"] = NO_NUL_PATTERN
        # OpenAPI 3.0 has no `const`; the boolean conditions sit under `not`, where drf-spectacular's
        # enum post-processing does not hoist them into (colliding) enum components.
        group = {"required": ["group"]}
        all_true = {"required": ["all"], "properties": {"all": {"enum": [True]}}}
        all_false = {"properties": {"all": {"enum": [False]}}}
        schema["oneOf"] = [
            {"required": ["ids"], "properties": {"ids": {"minItems": 1}}, "not": {"anyOf": [group, all_true]}},
            {"required": ["group"], "properties": {"ids": {"maxItems": 0}}, "not": all_true},
            {"required": ["all"], "properties": {"ids": {"maxItems": 0}}, "not": {"anyOf": [group, all_false]}},
        ]
        return schema


class DeadLetterGroupsApi(DeadLetterApi):
    @extend_schema_serializer(component_name="DeadLetterGroup")
    class OutputSerializer(serializers.Serializer):
        group = serializers.CharField()
        task = serializers.CharField()
        failure = serializers.CharField()
        count = serializers.IntegerField()
        last_archived_at = serializers.DateTimeField()

    @extend_schema(operation_id="dead_letters_groups", responses={200: OutputSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(dead_letter_groups(), many=True).data)
