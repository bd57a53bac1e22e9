from django.db import models


class CeilingRow(models.Model):  # noqa: DJ008  bench-only table, never shown in an admin or a shell
    """One row per request to the ceiling view: the least an accepting endpoint can write."""

    customer_id = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
