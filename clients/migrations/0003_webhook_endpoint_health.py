from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ('clients', '0002_webhook_endpoint'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookendpoint',
            name='consecutive_failures',
            field=models.PositiveIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='failing_since',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='disabled_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='webhookendpoint',
            name='disabled_reason',
            field=models.CharField(blank=True, db_default='', default='', editable=False, max_length=500),
        ),
        migrations.CreateModel(
            name='WebhookEndpointStatus',
            fields=[],
            options={
                'verbose_name': 'webhook endpoint status',
                'verbose_name_plural': 'webhook endpoint statuses',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('clients.webhookendpoint',),
        ),
    ]
