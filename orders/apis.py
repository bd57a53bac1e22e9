import hashlib
import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
)
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clients.auth import VIEW_EVERY_ORDER, CanCancelOrders, ClientPrincipal, IsClientOrStaff, actor_of, client_scope
from clients.models import DEFAULT_CLIENT_ID
from core.api import (
    ERRORS,
    NOT_BLANK_PATTERN,
    PAGE_PARAMETERS,
    READ_ERRORS,
    ErrorSerializer,
    InstantField,
    StrictCharField,
    StrictIntegerField,
    blank_or,
    cursor_paginated,
)
from core.exceptions import ApplicationError
from orders import disclosure, selectors, services
from orders.models import Order, OrderSource, OrderStatus
from orders.pagination import OrderCursorPagination
from orders.webhooks.selectors import order_webhooks

SKU_REGEX = r"^[A-Za-z0-9_-]{1,64}$"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents clients.auth.BearerKeyAuthentication as the `bearerAuth` security scheme."""

    target_class = "clients.auth.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Bearer")  # noqa: S106  a scheme name


class CanReadOrders(IsClientOrStaff):
    """A client key (its own orders) or staff allowed to read every client's; the demo's anonymous live page
    (LIVE_FEED_ANONYMOUS) may also read."""

    staff_permission = VIEW_EVERY_ORDER

    def has_permission(self, request: Request, view: APIView) -> bool:
        if super().has_permission(request, view):
            return True
        return (
            request.method in ("GET", "HEAD", "OPTIONS")
            and settings.LIVE_FEED_ANONYMOUS
            and not request.user.is_authenticated
        )


def order_reader(request: Request) -> selectors.Reader:
    if isinstance(request.user, ClientPrincipal):
        return selectors.client_reader(request.user.client_id)
    return selectors.STAFF if request.user.is_staff else selectors.DEMO


class OrderListCreateApi(APIView):
    @extend_schema_serializer(component_name="OrderCreate")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="OrderCreateItem")
        class ItemSerializer(serializers.Serializer):
            # The validator puts the pattern in the schema; validate_sku keeps the exact full match
            # (a regex `$` would also accept a trailing newline).
            sku = StrictCharField(
                max_length=64,
                min_length=1,
                validators=[RegexValidator(SKU_REGEX, "Only letters, digits, '_' and '-' are allowed.")],
            )
            qty = StrictIntegerField(min_value=1, max_value=1000)

            def validate_sku(self, value: str) -> str:
                if not re.fullmatch(SKU_REGEX, value):
                    raise serializers.ValidationError("Only letters, digits, '_' and '-' are allowed.")
                return value

        customer_id = StrictCharField(max_length=64, min_length=1, trim_whitespace=False)
        source = serializers.ChoiceField(choices=OrderSource.choices, default=OrderSource.API)  # type: ignore[assignment]  # drf-stubs: a declared field named `source` is not Field.source (the metaclass pops it)
        # drf-stubs lack the ListSerializer kwargs that many=True passes on (max_length, DRF >= 3.14)
        items = ItemSerializer(many=True, allow_empty=False, max_length=100)  # type: ignore[call-arg]

        def validate_customer_id(self, value: str) -> str:
            if not value.strip():
                raise serializers.ValidationError("This field may not be blank.")
            return value

    @extend_schema_serializer(component_name="OrderAccepted")
    class OutputSerializer(serializers.Serializer):
        order_id = serializers.UUIDField(source="id")
        status = serializers.ChoiceField(choices=OrderStatus.choices)

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        source = serializers.ChoiceField(choices=OrderSource.choices, required=False)  # type: ignore[assignment]  # drf-stubs: a declared field named `source` is not Field.source (the metaclass pops it)
        updated_since = InstantField(required=False)

    @extend_schema_serializer(component_name="OrderSummary")
    class ListItemSerializer(serializers.Serializer):
        order_id = serializers.UUIDField(source="id")
        status = serializers.CharField()
        customer_id = serializers.SerializerMethodField()
        source = serializers.CharField()  # type: ignore[assignment]  # drf-stubs: a declared field named `source` is not Field.source (the metaclass pops it)
        total_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
        failure_reason = serializers.SerializerMethodField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

        def get_customer_id(self, order: Order) -> str:
            return "" if self.context["reader"].demo else order.customer_id

        def get_failure_reason(self, order: Order) -> str:
            if self.context["reader"].staff:
                return order.failure_reason
            return disclosure.public_failure_reason(
                failure_reason=order.failure_reason, failure_kind=order.failure_kind
            )

    FILTER_PARAMETERS = [
        OpenApiParameter("status", blank_or({"type": "string", "enum": OrderStatus.values}), OpenApiParameter.QUERY),
        OpenApiParameter("source", blank_or({"type": "string", "enum": OrderSource.values}), OpenApiParameter.QUERY),
        OpenApiParameter(
            "updated_since",
            blank_or({"type": "string", "format": "date-time"}),
            OpenApiParameter.QUERY,
            description="Changed after (ISO 8601)",
        ),
        *PAGE_PARAMETERS,
    ]

    def get_permissions(self) -> list[BasePermission]:
        return [IsClientOrStaff()] if self.request.method == "POST" else [CanReadOrders()]

    @extend_schema(
        operation_id="orders_create",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "X-Idempotency-Key",
                {"type": "string", "maxLength": 255},
                OpenApiParameter.HEADER,
                required=False,
                description="Same key → same order (an empty value is the same as no key)",
            )
        ],
        responses={
            202: OutputSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Key reused with another body"),
            **ERRORS,
            429: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "Too many requests (`Retry-After` says when to retry), or `too_many_orders_in_flight`:"
                    " the client has ORDERS_IN_FLIGHT_MAX orders not yet finished"
                ),
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("X-Idempotency-Key") or None
        if key is not None and not (1 <= len(key) <= 255):
            raise ApplicationError(
                "X-Idempotency-Key must be 1..255 characters.",
                extra={"fields": {"X-Idempotency-Key": ["Invalid length."]}},
            )
        result = services.order_create(
            # Staff (a session, e.g. the browsable API) create orders as the built-in client.
            client_id=client_scope(request) or DEFAULT_CLIENT_ID,
            customer_id=data["customer_id"],
            source=data["source"],
            items=[services.ItemIn(sku=i["sku"], qty=i["qty"]) for i in data["items"]],
            idempotency_key=key,
            request_hash=hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        )
        response = Response(self.OutputSerializer(result.order).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/orders/{result.order.id}"
        if not result.created:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(
        operation_id="orders_list",
        parameters=FILTER_PARAMETERS,
        responses={
            200: cursor_paginated("CursorPaginatedOrderSummaryList", ListItemSerializer(many=True)),
            404: OpenApiResponse(ErrorSerializer, description="Invalid cursor"),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = OrderCursorPagination(by_updated="updated_since" in filters.validated_data)
        reader = order_reader(request)
        page = paginator.paginate_queryset(
            selectors.order_list(reader=reader, **filters.validated_data), request, view=self
        )
        return paginator.get_paginated_response(
            self.ListItemSerializer(page, many=True, context={"reader": reader}).data
        )


class OrderDetailApi(APIView):
    permission_classes = [CanReadOrders]

    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[OpenApiParameter("order_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: inline_serializer(
                "OrderDetail",
                {
                    "order_id": serializers.UUIDField(),
                    "status": serializers.CharField(),
                    "customer_id": serializers.CharField(),
                    "source": serializers.CharField(),
                    "total_amount": serializers.CharField(allow_null=True),
                    "failure_reason": serializers.CharField(allow_null=True),
                    "created_at": serializers.DateTimeField(),
                    "updated_at": serializers.DateTimeField(),
                    "items": serializers.ListField(child=serializers.DictField()),
                    "enrichment": serializers.DictField(allow_null=True),
                    "invoice": serializers.DictField(allow_null=True),
                    "cancellation": serializers.DictField(allow_null=True, help_text="`by`, `at`, `reason`"),
                    "credit_note": serializers.DictField(allow_null=True, help_text="`number`, `total`, `lines`"),
                    "history": serializers.ListField(child=serializers.DictField()),
                    "webhooks": serializers.ListField(
                        child=serializers.DictField(),
                        required=False,
                        help_text=(
                            "Staff only: the order's webhook events (`webhook_id`, `type`, `status`)"
                            " with their `attempts`"
                        ),
                    ),
                },
            ),
            404: OpenApiResponse(ErrorSerializer, description="No such order (or another client's)"),
            **{code: ERRORS[code] for code in (401, 403, 429, 503)},
        },
    )
    def get(self, request: Request, order_id: str) -> Response:
        try:
            order_id = str(uuid.UUID(order_id))  # one spelling per order (its cache keys)
        except ValueError:
            raise NotFound("Order not found.") from None
        # Another client's order is a 404, as if it did not exist: ids are not confirmed to outsiders.
        reader = order_reader(request)
        data = selectors.order_detail(order_id=order_id, reader=reader)
        if data is None:
            raise NotFound("Order not found.")
        if reader.staff:
            # Read fresh, outside the order's cache: deliveries do not bump its version.
            data["webhooks"] = order_webhooks(order_id=order_id)
        return Response(data)


class OrderCancelApi(APIView):
    """Cancel an order: `cancelled` (200) if it has not completed, else `refund_pending` (202) until the refund
    stage writes its credit note. Idempotent: a second call answers the same and changes nothing."""

    permission_classes = [CanCancelOrders]

    class InputSerializer(serializers.Serializer):
        reason = StrictCharField(required=False, allow_blank=True, max_length=500, default="")

    @extend_schema_serializer(component_name="OrderCancelled")
    class OutputSerializer(serializers.Serializer):
        order_id = serializers.UUIDField(source="id")
        status = serializers.CharField()

    @extend_schema(
        operation_id="orders_cancel",
        parameters=[OpenApiParameter("order_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        request=InputSerializer,
        responses={
            200: OpenApiResponse(OutputSerializer, description="Cancelled (or refunded already)"),
            202: OpenApiResponse(
                OutputSerializer, description="Completed: the refund is on its way (`refund_pending`)"
            ),
            404: OpenApiResponse(ErrorSerializer, description="No such order (or another client's)"),
            409: OpenApiResponse(ErrorSerializer, description="The order failed: nothing to cancel"),
            **{code: ERRORS[code] for code in (400, 401, 403, 415, 429, 503)},
        },
    )
    def post(self, request: Request, order_id: str) -> Response:
        try:
            order_id = str(uuid.UUID(order_id))  # one spelling per order (its cache keys)
        except ValueError:
            raise NotFound("Order not found.") from None
        serializer = self.InputSerializer(data=request.data if request.data is not None else {})
        serializer.is_valid(raise_exception=True)
        try:
            result = services.order_cancel(
                order_id=order_id,
                actor=actor_of(request),
                reason=serializer.validated_data["reason"],
                client_id=client_scope(request),
            )
        except Order.DoesNotExist:
            raise NotFound("Order not found.") from None
        pending = result.order.status == OrderStatus.REFUND_PENDING
        return Response(
            self.OutputSerializer(result.order).data, status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK
        )


class ProductListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="Product")
    class OutputSerializer(serializers.Serializer):
        sku = serializers.CharField()
        name = serializers.CharField()
        price = serializers.DecimalField(max_digits=12, decimal_places=2)
        stock = serializers.IntegerField()
        reserved = serializers.IntegerField()
        available = serializers.IntegerField()

    @extend_schema(
        operation_id="products_list",
        responses={200: OutputSerializer(many=True), **{code: ERRORS[code] for code in (401, 429, 503)}},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(selectors.product_list(), many=True).data)


class OrderCreateInputScheme(OpenApiSerializerExtension):
    """States what the serializer checks but drf-spectacular leaves out of the schema: the nested list's
    bounds (`allow_empty=False`, `max_length`) and customer_id's rules (no NUL, not blank)."""

    target_class = OrderListCreateApi.InputSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        items = self.target.fields["items"]
        schema["properties"]["items"].update(minItems=0 if items.allow_empty else 1, maxItems=items.max_length)
        schema["properties"]["customer_id"]["pattern"] = NOT_BLANK_PATTERN
        return schema
