"""GET /orders pages by cursor: no COUNT(*), no OFFSET scan, served by the order indexes (orders/models.py)."""

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class OrderCursorPagination(CursorPagination):
    page_size_query_param = "page_size"

    def __init__(self, *, by_updated: bool = False):
        # Newest first; `updated_since` walks forward in change order, so a poller resumes where it stopped.
        self.ordering = "updated_at" if by_updated else "-created_at"
        self.page_size = settings.ORDERS_PAGE_SIZE
        self.max_page_size: int = settings.ORDERS_PAGE_SIZE_MAX

    def get_page_size(self, request):
        # DRF silently falls back to the default on a bad value; say so instead (as for every other
        # query parameter). Empty means not given.
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        # ASCII digits only: str.isdigit() is also true for '²' and other Unicode digits, which int() refuses (a 500).
        digits = raw.lstrip("0")
        if not (raw.isascii() and raw.isdigit()) or not digits:
            raise ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        # A longer number than any page is capped without converting it (int() refuses over 4300 digits).
        return self.max_page_size if len(digits) > 9 else min(int(digits), self.max_page_size)

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        # The position goes into a WHERE on a timestamp: a tampered one must be a 404 like any bad cursor,
        # not a ValidationError (500) when the query is built.
        if cursor is not None and cursor.position is not None:
            try:
                # drf-stubs say Cursor.position is an int; DRF decodes it from the query string (a str)
                valid = parse_datetime(cursor.position) is not None  # type: ignore[arg-type]
            except ValueError:
                valid = False
            if not valid:
                raise NotFound(self.invalid_cursor_message)
        return cursor
