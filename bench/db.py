"""The driver's own connection to the run's PostgreSQL database, and the tables each phase empties."""

import time

ORDER_TABLES = (
    "orders_orderhistory",
    "orders_orderitem",
    "orders_orderenrichment",
    "orders_invoice",
    "orders_idempotencykey",
    "orders_outboxmessage",
    "orders_deadletter",
    "orders_order",
    "bench_ceiling_ceilingrow",
)


class Database:
    def __init__(self, name: str):
        self.name = name
        self._conn = None

    def connect(self):
        import psycopg

        from bench.env import database_url  # BENCH_DATABASE_URL's server, else 127.0.0.1:5432

        conn = psycopg.connect(database_url(self.name), connect_timeout=5)
        conn.autocommit = True
        return conn

    def sql(self, query: str, params=None) -> list:
        """One autocommit query on the driver's own connection (kept open: the bench polls a lot, and the
        shared server's connection slots are scarce). A lost or refused connection ('too many clients'
        while someone else's suite runs) is retried for up to 60 s before the run fails."""
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.connect()
                with self._conn.cursor() as cur:
                    cur.execute(query, params)
                    return cur.fetchall() if cur.description else []
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def truncate(self) -> None:
        import psycopg

        for attempt in range(5):
            try:
                self.sql(f"TRUNCATE {', '.join(ORDER_TABLES)} CASCADE")
                return
            except psycopg.Error:  # deadlock with a late relay batch: retry
                if attempt == 4:
                    raise
                time.sleep(1)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
