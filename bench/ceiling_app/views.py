from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.ceiling_app.models import CeilingRow
from clients.auth import IsClientOrStaff


class CeilingInsertApi(APIView):
    """The API ceiling: the same server, middleware, authentication (bearer token) and JSON parser as
    POST /orders, then one INSERT in autocommit and a 202. No validation, no transaction, no publish."""

    permission_classes = [IsClientOrStaff]

    def post(self, request):
        row = CeilingRow.objects.create(customer_id=str(request.data.get("customer_id", ""))[:64], payload=request.data)
        return Response({"id": row.id}, status=status.HTTP_202_ACCEPTED)
