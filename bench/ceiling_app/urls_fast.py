"""URLs of the fast API ceiling (bench/settings_ceiling_fast.py): the bare insert and /healthz, nothing else."""

from django.http import HttpResponse
from django.urls import re_path

from bench.ceiling_app.views import CeilingInsertApi


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    re_path(r"^bench/ceiling/?$", CeilingInsertApi.as_view(), name="bench-ceiling"),
    re_path(r"^healthz$", healthz, name="healthz"),
]
