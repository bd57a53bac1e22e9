import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")

# core/celery_cluster.py: producers whose publish retry takes a new channel (failover on a broker cluster).
app = Celery("orders_project", amqp="core.celery_cluster:AMQP")

# Using a string here means the worker doesn't have to serialize the settings object;
# the CELERY_ namespace means every Celery setting is CELERY_<NAME> in settings.py.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
from core.celery_security import RejectUndecodableMessages  # noqa: E402  (refused messages go to the DLQ)

app.steps["consumer"].add(RejectUndecodableMessages)


@setup_logging.connect
def _configure_logging(**kwargs) -> None:
    # Workers log through settings.LOGGING, so their lines look like the web's.
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
