"""The PostgreSQL store (port v2): psycopg 3 with a ``psycopg_pool`` connection pool.

``postgresql://user:password@host:port/dbname?schema=NAME`` (also ``postgres://``). libpq URI
parameters (``sslmode``, ``connect_timeout``, ...) pass through; ``schema`` (default
``public``) and ``pool_size`` (default 4) are the adapter's own and are taken off the URL
before it reaches libpq. The password never appears in a message: :attr:`PostgresStore.url`
masks it.

* One transaction per :meth:`commit` at READ COMMITTED. Every update is ``UPDATE ... WHERE id
  = %s AND version = %s``: a row count of 0 is a conflict (or not found); a create that clashes
  on a primary key is a conflict naming the record. A concurrent writer of the same row waits
  for the first to commit and then finds the version moved on; writers of different rows never
  wait for each other. Serialization failures and deadlocks are retried here a few times (the
  write is replayable: it is conditional on the versions read) before they become "busy".
* Scans for export and verification run in one REPEATABLE READ, READ ONLY transaction (one
  snapshot) through a server-side cursor, so memory stays flat.
* :meth:`claim_deliveries` leases pending reminders with ``FOR UPDATE SKIP LOCKED``: daemons on
  many machines never wait for each other nor claim the same reminder.
* Safe behind PgBouncer in transaction mode: no server-side prepared statements
  (``prepare_threshold=None``), no session state (no ``SET``, no temporary tables, no
  session advisory locks; the schema is named in every statement, never by ``search_path``).

Driver errors are translated in one place, :data:`runtime.store.postgres_schema.ERRORS`, by
SQLSTATE.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlparse, urlunparse

from runtime.errors import (
    ConflictError,
    DataopsError,
    InputError,
    NotFoundError,
    StoreUnreachable,
    ThrottledError,
)
from runtime.model import (
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    Record,
    Reminder,
    Seal,
    Task,
    kind_of,
    record_id,
    record_version,
)
from runtime.store.base import (
    TRANSIENT_KINDS,
    Changes,
    Page,
    R,
    Row,
    by_table,
    check_filters,
    check_size,
    decode,
    decode_list_cursor,
    decode_or_raise,
    decode_rows,
    due_cursor,
    encode_cursor,
    get_or_raise,
    micros,
    row_of,
)
from runtime.store.postgres_schema import (
    INSTANT_COLUMNS,
    LIST_ORDER,
    MIGRATIONS,
    SCAN_ORDER,
    SCHEMA_VERSION,
    TABLES,
    columns_of,
    from_micros,
    translate,
)

Finder = Callable[[type[Any], str], Any]
"""``find(kind, record_id)``: a read inside a claim's transaction."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RETRIES = 5
"""Attempts of a write that the server rolled back for a serialization failure or deadlock."""
CHECK_AFTER_S = 5.0
"""A pooled connection idle longer than this is checked (one empty query) before it is handed
out, so connections a server restart or a failover broke are replaced, not reported; a busy
process pays no check. A read on a connection found broken is retried once."""
POOL_WAIT_S = 10.0
"""How long a command waits for a pooled connection before it reports busy (or, if no server
answers, unreachable)."""
_LOCK_KEY = 0x64617461_6F7073  # "dataops": the advisory lock that serialises schema changes


