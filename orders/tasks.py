# The pipeline and its failure handling are explained in README "Pipeline" and "Failure handling".
from celery import shared_task

from orders import services
from orders.pipeline import PipelineTask


@shared_task(bind=True, base=PipelineTask, name="orders.process", stage="process")
def order_process(self, order_id: str) -> str:
    order = services.order_process(order_id=order_id)
    self.after_stage(order)
    return order_id


@shared_task(bind=True, base=PipelineTask, name="orders.finalize", stage="finalize")
def order_finalize(self, order_id: str) -> str:
    order = services.order_finalize(order_id=order_id)
    self.after_stage(order)
    return order_id
