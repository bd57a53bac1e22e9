"""Webhook endpoints' health: which fail or were disabled, and re-enabling one (docs/pipeline.md "Webhooks")."""

from django.core.management.base import BaseCommand, CommandError

from clients.models import WebhookEndpoint
from orders.webhooks.delivery import webhook_endpoint_enable
from orders.webhooks.models import WebhookEvent, WebhookEventStatus


class Command(BaseCommand):
    help = "list: endpoints with their state; enable CLIENT: re-enable a client's endpoint and send its waiting events."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every endpoint: state, failures in a row, since when, events waiting")
        enable = sub.add_parser("enable", help="re-enable the client's endpoint; its waiting events are sent")
        enable.add_argument("client", help="the API client's name")

    def handle(self, *args, **options):
        if options["action"] == "enable":
            endpoint = WebhookEndpoint.objects.filter(client__name=options["client"]).first()
            if endpoint is None:
                raise CommandError(f"client {options['client']!r} has no webhook endpoint")
            published = webhook_endpoint_enable(endpoint=endpoint)
            self.stdout.write(f"{options['client']}: enabled, {published} waiting event(s) sent again")
            return
        for endpoint in WebhookEndpoint.objects.select_related("client").order_by("client__name"):
            state = "disabled" if endpoint.disabled_at else "failing" if endpoint.consecutive_failures else "ok"
            waiting = WebhookEvent.objects.filter(client_id=endpoint.client_id, status=WebhookEventStatus.PENDING)
            line = (
                f"{endpoint.client.name}\t{state}\t{endpoint.url}\tfailures in a row: {endpoint.consecutive_failures}"
                f"\twaiting: {waiting.count()}"
            )
            if endpoint.disabled_at:
                line += f"\tdisabled at {endpoint.disabled_at:%Y-%m-%d %H:%M:%S}: {endpoint.disabled_reason}"
            self.stdout.write(line)
