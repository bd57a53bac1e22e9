from django.core.management.base import BaseCommand

from enrichment import controls


class Command(BaseCommand):
    help = "Show or change the simulated provider's runtime knobs (shared by all workers through Redis)."

    def add_arguments(self, parser):
        parser.add_argument("--failure-rate", type=float, help="random transient failure rate, 0..1")
        parser.add_argument("--fix", action="store_true", help="DOWN, FLAKY and HANG answer normally")
        parser.add_argument("--break", dest="unfix", action="store_true", help="undo --fix")
        parser.add_argument(
            "--refund",
            choices=controls.REFUND_MODES,
            help="refund calls: ok, flaky (2 transient failures), down (always transient), "
            "hang (past the timeout), reject (permanent)",
        )
        parser.add_argument("--reset", action="store_true", help="back to the environment's settings")

    def handle(self, *args, failure_rate, fix, unfix, refund, reset, **options):
        if failure_rate is not None and not 0 <= failure_rate <= 1:
            self.stderr.write("--failure-rate must be between 0 and 1")
            raise SystemExit(2)
        if reset:
            controls.controls_reset()
        fixed = True if fix else False if unfix else None
        if failure_rate is not None or fixed is not None or refund is not None:
            controls.controls_set(failure_rate=failure_rate, fixed=fixed, refund=refund)
        self.stdout.write(
            f"failure_rate={controls.failure_rate()} fixed={controls.outage_fixed()} refund={controls.refund_mode()}"
        )
