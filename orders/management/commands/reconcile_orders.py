from django.conf import settings
from django.core.management.base import BaseCommand

from core.loop import GracefulLoop
from orders.services import orders_reconcile


class Command(BaseCommand):
    help = (
        "Find in-flight orders with no progress for STUCK_ORDER_SECONDS and re-publish their stage (docs/pipeline.md "
        '"Failure handling"). The relay does this every RECONCILE_INTERVAL_SECONDS; this command is for cron, '
        "a Kubernetes CronJob, or by hand. Safe beside other reconcilers (one pass at a time). It also archives "
        "the dead letter of a failed order whose message never reached the archive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=settings.RECONCILE_INTERVAL_SECONDS or 60.0)
        parser.add_argument("--heartbeat-file", default="")
        parser.add_argument(
            "--lookback",
            type=float,
            default=None,
            help="seconds back to look for lost dead letters (default RECONCILE_LOOKBACK_SECONDS; "
            "longer after the reconciler was down)",
        )

    def handle(self, *args, once, interval, heartbeat_file, lookback, **options):
        def one_pass() -> int:
            result = orders_reconcile(lookback_seconds=lookback)
            self.stdout.write(
                f"found={result.found} republished={sum(result.republished.values())} gave_up={result.gave_up} "
                f"dead_letters_recovered={result.dead_letters_recovered} "
                f"left_alone_for_backlog={','.join(result.skipped_backlog) or '-'} locked={result.locked}"
            )
            return 0  # always wait the interval before the next pass

        GracefulLoop("reconciler", heartbeat_file=heartbeat_file or None).run(
            one_pass, idle_seconds=interval, once=once
        )
