from django.urls import include, path, re_path

from bench.ceiling_app.views import CeilingInsertApi

urlpatterns = [
    re_path(r"^bench/ceiling/?$", CeilingInsertApi.as_view(), name="bench-ceiling"),
    path("", include("orders_project.urls")),
]
