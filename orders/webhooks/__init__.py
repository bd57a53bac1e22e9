"""Webhooks: a client with an endpoint (clients.WebhookEndpoint) gets one POST per terminal event of each of
its orders (completed, failed, cancelled, refunded), per the Standard Webhooks specification.

- models.py     WebhookEvent (the webhooks' outbox: written in the state change's transaction) and
                WebhookDelivery (every attempt)
- events.py     recording an event with the state change (SQL for finalize's statement, a statement for the
                other writers), its outbox row; re-opening a dead one for a redrive
- signing.py    the body and the Standard Webhooks headers (the `standardwebhooks` library signs)
- delivery.py   one attempt: URL safety, HTTP with timeouts and no redirects, what is retried, the record
- tasks.py      the Celery task on the `webhooks` queue (DELIVER_WEBHOOK in orders/pipeline.py): retries
                with backoff and jitter or Retry-After, dead-lettered when exhausted or refused
- selectors.py  an order's events and attempts (staff's GET /orders/{id}), the backlog gauge
- admin.py      events with their attempts
Modules are imported by path (nothing here): orders.models loads models.py.
"""
