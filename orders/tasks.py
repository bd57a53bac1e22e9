# One task per stage of orders/pipeline.py; the pipeline and its failure handling are explained in
# README "Pipeline" and "Failure handling". The base task (orders/stage_task.py) retries, fails and ends chains.
from celery import shared_task
from django.conf import settings

from orders import services
from orders.models import Order
from orders.pipeline import ENRICH, FINALIZE, PROCESS, REFUND
from orders.stage_task import StageTask
from orders.webhooks.tasks import webhook_deliver  # noqa: F401  (registered with the stages' tasks)


@shared_task(bind=True, base=StageTask, name=PROCESS.task, stage=PROCESS)
def order_process(self: StageTask, order_id: str) -> Order:
    return services.order_process(order_id=order_id)


@shared_task(
    bind=True,
    base=StageTask,
    name=ENRICH.task,
    stage=ENRICH,
    # Effective under the prefork pool; under threads the provider client's timeout bounds the call.
    soft_time_limit=settings.ENRICHMENT_SOFT_TIME_LIMIT,
    time_limit=settings.ENRICHMENT_TIME_LIMIT,
)
def order_enrich(self: StageTask, order_id: str) -> Order:
    return services.order_enrich(order_id=order_id, attempt=self.request.retries)


@shared_task(bind=True, base=StageTask, name=FINALIZE.task, stage=FINALIZE)
def order_finalize(self: StageTask, order_id: str) -> Order:
    return services.order_finalize(order_id=order_id)


@shared_task(
    bind=True,
    base=StageTask,
    name=REFUND.task,
    stage=REFUND,
    soft_time_limit=settings.ENRICHMENT_SOFT_TIME_LIMIT,
    time_limit=settings.ENRICHMENT_TIME_LIMIT,
)
def order_refund(self: StageTask, order_id: str) -> Order:
    return services.order_refund(order_id=order_id, attempt=self.request.retries)
