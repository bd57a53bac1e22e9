"""Staff rights by permission (docs/security.md "Security"): the custom permissions the admin's actions, /orders and
/ops check. Options only: no table changes (Django creates the Permission rows after migrate)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0008_order_client_in_flight_idx"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="deadletter",
            options={
                "ordering": ["-archived_at"],
                "permissions": [
                    ("redrive_deadletter", "Can redrive a dead letter (publish its message again)"),
                    ("discard_deadletter", "Can discard a dead letter"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("cancel_order", "Can cancel an order (a completed one is refunded)"),
                    ("view_every_order", "Can read every client's orders through the API"),
                    ("view_diagnostics", "Can read the backing services' diagnostics (/ops/diagnostics)"),
                ],
            },
        ),
    ]
