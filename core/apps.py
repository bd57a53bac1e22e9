from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from core import logging as core_logging

        core_logging.configure_structlog()
        from core import worker_signals  # noqa: F401  (connects the Celery worker hooks)
