"""Orders belong to the API client that created them; idempotency keys are scoped per client.

Existing orders and keys go to the built-in client `default` (id 1, created by clients.0001), whose key
is SECRET_TOKEN: every order so far was created with that token."""
import django.db.models.deletion
from django.db import migrations, models

IDEMPOTENCY_KEY_SQL = """
ALTER TABLE orders_idempotencykey ADD COLUMN client_id bigint NULL;
UPDATE orders_idempotencykey k SET client_id = o.client_id FROM orders_order o WHERE o.id = k.order_id;
ALTER TABLE orders_idempotencykey ALTER COLUMN client_id SET NOT NULL;
ALTER TABLE orders_idempotencykey ADD CONSTRAINT orders_idempotencykey_client_id_fk_clients_apiclient_id
    FOREIGN KEY (client_id) REFERENCES clients_apiclient (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE orders_idempotencykey DROP CONSTRAINT orders_idempotencykey_pkey;
DO $$ DECLARE idx text; BEGIN
    FOR idx IN SELECT indexname FROM pg_indexes WHERE tablename = 'orders_idempotencykey' AND indexname LIKE 'orders_idempotencykey_key_%_like' LOOP
        EXECUTE format('DROP INDEX %I', idx);
    END LOOP;
END $$;
ALTER TABLE orders_idempotencykey DROP CONSTRAINT orders_idempotencykey_order_id_key;
ALTER TABLE orders_idempotencykey ADD CONSTRAINT orders_idempotencykey_pkey PRIMARY KEY (order_id);
ALTER TABLE orders_idempotencykey ADD CONSTRAINT idempotency_key_per_client UNIQUE (client_id, key);
"""

# The kind of each failed order's last failure (business failures are the client's to read).
FAILURE_KIND_SQL = """
UPDATE orders_order o SET failure_kind = COALESCE((
    SELECT h.detail->>'kind' FROM orders_orderhistory h
    WHERE h.order_id = o.id AND h.event = 'failed' ORDER BY h.created_at DESC, h.id DESC LIMIT 1
), 'error')
WHERE o.status = 'failed';
"""


class Migration(migrations.Migration):

    dependencies = [
        ("clients", "0001_initial"),
        ("orders", "0002_dead_letters"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="client",
            field=models.ForeignKey(
                db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="orders", to="clients.apiclient"
            ),
        ),
        # Immediate: deferred FK checks left pending by an UPDATE forbid the ALTER TABLEs that follow.
        migrations.RunSQL(
            "SET CONSTRAINTS ALL IMMEDIATE; UPDATE orders_order SET client_id = 1 WHERE client_id IS NULL", migrations.RunSQL.noop
        ),
        migrations.AlterField(
            model_name="order",
            name="client",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="orders", to="clients.apiclient"),
        ),
        migrations.AddField(
            model_name="order",
            name="failure_kind",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.RunSQL(FAILURE_KIND_SQL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["client", "-created_at"], name="order_client_created_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["client", "updated_at"], name="order_client_updated_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["-created_at"], name="order_created_idx"),
        ),
        # The key's table changes its primary key (key -> order_id): Django's schema editor does not move a
        # primary key, so the database half is SQL and the state half says what the model now is.
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(IDEMPOTENCY_KEY_SQL)],
            state_operations=[
                migrations.AddField(
                    model_name="idempotencykey",
                    name="client",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="clients.apiclient"
                    ),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="idempotencykey",
                    name="order",
                    field=models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="idempotency_key",
                        serialize=False,
                        to="orders.order",
                    ),
                ),
                migrations.AlterField(model_name="idempotencykey", name="key", field=models.CharField(max_length=255)),
                migrations.AddConstraint(
                    model_name="idempotencykey",
                    constraint=models.UniqueConstraint(fields=("client", "key"), name="idempotency_key_per_client"),
                ),
            ],
        ),
    ]
