"""The Celery app (orders_project/celery.py): JSON only on the wire, and workers dead-letter what they
cannot decode (core/celery_security.py)."""

from django.conf import settings


def test_celery_accepts_and_writes_json_only():
    from orders_project.celery import app

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"
    # what the app actually runs with, not only what settings.py says
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.result_accept_content in (None, ["json"])  # None: falls back to accept_content
    assert (app.conf.task_serializer, app.conf.result_serializer, app.conf.event_serializer) == ("json", "json", "json")


def test_workers_dead_letter_messages_they_cannot_decode():
    from core.celery_security import RejectUndecodableMessages
    from orders_project.celery import app

    assert RejectUndecodableMessages in app.steps["consumer"]
