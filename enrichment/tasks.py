# The pipeline and its failure handling are explained in README "Pipeline" and "Failure handling".
from celery import shared_task
from django.conf import settings

from enrichment import services
from orders.pipeline import PipelineTask


@shared_task(
    bind=True,
    base=PipelineTask,
    name="enrichment.enrich",
    stage="enrich",
    # Effective under the prefork pool; under threads the provider client's timeout bounds the call.
    soft_time_limit=settings.ENRICHMENT_SOFT_TIME_LIMIT,
    time_limit=settings.ENRICHMENT_TIME_LIMIT,
)
def order_enrich(self, order_id: str) -> str:
    order = services.order_enrich(order_id=order_id, attempt=self.request.retries)
    self.after_stage(order)
    return order_id
