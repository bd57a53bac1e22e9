# One task per stage of orders/pipeline.py; the pipeline and its failure handling are explained in
# docs/pipeline.md "Pipeline" and "Failure handling". The base task (orders/stage_task.py) retries, fails and
# ends chains.
from typing import Any

from celery import shared_task
from django.conf import settings

from orders import services
from orders.models import Order
from orders.pipeline import ENRICH, FINALIZE, PROCESS, REFUND, Stage
from orders.stage_task import StageTask
from orders.webhooks.tasks import webhook_deliver  # noqa: F401  (registered with the stages' tasks)

# The stages that call the provider. Effective under the prefork pool; under threads the provider client's
# timeout bounds the call.
PROVIDER_CALL_LIMITS = {
    "soft_time_limit": settings.ENRICHMENT_SOFT_TIME_LIMIT,
    "time_limit": settings.ENRICHMENT_TIME_LIMIT,
}


def stage_task(stage: Stage, **options: Any) -> Any:
    return shared_task(bind=True, base=StageTask, name=stage.task, stage=stage, **options)


@stage_task(PROCESS)
def order_process(self: StageTask, order_id: str) -> Order:
    return services.order_process(order_id=order_id)


@stage_task(ENRICH, **PROVIDER_CALL_LIMITS)
def order_enrich(self: StageTask, order_id: str) -> Order:
    return services.order_enrich(order_id=order_id, attempt=self.request.retries)


@stage_task(FINALIZE)
def order_finalize(self: StageTask, order_id: str) -> Order:
    return services.order_finalize(order_id=order_id)


@stage_task(REFUND, **PROVIDER_CALL_LIMITS)
def order_refund(self: StageTask, order_id: str) -> Order:
    return services.order_refund(order_id=order_id, attempt=self.request.retries)
