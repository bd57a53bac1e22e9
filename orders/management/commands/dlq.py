import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError
from orders import dead_letters
from orders.models import DeadLetter, DeadLetterStatus


class Command(BaseCommand):
    help = (
        "Inspect and recover dead letters: list | show ID | redrive ID... "
        "| redrive --group G | redrive --all | discard ID..."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="archived dead letters and their failure groups")
        listing.add_argument("--status", choices=DeadLetterStatus.values, default=DeadLetterStatus.ARCHIVED)
        listing.add_argument("--all-statuses", action="store_true")
        listing.add_argument("--group")
        show = sub.add_parser("show", help="one dead letter with headers and body")
        show.add_argument("id", type=int)
        redrive = sub.add_parser("redrive", help="re-publish to the stage queue, retries reset, chain kept")
        redrive.add_argument("ids", type=int, nargs="*")
        redrive.add_argument("--group", help="every archived dead letter of a failure group (TASK:EXCEPTION)")
        redrive.add_argument("--all", action="store_true", help="every archived dead letter")
        discard = sub.add_parser("discard", help="mark as handled without redriving")
        discard.add_argument("ids", type=int, nargs="+")

    def handle(self, *args, action, **options):
        actor = f"cli:{getpass.getuser()}"
        getattr(self, f"_{action}")(actor=actor, **options)

    def _list(self, *, actor, status, all_statuses, group, **options):
        status = None if all_statuses else status
        self.stdout.write("failure groups:")
        for g in dead_letters.dead_letter_groups(status=status):
            self.stdout.write(f"  {g['count']:>5}  {g['group']}")
        rows = dead_letters.dead_letter_list(status=status, group=group)
        self.stdout.write(
            f"{'ID':>6}  {'STATUS':<9}  {'ARCHIVED':<19}  {'ORDER':<36}  {'TASK':<18}  {'REASON':<14}  ATTEMPTS  ERROR"
        )
        for d in rows:
            self.stdout.write(
                f"{d.pk:>6}  {d.status:<9}  {d.archived_at:%Y-%m-%d %H:%M:%S}  {d.order_id or '-'!s:<36}  "
                f"{d.task_name:<18}  {d.reason:<14}  {d.attempts:>8}  {d.exception}: {d.error_message[:80]}"
            )
        self.stdout.write(f"{rows.count()} dead letter(s)")

    def _show(self, *, actor, id, **options):
        d = self._get(id)
        fields = {
            "id": d.pk,
            "status": d.status,
            "order_id": str(d.order_id) if d.order_id else None,
            "task": d.task_name,
            "stage": d.stage,
            "queue": d.queue,
            "reason": d.reason,
            "exception": d.exception,
            "error": d.error_message,
            "attempts": d.attempts,
            "first_death_at": str(d.first_death_at),
            "last_death_at": str(d.last_death_at),
            "archived_at": str(d.archived_at),
            "redriven_at": str(d.redriven_at) if d.redriven_at else None,
            "redriven_by": d.redriven_by or None,
            "group": d.failure_group,
            "headers": d.headers,
            "body": d.body,
        }
        self.stdout.write(json.dumps(fields, indent=2, default=str))

    def _redrive(self, *, actor, ids, group, all, **options):
        if sum(bool(x) for x in (ids, group, all)) != 1:
            raise CommandError("give dead letter IDs, or --group G, or --all")
        if not ids:
            ids = list(
                dead_letters.dead_letter_list(status=DeadLetterStatus.ARCHIVED, group=group).values_list(
                    "pk", flat=True
                )
            )
        result = dead_letters.dead_letter_redrive_many(dead_letter_ids=ids, actor=actor)
        for pk in result.redriven:
            self.stdout.write(self.style.SUCCESS(f"redriven {pk}"))
        for pk, why in result.refused.items():
            self.stderr.write(f"refused {pk}: {why}")
        self.stdout.write(f"{len(result.redriven)} redriven, {len(result.refused)} refused")
        if result.refused and not result.redriven:
            raise CommandError("nothing was redriven")

    def _discard(self, *, actor, ids, **options):
        for pk in ids:
            try:
                dead_letters.dead_letter_discard(dead_letter_id=pk, actor=actor)
                self.stdout.write(f"discarded {pk}")
            except (ApplicationError, DeadLetter.DoesNotExist) as exc:
                raise CommandError(getattr(exc, "message", str(exc))) from exc

    def _get(self, pk: int) -> DeadLetter:
        try:
            return DeadLetter.objects.get(pk=pk)
        except DeadLetter.DoesNotExist:
            raise CommandError(f"no dead letter {pk}") from None
