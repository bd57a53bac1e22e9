"""Operator REST API for the dead-letter archive (staff only: session or HTTP basic auth)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import dead_letters
from orders.apis import ERRORS, ErrorSerializer
from orders.models import DeadLetter, DeadLetterStatus


class StaffApi(APIView):
    # Basic first: an anonymous caller gets 401 with a challenge; a logged-in non-staff user gets 403.
    authentication_classes = [BasicAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]

    def actor(self) -> str:
        return f"staff:{self.request.user.get_username()}"

    def get_dead_letter(self, pk) -> DeadLetter:
        try:
            return DeadLetter.objects.get(pk=pk)
        except DeadLetter.DoesNotExist:
            raise NotFound("Dead letter not found.")


class DeadLetterSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="failure_group")

    class Meta:
        model = DeadLetter
        fields = [
            "id", "status", "order", "task_name", "stage", "queue", "reason", "exception", "error_message", "attempts",
            "group", "first_death_at", "last_death_at", "archived_at", "redriven_at", "redriven_by", "redrive_task_id",
        ]


class DeadLetterDetailSerializer(DeadLetterSerializer):
    class Meta(DeadLetterSerializer.Meta):
        fields = DeadLetterSerializer.Meta.fields + ["headers", "properties", "body", "content_type"]


class DeadLetterListApi(StaffApi):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=DeadLetterStatus.choices, required=False)
        group = serializers.CharField(required=False)
        order_id = serializers.UUIDField(required=False)

    @extend_schema(operation_id="dead_letters_list", parameters=[FilterSerializer], responses={200: DeadLetterSerializer(many=True), **ERRORS})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(dead_letters.dead_letter_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(DeadLetterSerializer(page, many=True).data)


class DeadLetterDetailApi(StaffApi):
    @extend_schema(operation_id="dead_letters_retrieve", responses={200: DeadLetterDetailSerializer, 404: OpenApiResponse(ErrorSerializer), **ERRORS})
    def get(self, request, pk: int):
        return Response(DeadLetterDetailSerializer(self.get_dead_letter(pk)).data)


class DeadLetterRedriveApi(StaffApi):
    @extend_schema(operation_id="dead_letters_redrive", request=None, responses={200: DeadLetterSerializer, 409: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer), **ERRORS})
    def post(self, request, pk: int):
        self.get_dead_letter(pk)
        return Response(DeadLetterSerializer(dead_letters.dead_letter_redrive(dead_letter_id=pk, actor=self.actor())).data)


class DeadLetterDiscardApi(StaffApi):
    @extend_schema(operation_id="dead_letters_discard", request=None, responses={200: DeadLetterSerializer, 409: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer), **ERRORS})
    def post(self, request, pk: int):
        self.get_dead_letter(pk)
        return Response(DeadLetterSerializer(dead_letters.dead_letter_discard(dead_letter_id=pk, actor=self.actor())).data)


class DeadLetterBulkRedriveApi(StaffApi):
    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=1000)
        group = serializers.CharField(required=False, max_length=300)
        all = serializers.BooleanField(required=False, default=False)

        def validate(self, attrs):
            if sum(bool(attrs.get(k)) for k in ("ids", "group", "all")) != 1:
                raise serializers.ValidationError("Give exactly one of ids, group or all=true.")
            return attrs

    class OutputSerializer(serializers.Serializer):
        redriven = serializers.ListField(child=serializers.IntegerField())
        refused = serializers.DictField(child=serializers.CharField())

    @extend_schema(operation_id="dead_letters_redrive_bulk", request=InputSerializer, responses={200: OutputSerializer, **ERRORS})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ids = data.get("ids") or list(
            dead_letters.dead_letter_list(status=DeadLetterStatus.ARCHIVED, group=data.get("group")).values_list("pk", flat=True)
        )
        result = dead_letters.dead_letter_redrive_many(dead_letter_ids=ids, actor=self.actor())
        return Response(self.OutputSerializer({"redriven": result.redriven, "refused": result.refused}).data)


class DeadLetterGroupsApi(StaffApi):
    class OutputSerializer(serializers.Serializer):
        group = serializers.CharField()
        task = serializers.CharField()
        failure = serializers.CharField()
        count = serializers.IntegerField()
        last_archived_at = serializers.DateTimeField()

    @extend_schema(operation_id="dead_letters_groups", responses={200: OutputSerializer(many=True), **ERRORS})
    def get(self, request):
        return Response(self.OutputSerializer(dead_letters.dead_letter_groups(), many=True).data)
