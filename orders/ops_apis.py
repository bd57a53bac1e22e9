"""Operator REST API beside the dead letters' (orders/dead_letters/apis.py): diagnostics (staff only)."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import ERRORS
from core.operator_auth import StaffApi
from orders import metrics_collect


class DiagnosticsApi(StaffApi):
    """Every backing service, ok or its error text (staff only: /readyz names no error to anonymous callers
    and checks only PostgreSQL). Broker and Redis answers are cached for DIAGNOSTICS_CACHE_SECONDS."""

    required_permissions = ("orders.view_diagnostics",)

    @extend_schema_serializer(component_name="Diagnostics")
    class OutputSerializer(serializers.Serializer):
        database = serializers.DictField()
        rabbitmq = serializers.DictField()
        redis = serializers.DictField()
        dlq = serializers.DictField(help_text="`depth`: messages waiting in the DLQ")
        outbox = serializers.DictField(help_text="`backlog`, `oldest_age_seconds`: outbox rows not yet published")
        cached_for_seconds = serializers.FloatField()

    @extend_schema(operation_id="diagnostics", responses={200: OutputSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(metrics_collect.diagnostics())
