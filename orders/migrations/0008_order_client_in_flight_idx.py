from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # The orders table is large: build the index without blocking POST /orders or the stages' writes.
    atomic = False

    dependencies = [
        ('orders', '0007_history_failed_index'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='order',
            index=models.Index(condition=models.Q(('status__in', ['pending', 'processing', 'refund_pending'])), fields=['client'], name='order_client_in_flight_idx'),
        ),
    ]