def parse_url(url: str) -> tuple[str, str, int, str]:
    """``(conninfo for libpq, schema, pool size, url with the password masked)``.

    :raises InputError: not a PostgreSQL URL, or a bad ``schema`` / ``pool_size``.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres") or not parsed.hostname:
        raise InputError(f"store URL {url!r}: write a PostgreSQL store as "
                         "postgresql://user:password@host:port/dbname")
    query = parse_qsl(parsed.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in ("schema", "pool_size")}
    schema = own.get("schema", "public")
    if not _SCHEMA_NAME.match(schema):
        raise InputError(f"store URL: schema={schema!r} must be a lower-case SQL name "
                         "(letters, digits, _)")
    try:
        pool = int(own.get("pool_size", "4"))
    except ValueError:
        pool = 0
    if not 1 <= pool <= 100:
        raise InputError(f"store URL: pool_size={own.get('pool_size')!r} must be a whole number "
                         "from 1 to 100")
    rest = urlencode([(k, v) for k, v in query if k not in own], quote_via=quote)
    conninfo = urlunparse(parsed._replace(scheme="postgresql", query=rest))
    shown = parsed
    if parsed.password is not None:
        netloc = parsed.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        shown = parsed._replace(netloc=f"{user}:***@{netloc[1]}")
    return conninfo, schema, pool, urlunparse(shown)


class _Reader:
    """Scans inside one REPEATABLE READ transaction (one snapshot), by server-side cursor."""

    def __init__(self, store: PostgresStore, conn: Any) -> None:
        self.store, self.conn = store, conn
        self._n = 0

    def scan(self, kind: type[R]) -> Iterator[R]:
        for rid, doc in self.scan_docs(kind):
            rec = decode(kind, rid, doc, self.store.quarantined)
            if rec is not None:
                yield rec

    def scan_docs(self, kind: type[Record]) -> Iterator[tuple[str, str]]:
        """``(ID, doc as text)`` of every record of ``kind`` in scan order (the export decodes
        them in its worker processes)."""
        name = kind.record_kind  # type: ignore[attr-defined]
        table, key = TABLES[name]
        order = SCAN_ORDER.get(name, key)
        self._n += 1
        with self.store._driver():
            cur = self.conn.cursor(name=f"dataops_scan_{self._n}")
            cur.itersize = 1000
            cur.execute(f"SELECT {key}, doc::text FROM {self.store._t(table)} "
                        f"ORDER BY {order}")
            try:
                yield from cur
            finally:
                cur.close()


class PostgresStore:
    """See the module docstring. Safe to share between the threads of one process."""

    max_items: int | None = None
    bulk_rows = "postgres"
    """The rows :meth:`bulk_insert` takes: ``runtime.export_lines.check_batch`` mode 'postgres'."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0, migrate: bool = False,
                 pool_wait: float = POOL_WAIT_S, check_after: float = CHECK_AFTER_S) -> None:
        self._check_after = check_after
        conninfo, self.schema, pool_size, self.url = parse_url(url)
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise InputError(f"store {self.url!r} needs psycopg 3: "
                             "pip install 'dataops-runtime[postgres]'") from None
        self._psycopg = psycopg
        self._conninfo = conninfo
        self.quarantined: dict[str, str] = {}
        with self._driver():  # one direct connection first: a bad URL fails now, named
            psycopg.connect(conninfo, connect_timeout=max(1, int(connect_timeout))).close()
        self._s = f'"{self.schema}"'
        self._pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=1, max_size=pool_size, open=False, timeout=pool_wait,
            # autocommit: a read is one statement, no BEGIN/COMMIT; writes and snapshots open
            # their transaction explicitly (_tx)
            kwargs={"prepare_threshold": None, "autocommit": True},
            check=self._check, reset=self._returned,
            name=f"dataops-{self.schema}")
        try:
            with self._driver():
                self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as e:
            self._pool.close()
            raise StoreUnreachable(self.url, f"cannot reach the database server within "
                                   f"{connect_timeout:g} s; check that it runs and the URL "
                                   f"(host, port, user, sslmode) ({e})") from None
        except BaseException:
            self._pool.close()
            raise
        try:
            if migrate:
                self.migrate()
            self._ensure_schema(create=True)
        except BaseException:
            self._pool.close()
            raise

    # -- connections, errors, schema ---------------------------------------------------------
    def _t(self, table: str) -> str:
        return f"{self._s}.{table}"

    @contextmanager
    def _driver(self) -> Iterator[None]:
        import psycopg_pool

        try:
            yield
        except DataopsError:
            raise
        except psycopg_pool.PoolTimeout as e:
            try:  # busy, or no server to connect to? One direct attempt tells them apart.
                self._psycopg.connect(self._conninfo, connect_timeout=3).close()
            except self._psycopg.Error as down:
                raise translate(self.url, down) from e
            raise ThrottledError(f"{self.url}: every pooled connection is busy ({e})") from e
        except self._psycopg.Error as e:
            raise translate(self.url, e) from e

    def _check(self, conn: Any) -> None:
        idle = time.monotonic() - getattr(conn, "_dataops_returned", 0.0)
        if idle >= self._check_after:
            conn.execute("")

    @staticmethod
    def _returned(conn: Any) -> None:
        conn._dataops_returned = time.monotonic()

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection in autocommit: for one statement."""
        with self._driver(), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A pooled connection inside one transaction: committed when the block ends, rolled
        back when it raises."""
        with self._driver(), self._pool.connection() as conn, conn.transaction():
            yield conn

    def _ensure_schema(self, *, create: bool) -> None:
        version = self.schema_version()
        if version is None and create:
            version = self.migrate()
        if version != SCHEMA_VERSION:
            newer = (version or 0) > SCHEMA_VERSION
            raise InputError(
                f"store {self.url!r} has schema {version}; this runtime reads schema "
                f"{SCHEMA_VERSION}: " + ("upgrade dataops" if newer else "run dataops store migrate"))

    def schema_version(self) -> int | None:
        """The schema version stored in the schema's meta table; None if there is none."""
        with self._conn() as conn:
            found = conn.execute("SELECT to_regclass(%s)", (f"{self._s}.meta",)).fetchone()[0]
            if found is None:
                return None
            row = conn.execute(f"SELECT value FROM {self._t('meta')} "
                               "WHERE key = 'schema_version'").fetchone()
        return None if row is None else int(row[0])

    def migrate(self) -> int:
        """Apply every migration after the stored version, each in one transaction under an
        advisory lock (many processes may start at once); the version reached.

        :raises InputError: the stored schema is newer than this runtime knows.
        """
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._s}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self._t('meta')} "
                         "(key text PRIMARY KEY, value text NOT NULL)")
            row = conn.execute(f"SELECT value FROM {self._t('meta')} "
                               "WHERE key = 'schema_version'").fetchone()
            current = 0 if row is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise InputError(f"store {self.url!r} has schema {current}; this runtime knows "
                                 f"schema {SCHEMA_VERSION} at most: upgrade dataops")
            for version, ddl in MIGRATIONS:
                if version > current:
                    for statement in ddl.replace("{s}", self._s).split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    current = version
            conn.execute(f"INSERT INTO {self._t('meta')} VALUES ('schema_version', %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(current),))
        return current

    # -- reads -------------------------------------------------------------------------------
    def _all(self, sql: str, args: tuple[object, ...] | list[object] = ()) -> list[Any]:
        tries = self._pool.max_size + 1  # every pooled connection may have been dropped
        for attempt in range(1, tries + 1):
            with self._driver(), self._pool.connection() as conn:
                try:
                    return conn.execute(sql, args).fetchall()
                except self._psycopg.OperationalError as e:
                    state = getattr(e, "sqlstate", None) or ""
                    dropped = conn.broken or state.startswith(("08", "57P"))
                    if attempt == tries or not dropped:
                        raise
                    # a connection the server dropped: the pool discards it; a read may retry
        raise AssertionError("unreachable")  # pragma: no cover

    def _decoded(self, kind: type[R], rows: list[Any]) -> list[R]:
        return decode_rows(kind, rows, self.quarantined)

    def find(self, kind: type[R], record_id: str) -> R | None:
        table, key = TABLES[kind.record_kind]  # type: ignore[attr-defined]
        rows = self._all(f"SELECT doc::text FROM {self._t(table)} WHERE {key} = %s", (record_id,))
        return decode_or_raise(kind, record_id, rows[0][0], self.quarantined) if rows else None

    def get(self, kind: type[R], record_id: str) -> R:
        return get_or_raise(self, kind, record_id)

    def task_and_bundle(self, task_id: str) -> tuple[Task, Bundle]:
        """A task and its bundle in one statement (a task command's reads, one round trip).

        :raises NotFoundError, RecordUnreadable:"""
        rows = self._all(f"SELECT t.doc::text, b.bundle_id, b.doc::text FROM {self._t('tasks')} t "
                         f"JOIN {self._t('bundles')} b ON b.bundle_id = t.bundle_id "
                         "WHERE t.task_id = %s", (task_id,))
        if not rows:
            alone = self.get(Task, task_id)  # not found, or (impossible with the FK) no bundle
            return alone, self.get(Bundle, alone.bundle_id)
        task_doc, bundle_id, bundle_doc = rows[0]
        return (decode_or_raise(Task, task_id, task_doc, self.quarantined),
                decode_or_raise(Bundle, bundle_id, bundle_doc, self.quarantined))

    def tasks_of(self, bundle_id: str) -> list[Task]:
        rows = self._all(f"SELECT task_id, doc::text FROM {self._t('tasks')} WHERE bundle_id = %s "
                         "ORDER BY position, task_id", (bundle_id,))
        return self._decoded(Task, rows)

    def page(self, kind: type[R], *, where: dict[str, str] | None = None, limit: int = 100,
             cursor: str | None = None) -> Page[R]:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        table, key = TABLES[name]
        order = LIST_ORDER.get(name, (key,))
        clauses = [f"{col} = %s" for col in where]
        args: list[object] = list(where.values())
        if cursor:
            after = decode_list_cursor(name, cursor)
            clauses.append(f"({', '.join(order)}) > ({', '.join(['%s'] * len(order))})")
            args += [from_micros(v) if col in INSTANT_COLUMNS else v
                     for col, v in zip(order, after, strict=True)]
        sql = (f"SELECT {', '.join(order)}, {key}, doc::text FROM {self._t(table)}"
               + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
               + f" ORDER BY {', '.join(order)} LIMIT %s")
        rows = self._all(sql, (*args, limit + 1))
        items = self._decoded(kind, [r[-2:] for r in rows[:limit]])
        more = len(rows) > limit
        if not (more and limit):
            return Page(items, None)
        last = rows[limit - 1][:len(order)]
        return Page(items, encode_cursor([micros(v) if col in INSTANT_COLUMNS else v
                                          for col, v in zip(order, last, strict=True)]))

    def count(self, kind: type[R], *, where: dict[str, str] | None = None) -> int | None:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        table, _ = TABLES[name]
        cond = " AND ".join(f"{col} = %s" for col in where)
        rows = self._all(f"SELECT count(*) FROM {self._t(table)}"
                         + (f" WHERE {cond}" if cond else ""), tuple(where.values()))
        return int(rows[0][0])

    def audit_events(self, entity_id: str) -> list[AuditEvent]:
        rows = self._all(f"SELECT event_id, doc::text FROM {self._t('audit_events')} "
                         "WHERE entity_id = %s ORDER BY seq", (entity_id,))
        return self._decoded(AuditEvent, rows)

    def due_for_reminders(self, at: datetime, limit: int,
                          cursor: str | None = None) -> Page[Task | Bundle]:
        after = due_cursor(cursor)
        rows: list[tuple[int, str, Any, Any]] = []
        for kind, table, key in ((Bundle, "bundles", "bundle_id"), (Task, "tasks", "task_id")):
            sql = (f"SELECT next_reminder_at, {key}, doc::text FROM {self._t(table)} "
                   "WHERE next_reminder_at <= %s"
                   + (f" AND (next_reminder_at, {key}) > (%s, %s)" if after else "")
                   + f" ORDER BY next_reminder_at, {key} LIMIT %s")
            args = (at, *((from_micros(after[0]), after[1]) if after else ()), limit + 1)
            rows += [(micros(ts) or 0, rid, doc, kind) for ts, rid, doc in self._all(sql, args)]
        rows.sort(key=lambda r: (r[0], r[1]))
        taken = rows[:limit]
        found: list[Task | Bundle] = [r for us, rid, doc, kind in taken
                                      if (r := decode(kind, rid, doc, self.quarantined))]
        more = len(rows) > limit
        return Page(found, encode_cursor(taken[-1][:2]) if more else None)

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        rows = self._all(f"SELECT reminder_id, doc::text FROM {self._t('reminders')} "
                         "WHERE deliver_after <= %s ORDER BY deliver_after, reminder_id LIMIT %s",
                         (at, limit))
        return self._decoded(Reminder, rows)

    def pending_digest_deliveries(self, at: datetime, limit: int) -> list[Digest]:
        rows = self._all(f"SELECT digest_id, doc::text FROM {self._t('digests')} "
                         "WHERE deliver_after <= %s ORDER BY deliver_after, digest_id LIMIT %s",
                         (at, limit))
        return self._decoded(Digest, rows)

    def pending_digests(self, at: datetime, limit: int) -> list[Reminder]:
        rows = self._all(f"SELECT reminder_id, doc::text FROM {self._t('reminders')} "
                         "WHERE digest_after <= %s ORDER BY digest_after, reminder_id LIMIT %s",
                         (at, limit))
        return self._decoded(Reminder, rows)

    def claim_deliveries(self, at: datetime, limit: int,
                         lease: Callable[[list[Reminder]], Changes]) -> list[Reminder]:
        """Lock up to ``limit`` pending reminders no other daemon holds (``FOR UPDATE SKIP
        LOCKED``), let ``lease`` say what to write for them, write it in the same transaction,
        and return the page. Another daemon claiming at the same moment gets other reminders."""
        return self._claim_locked(
            Reminder, f"SELECT reminder_id, doc::text FROM {self._t('reminders')} "
            "WHERE deliver_after <= %s ORDER BY deliver_after, reminder_id LIMIT %s", (at, limit),
            lambda page, _: lease(page), "deliveries")

    def claimable_jobs(self, at: datetime, kinds: Sequence[str] | None,
                       limit: int) -> list[AssistantJob]:
        return self._decoded(AssistantJob, self._all(*self._jobs_sql(at, kinds, limit)))

    def claim_jobs(self, at: datetime, kinds: Sequence[str] | None, limit: int,
                   claim: Callable[[list[AssistantJob], Finder], Changes]) -> list[AssistantJob]:
        """Lock up to ``limit`` claimable jobs no other worker is claiming (``FOR UPDATE SKIP
        LOCKED``), let ``claim`` say what to write (reading what it needs through the finder it
        is given: the transaction's own connection, so a claim takes one pooled connection),
        write it in the same transaction, and return the page: workers claiming at once never
        wait for, nor get, the same job."""
        sql, args = self._jobs_sql(at, kinds, limit)
        return self._claim_locked(AssistantJob, sql, args, claim, "jobs")

    def _jobs_sql(self, at: datetime, kinds: Sequence[str] | None,
                  limit: int) -> tuple[str, tuple[object, ...]]:
        kind_sql = " AND kind = ANY(%s)" if kinds else ""
        return (f"SELECT assistant_job_id, doc::text FROM {self._t('assistant_jobs')} "
                f"WHERE claimable_at <= %s{kind_sql} ORDER BY claimable_at, assistant_job_id "
                "LIMIT %s", (at, *([list(kinds)] if kinds else []), limit))

    def _claim_locked(self, kind: type[R], select: str, args: tuple[object, ...],
                      build: Callable[[list[R], Finder], Changes], what: str) -> list[R]:
        """``select ... FOR UPDATE SKIP LOCKED``, then what ``build`` says to write for the
        rows it locked, in one transaction (replayed when the server rolls it back)."""
        errors = self._psycopg.errors
        for attempt in range(RETRIES):
            with self._driver():
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        rows = conn.execute(f"{select} FOR UPDATE SKIP LOCKED", args).fetchall()
                        page = self._decoded(kind, rows)

                        def find(k: type[Any], rid: str, conn: Any = conn) -> Any:
                            table, key = TABLES[k.record_kind]
                            got = conn.execute(f"SELECT doc::text FROM {self._t(table)} "
                                               f"WHERE {key} = %s", (rid,)).fetchall()
                            return decode_or_raise(k, rid, got[0][0], self.quarantined) \
                                if got else None

                        changes = build(page, find)
                        check_size(self, changes)
                        self._write(conn, changes)
                    return page
                except errors.TransactionRollback:
                    self._backoff(attempt)
        raise ThrottledError(f"{self.url}: claiming {what} kept failing to serialize")

    def latest_seal(self) -> Seal | None:
        rows = self._all(f"SELECT seal_id, doc::text FROM {self._t('seals')} "
                         "ORDER BY at DESC, seal_id DESC LIMIT 1")
        found = self._decoded(Seal, rows)
        return found[0] if found else None

    @contextmanager
    def snapshot(self) -> Iterator[_Reader]:
        with self._tx() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _Reader(self, conn)

    def is_empty(self) -> bool:
        union = " UNION ALL ".join(f"(SELECT 1 FROM {self._t(table)} LIMIT 1)"
                                   for kind, (table, _) in TABLES.items()
                                   if kind not in TRANSIENT_KINDS)
        return not self._all(f"SELECT 1 FROM ({union}) AS anything LIMIT 1")

    def purge_idempotency_keys(self, before: datetime, limit: int = 1000) -> int:
        table = self._t("idempotency_keys")
        with self._tx() as conn:
            cur = conn.execute(f"DELETE FROM {table} WHERE key_id IN (SELECT key_id FROM {table} "
                               "WHERE expires_at <= %s LIMIT %s)", (before, limit))
            return int(cur.rowcount)

    # -- writes ------------------------------------------------------------------------------
    def commit(self, changes: Changes) -> None:
        check_size(self, changes)
        errors = self._psycopg.errors
        for attempt in range(RETRIES):
            with self._driver():
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        self._write(conn, changes)
                    return
                except errors.TransactionRollback:  # 40001, 40P01: replayable (conditional)
                    self._backoff(attempt)
                except errors.UniqueViolation as e:
                    ids = [record_id(r) for r in [*changes.creates, *changes.events]]
                    raise ConflictError(self._clashing(ids, changes), "it exists already") from e
                except errors.ForeignKeyViolation as e:
                    raise InputError(f"store {self.url}: a record refers to a parent that does "
                                     f"not exist ({_detail(e)}); nothing was written") from e
        raise ThrottledError(f"{self.url}: the write kept failing to serialize ({RETRIES} tries)")

    def import_atomically(self, batches: Iterable[Changes]) -> None:
        """Insert every batch in one transaction (an import): all of them, or none."""
        errors = self._psycopg.errors
        with self._driver():
            try:
                with self._pool.connection() as conn, conn.transaction():
                    for changes in batches:
                        self._write(conn, changes)
            except errors.UniqueViolation as e:
                raise ConflictError(_detail(e), "it exists already") from e
            except errors.ForeignKeyViolation as e:
                raise InputError(f"store {self.url}: a record refers to a parent that does "
                                 f"not exist ({_detail(e)}); nothing was written") from e

    @staticmethod
    def _backoff(attempt: int) -> None:
        # a rolled-back transaction is retried after a short, growing pause; not a clock the
        # tests wait on (they never make the server roll back)
        time.sleep(0.005 * (2 ** attempt))

    def _write(self, conn: Any, changes: Changes) -> None:
        with conn.cursor() as cur:
            for rec, expected in changes.updates:  # first: a lost race names the record
                self._update(cur, rec, expected, changes)
            self._insert_rows(cur, [row_of(rec, columns_of(rec), changes.doc(rec))
                                    for rec in [*changes.creates, *changes.events]])

    def _insert_rows(self, cur: Any, rows: Sequence[Row]) -> None:
        for (table, names), rows_of in by_table(rows).items():
            marks = ", ".join("%s::jsonb" if n == "doc" else "%s" for n in names)
            cur.executemany(f"INSERT INTO {self._t(table)} ({', '.join(names)}) "
                            f"VALUES ({marks})", rows_of)

    @contextmanager
    def bulk_insert(self) -> Iterator[Callable[[Sequence[Row]], None]]:
        """One transaction for an import of rows that ``runtime.export_lines`` made (table,
        columns, values, parents before children): what it yields inserts a batch of them;
        all are committed at the end, or none if anything fails or the process dies.

        :raises ConflictError: an ID is there already (or twice).
        """
        errors = self._psycopg.errors
        with self._driver():
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    yield partial(self._insert_rows, cur)
            except errors.UniqueViolation as e:
                raise ConflictError(_detail(e), "it exists already") from e
            except errors.ForeignKeyViolation as e:
                raise InputError(f"store {self.url}: a record refers to a parent that does "
                                 f"not exist ({_detail(e)}); nothing was written") from e

    def _update(self, cur: Any, rec: Record, expected: int, changes: Changes) -> None:
        table, key = TABLES[kind_of(rec)]
        cols = {**columns_of(rec), "version": record_version(rec), "doc": changes.doc(rec)}
        sets = ", ".join(f"{c} = %s::jsonb" if c == "doc" else f"{c} = %s" for c in cols)
        cur.execute(f"UPDATE {self._t(table)} SET {sets} WHERE {key} = %s AND version = %s",
                    (*cols.values(), record_id(rec), expected))
        if cur.rowcount == 1:
            return
        row = cur.execute(f"SELECT version FROM {self._t(table)} WHERE {key} = %s",
                          (record_id(rec),)).fetchone()
        if row is None:
            raise NotFoundError(kind_of(rec), record_id(rec))
        raise ConflictError(record_id(rec), f"version is {row[0]}, expected {expected}")

    def _clashing(self, candidates: list[str], changes: Changes) -> str:
        """Which of ``candidates`` made an insert fail (a duplicate, or one stored already)."""
        seen: set[str] = set()
        for rid in candidates:
            if rid in seen:
                return rid
            seen.add(rid)
        for rec in [*changes.creates, *changes.events]:
            table, key = TABLES[kind_of(rec)]
            if self._all(f"SELECT 1 FROM {self._t(table)} WHERE {key} = %s", (record_id(rec),)):
                return record_id(rec)
        return candidates[0] if candidates else "?"

    def close(self) -> None:
        self._pool.close()

    # -- test hooks --------------------------------------------------------------------------
    def _execute(self, sql: str, args: tuple[object, ...] = ()) -> int:
        """Run one statement in its own transaction (``{s}`` is the schema); its row count."""
        with self._conn() as conn:
            return conn.execute(sql.replace("{s}", self._s), args).rowcount


def _detail(e: Exception) -> str:
    diag = getattr(e, "diag", None)
    return (getattr(diag, "message_detail", None) or str(e)).strip().splitlines()[0]


__all__ = ["PostgresStore", "parse_url"]
