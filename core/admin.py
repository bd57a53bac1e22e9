"""Admin building blocks with no domain in them."""

import json
from typing import Any

from django.http import HttpRequest
from django.utils.html import format_html


class ReadOnlyAdminMixin:
    """Orders and dead letters change only through services (their invariants live there)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    if value is None:
        return "—"
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, default=str))
