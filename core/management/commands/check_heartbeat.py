import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.heartbeat import age_seconds


class Command(BaseCommand):
    help = "Exit 0 when the heartbeat file was touched within --max-age seconds (a liveness probe)."
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--max-age", type=float, default=60)

    def handle(self, *args: Any, path: str, max_age: float, **options: Any) -> None:
        try:
            age = age_seconds(path)
        except FileNotFoundError:
            self.stderr.write(f"no heartbeat at {path}")
            sys.exit(1)
        if age > max_age:
            self.stderr.write(f"heartbeat is {age:.0f}s old (max {max_age:.0f}s)")
            sys.exit(1)
        self.stdout.write(f"alive ({age:.1f}s)")
