from django.apps import AppConfig


class CeilingAppConfig(AppConfig):
    name = "bench.ceiling_app"
    label = "bench_ceiling"
    default_auto_field = "django.db.models.BigAutoField"
