import hashlib
import json
import re
import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import HasApiToken
from core.exceptions import ApplicationError
from orders import selectors, services
from orders.models import OrderSource, OrderStatus

SKU_REGEX = r"^[A-Za-z0-9_-]{1,64}$"


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of coercing them to text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()
    extra = serializers.DictField()


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; `extra.fields` has per-field errors"),
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong bearer token"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed"),
    415: OpenApiResponse(ErrorSerializer, description="Only application/json bodies are accepted"),
    503: OpenApiResponse(ErrorSerializer, description="A backing service is down; retry with the same key"),
}


class OrderListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            sku = StrictCharField(max_length=64, min_length=1)
            qty = serializers.IntegerField(min_value=1, max_value=1000)

            def validate_sku(self, value):
                if not re.fullmatch(SKU_REGEX, value):
                    raise serializers.ValidationError("Only letters, digits, '_' and '-' are allowed.")
                return value

        customer_id = StrictCharField(max_length=64, min_length=1, trim_whitespace=False)
        source = serializers.ChoiceField(choices=OrderSource.choices, default=OrderSource.API)
        items = ItemSerializer(many=True, allow_empty=False, max_length=100)

        def validate_customer_id(self, value):
            if not value.strip():
                raise serializers.ValidationError("This field may not be blank.")
            return value

    class OutputSerializer(serializers.Serializer):
        order_id = serializers.UUIDField(source="id")
        status = serializers.ChoiceField(choices=OrderStatus.choices)

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        source = serializers.ChoiceField(choices=OrderSource.choices, required=False)
        updated_since = serializers.DateTimeField(required=False)

    class ListItemSerializer(serializers.Serializer):
        order_id = serializers.UUIDField(source="id")
        status = serializers.CharField()
        customer_id = serializers.CharField()
        source = serializers.CharField()
        total_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
        failure_reason = serializers.CharField()
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    def get_permissions(self):
        return [HasApiToken()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(
        operation_id="orders_create",
        request=InputSerializer,
        parameters=[OpenApiParameter("X-Idempotency-Key", str, OpenApiParameter.HEADER, required=False, description="Same key → same order")],
        responses={202: OutputSerializer, 409: OpenApiResponse(ErrorSerializer, description="Key reused with another body"), **ERRORS},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("X-Idempotency-Key") or None
        if key is not None and not (1 <= len(key) <= 255):
            raise ApplicationError("X-Idempotency-Key must be 1..255 characters.", extra={"fields": {"X-Idempotency-Key": ["Invalid length."]}})
        result = services.order_create(
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

    @extend_schema(operation_id="orders_list", parameters=[FilterSerializer], responses={200: ListItemSerializer(many=True), 400: ERRORS[400]})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.order_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.ListItemSerializer(page, many=True).data)


class OrderDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="orders_retrieve",
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
                    "history": serializers.ListField(child=serializers.DictField()),
                },
            ),
            404: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request, order_id: str):
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise NotFound("Order not found.")
        data = selectors.order_detail(order_id=order_id)
        if data is None:
            raise NotFound("Order not found.")
        return Response(data)


class ProductListApi(APIView):
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        sku = serializers.CharField()
        name = serializers.CharField()
        price = serializers.DecimalField(max_digits=12, decimal_places=2)
        stock = serializers.IntegerField()
        reserved = serializers.IntegerField()
        available = serializers.IntegerField()

    @extend_schema(operation_id="products_list", responses={200: OutputSerializer(many=True)})
    def get(self, request):
        return Response(self.OutputSerializer(selectors.product_list(), many=True).data)
