"""The pure parts of bench/database_ha.py and bench/connections.py, and the bench's database URL setting: no service."""

from bench import connections, database_ha
from bench.env import database_url

PG1 = "/usr/lib/postgresql/15/bin/postgres -D /work/main/var/db-ha-odb/pg1/data --port=5441"


def test_database_url_default_and_setting(monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    assert database_url("orders_bench") == "postgres://postgres@127.0.0.1:5432/orders_bench"
    monkeypatch.setenv("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5440/orders")
    assert database_url("orders_bench") == "postgres://postgres@127.0.0.1:5440/orders_bench"
    assert database_url("x", "postgresql://u:p@h:1?sslmode=disable") == "postgresql://u:p@h:1/x?sslmode=disable"


def test_classify_database_side():
    c = database_ha.classify
    assert c("postgres", 1, "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main") == (
        "postgres system (shared)"
    )
    assert c("postgres", 1, PG1) == "odb postgres pg1"
    assert c("postgres", 1, PG1.replace("odb", "odt")) is None  # the tests' instance is not ours
    assert c("postgres", 4170, "postgres: odb: walsender") is None  # a child: sampled with its postmaster's tree
    assert c("python3.11", 1, "/usr/bin/python3.11 -m patroni /work/main/var/db-ha-odb/pg2/patroni.yml") == (
        "odb patroni"
    )
    assert c("pgbouncer", 1, "/usr/sbin/pgbouncer /work/main/var/db-ha-odb/pgbouncer/pgbouncer.ini") == "odb pgbouncer"
    assert c("haproxy", 1, "haproxy -db -f /work/main/var/db-ha-odb/haproxy.cfg") == "odb haproxy"
    assert c("etcd", 1, "etcd --data-dir /work/main/var/db-ha-odb/etcd") == "odb etcd"
    assert c("haproxy", 1, "haproxy -f /etc/haproxy/haproxy.cfg") is None


def test_cpu_per_order_counts_only_the_variants_database_side():
    cost = {
        "web": {"cpu_s": 1.0},
        "worker_process": {"cpu_s": 2.0},
        "rabbitmq (shared)": {"cpu_s": 0.5},
        "postgres system (shared)": {"cpu_s": 3.0},
        "odb postgres pg1": {"cpu_s": 4.0},
        "odb pgbouncer": {"cpu_s": 1.0},
    }
    single = database_ha.cpu_ms_per_order(cost, 1000, "single")
    assert (single["total"], single["database"], single["app"], single["other_database_side"]) == (6.5, 3.0, 3.0, 5.0)
    ha = database_ha.cpu_ms_per_order(cost, 1000, "ha-pooled")
    assert (ha["total"], ha["database"], ha["app"], ha["other_database_side"]) == (8.5, 5.0, 3.0, 3.0)
    assert database_ha.cpu_ms_per_order(cost, 0, "single")["total"] is None


def test_pool_counts():
    pools = [
        {"database": "orders_bench_conn", "cl_active": "40", "cl_waiting": "2", "sv_active": "3", "sv_idle": "5",
         "sv_used": "1", "sv_tested": "0", "sv_login": "0"},
        {"database": "other", "cl_active": "9", "sv_idle": "9"},
    ]  # fmt: skip
    clients = [{"database": "orders_bench_conn"}] * 42 + [{"database": "other"}]
    got = connections.pool_counts(pools, clients, "orders_bench_conn")
    assert got == {"cl_active": 40, "cl_waiting": 2, "sv_total": 9, "sv_active": 3, "clients": 42}
