"""Round trips and items written per command on every store, and what a DynamoDB sweep reads
with 100k open tasks of which 100 are due: counts, not timings (``stores.py`` parts 4 and 5).

Everything DynamoDB runs against one local endpoint started for the run: ``tests/dynamo.py``'s
``MotoServer`` (moto's WSGI app on 127.0.0.1, served one request at a time by werkzeug, fake
credentials), with boto3 over HTTP and ``runtime.store.dynamodb.DynamoStore`` unchanged.

Part 4, per command and store. The same engine commands run on a MemoryStore, a SqliteStore
(a temp file), a PostgresStore (a fresh ``?schema=`` on the server ``stores.py`` started, or on
a ``PgServer`` of its own when run alone) and a DynamoStore (a fresh table, 16 shards), in
order: ``create_bundle`` of each shipped definition (content/: one write each), of a synthetic
definition of 120 tasks (over DynamoDB's limit of 100 items per transaction, so it is made by
the resumable protocol in steps), then on the newsletter bundle's tasks start, assign, wait,
comment, attach (a comment proof) and done, and last one sweep (``record_due`` +
``deliver_pending`` into a memory sink) a day after the anchor. What is counted, per command:

* writes: ``store.commit`` is wrapped (``Changes.size()``: the records written);
* DynamoDB: botocore's events on the store's own client: ``before-send`` (each HTTP request,
  retries included: the round trips), ``provide-client-params`` (the operation and the items
  it writes: ``TransactItems``, ``Item``, ``RequestItems``) and ``after-call`` (the items read:
  ``ScannedCount`` of a query, ``Responses`` of a BatchGetItem, ``Item`` of a GetItem);
* PostgreSQL: ``stores.py``'s ``counted()`` (pooled transactions, pool checks, statements),
  split by whether the adapter is writing (inside ``commit`` / ``_write``) or reading;
* SQLite: ``sqlite3.Connection.set_trace_callback`` on the store's connection (every statement
  run; an ``executemany`` runs its statement once per row) and its ``BEGIN IMMEDIATE``;
* every store: the port's read methods (``get``, ``find``, ``tasks_of``, ``due_for_reminders``,
  ...), outermost calls only.

Part 5, the sweep at scale on DynamoDB. A table of 16 shards gets 100k open tasks (``--quick``:
10k): ``benchmarks/sweep.py``'s definitions (20 tasks each, no proof, due at 08:30 Chicago on
the anchor day), five of them, one bundle per definition and anchor day, exactly 100 tasks (the
five bundles anchored on the sweep's day) due at the sweep instant, every other task's first
reminder on a later day. The items are the adapter's own: for each definition ``create_bundle``
runs on a MemoryStore, its ``Changes`` go through ``DynamoStore._actions`` (the items a commit
sends: record items with their index keys, task places, audit events and their ID guards); each
bundle is that text re-keyed (anchor date, reminder instant, event IDs; the shard of each due
entry recomputed from its new ID), checked against ``_actions`` of ``create_bundle`` for a
sample of anchors (every attribute, but the random event IDs and the hashes over them), and
loaded with BatchWriteItem (25 items a request) in random order. Then, on a new store: one
``due_for_reminders`` page walk, and one whole sweep, counted as above.

moto's cost grows with the table, not with what a request reads: a query sorts every item of
the table and a transaction deep-copies the table first, so at 100k tasks (415k items) one
query took seconds and one transaction tens of seconds. Before the server starts this module
makes three changes to the server's CPU cost and none to its answers (:class:`FastMoto`): a
query is handed only the items whose queried key attribute has the queried value (moto still
applies every condition and its own sort, by unique keys), a transaction backs up only the
items it writes (and puts them back if it is cancelled), and an item's 400 KB check sums its
attributes once instead of once per attribute (the same total). In part 4 every query is also
answered by moto's unchanged query and compared; in part 5 the first one is.

    python benchmarks/store_counts.py            # 100k open tasks (about 4.5 minutes, most of it loading moto)
    python benchmarks/store_counts.py --quick    # 10k; about 40 s
    python benchmarks/stores.py --counts-only    # the same, from stores.py (plain stores.py runs it too)

Seconds against moto are not a speed figure: moto is a Python emulation in this process, one
request at a time; the seconds printed say how long this run took, nothing about DynamoDB.
Goals (from the issue): exactly one write round trip per command (instantiation of a definition
over the limit: the minimum the protocol needs); a sweep that reads no more items than are due
plus one page per shard.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0], and benchmarks/transitions.py would shadow the
# `transitions` package the runtime imports: drop the folder, put the repo root in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import yaml  # noqa: E402

from runtime import engine  # noqa: E402
from runtime.artifacts import LocalArtifactStore  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.content import Content, load_content  # noqa: E402
from runtime.engine import Services  # noqa: E402
from runtime.engine.reminders import SweepReport, deliver_pending, record_due  # noqa: E402
from runtime.model import Task, WorkflowDefinition, format_instant  # noqa: E402
from runtime.model.common import utc  # noqa: E402
from runtime.rules.reminders import local_instant  # noqa: E402
from runtime.store.base import Changes  # noqa: E402
from runtime.store.memory import MemoryStore  # noqa: E402

CONTENT = ROOT / "content"
NOW = utc(2026, 11, 25, 8)  # part 4: the commands' clock
ANCHOR = date(2026, 12, 4)  # part 4: the bundles' anchor (a Friday)
SWEEP_AT = utc(2026, 12, 5, 18)  # part 4: the sweep, the day after the anchor
BIG_TASKS = 120  # part 4: the definition over DynamoDB's limit
SHARDS = 16
DUE_TEMPLATES = 5  # part 5: bundles anchored on the sweep's day: 5 x 20 = 100 tasks due
SMALL_PAGE = 10  # part 5: a page walk with more due than a page holds
WRITE_OPS = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
READ_OPS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
PORT_READS = ("get", "find", "tasks_of", "page", "count", "audit_events", "due_for_reminders",
              "pending_deliveries", "pending_digest_deliveries", "pending_digests",
              "claimable_jobs", "latest_seal", "task_and_bundle", "claim_deliveries", "is_empty")
STORES = ("memory", "sqlite", "postgresql", "dynamodb")
MOTO_ITEM_LIMIT = 405000  # the most bytes moto lets one item hold (dynamo_type.LimitedSizeDict)
_HEX = re.compile(r"evt-[0-9a-f]{32}|[0-9a-f]{64}")


@functools.cache
def _bench(name: str) -> Any:
    """benchmarks/<name>.py, loaded by path (this folder is off sys.path, see above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---- moto: the same answers for less CPU ------------------------------------------------------


class _Lookup:
    """The items of one moto table by the value of an attribute (the hash keys of the GSIs it
    is queried on), kept up to date from the keys its writes touch."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.by: dict[str, dict[str, dict[tuple[Any, Any], None]]] = {}
        self.seen: dict[tuple[Any, Any], dict[str, str]] = {}
        self.dirty: set[tuple[Any, Any]] = set()
        self.stale = False

    def _current(self, key: tuple[Any, Any]) -> Any:
        group = self.table.items.get(key[0])  # .get: the table's items are a defaultdict
        if group is None:
            return None
        return group.get(key[1]) if self.table.range_key_attr else group

    def _every(self) -> Iterator[tuple[tuple[Any, Any], Any]]:
        for h, group in list(self.table.items.items()):
            if self.table.range_key_attr:
                for r, item in list(group.items()):
                    yield (h, r), item
            else:
                yield (h, None), group

    def _add(self, key: tuple[Any, Any], item: Any, attrs: Sequence[str]) -> None:
        if item is None:
            return
        for attr in attrs:
            v = item.attrs.get(attr)
            if v is not None and v.type == "S":
                self.by[attr].setdefault(v.value, {})[key] = None
                self.seen.setdefault(key, {})[attr] = v.value

    def _remove(self, key: tuple[Any, Any]) -> None:
        for attr, value in self.seen.pop(key, {}).items():
            bucket = self.by[attr].get(value)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.by[attr][value]

    def items_with(self, attr: str, value: str) -> list[Any]:
        if self.stale:
            self.by = {a: {} for a in self.by}
            self.seen.clear()
            self.dirty.clear()
            self.stale = False
            for key, item in self._every():
                self._add(key, item, list(self.by))
        for key in self.dirty:
            self._remove(key)
            self._add(key, self._current(key), list(self.by))
        self.dirty.clear()
        if attr not in self.by:
            self.by[attr] = {}
            for key, item in self._every():
                self._add(key, item, [attr])
        found = (self._current(k) for k in self.by[attr].get(value, {}))
        return [item for item in found if item is not None]


class FastMoto:
    """See the module docstring: moto's cost made to follow what a request touches. Installed
    into the moto that this process serves, before :class:`tests.dynamo.MotoServer` is made
    (which then leaves its own transaction fix out: ours replaces it)."""

    def __init__(self) -> None:
        self.installed = False
        self.check_all = False  # every query answered both ways and compared
        self.check_next = 0  # ... or the next N queries
        self.checked = 0
        self.mismatches: list[str] = []
        self.lookups: dict[int, _Lookup] = {}

    def install(self) -> str:
        """What was installed (one line for the output)."""
        from moto.dynamodb import models
        from moto.dynamodb.models import dynamo_type
        from moto.dynamodb.models.table import Table

        if self.installed:
            return "installed"
        current = models.DynamoDBBackend.transact_write_items
        if getattr(current, "_once", False) and not getattr(current, "_bench", False):
            return ("NOT installed: moto was patched by tests/dynamo.py already (each query "
                    "sorts the whole table, each transaction copies it)")
        self._queries(Table)
        self._writes(models, Table)
        self._item_size(dynamo_type)
        self.installed = True
        return ("installed: queries read only the items of the queried key, transactions back up "
                "only their own items, an item's size is summed once")

    def _queries(self, table_cls: Any) -> None:
        original = table_cls.query
        fast = self

        def query(table: Any, *args: Any, **kwargs: Any) -> Any:
            candidates = fast._candidates(table, args, kwargs)
            if candidates is None:
                return original(table, *args, **kwargs)
            table.all_items = lambda: candidates
            try:
                got = original(table, *args, **kwargs)
            finally:
                del table.all_items
            if fast.check_all or fast.check_next > 0:
                fast.check_next = max(0, fast.check_next - 1)
                want = original(table, *args, **kwargs)
                fast.checked += 1
                if repr(want) != repr(got):
                    fast.mismatches.append(f"query {args[:1]!r} {kwargs.get('hash_key_conditions')!r}")
            return got

        table_cls.query = query

    def _candidates(self, table: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                    ) -> list[Any] | None:
        """The items a query may answer with: a superset of what moto's own loop over every
        item keeps (None: let moto loop over every item)."""
        hash_key = args[0] if args else kwargs.get("hash_key")
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        if not index_name:
            if hash_key is None:
                return None
            group = table.items.get(hash_key)
            if group is None:
                return []
            return list(group.values()) if table.range_key_attr else [group]
        conditions = kwargs.get("hash_key_conditions") or []
        if len(conditions) != 1 or getattr(conditions[0][1], "type", None) != "S":
            return None
        attr, value = conditions[0]
        lookup = self.lookups.get(id(table))
        if lookup is None or lookup.table is not table:
            lookup = self.lookups[id(table)] = _Lookup(table)
        return self._in_range(table, lookup.items_with(attr, value.value), args, kwargs)

    @staticmethod
    def _in_range(table: Any, items: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                  ) -> list[Any]:
        """``items`` (one partition of a GSI) cut to those moto's loop can answer with: the
        ones its range condition keeps, and one that sorts after the last of them (moto's loop
        only asks whether there is a next item, for its LastEvaluatedKey). Items the condition
        drops change nothing else in moto's loop unless the 1 MB page limit could be reached
        at one of them; when it could, or for a query this does not follow (backwards, legacy
        filters), ``items`` as they are."""
        from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

        comparison = args[1] if len(args) > 1 else None
        forward = args[5] if len(args) > 5 else True
        if not comparison or forward is not True or len(args) != 10 or \
                set(kwargs) - {"hash_key_conditions", "range_key_conditions"}:
            return items
        index = table.get_index(args[7])
        hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        if not ranges:
            return items
        conditions = kwargs.get("range_key_conditions") or []
        attr = conditions[-1][0] if conditions else ranges[0]
        indexed = [it for it in items if all(it.attrs.get(r) for r in ranges)]
        keep = [it for it in indexed if (v := it.attrs.get(attr)) and v.compare(comparison, args[2])]
        if sum(it.size() for it in keep) + MOTO_ITEM_LIMIT > RESULT_SIZE_LIMIT:
            return items
        if not keep:
            return []
        order = table._generate_attr_to_sort_by([*hashes, table.hash_key_attr],
                                                [*ranges, table.range_key_attr])

        def key(it: Any) -> tuple[Any, ...]:
            return tuple(it.attrs[a] for a in order)

        top = key(max(keep, key=key))
        kept = {id(it) for it in keep}
        after = next((it for it in indexed if id(it) not in kept and key(it) > top), None)
        return keep if after is None else [*keep, after]

    def _touched(self, table: Any, h: Any, r: Any) -> None:
        lookup = self.lookups.get(id(table))
        if lookup is not None and lookup.table is table:
            lookup.dirty.add((h, r))

    def _writes(self, models: Any, table_cls: Any) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        fast = self
        put, delete = table_cls.put_item, table_cls.delete_item
        update = models.DynamoDBBackend.update_item
        transact = models.DynamoDBBackend.transact_write_items

        def key_of(table: Any, attrs: dict[str, Any]) -> tuple[Any, Any] | None:
            try:
                h = DynamoType(attrs[table.hash_key_attr])
                r = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError, IndexError):
                return None
            return h, r

        def put_item(table: Any, item_attrs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            try:
                return put(table, item_attrs, *a, **kw)
            finally:
                key = key_of(table, item_attrs)
                if key is not None:
                    fast._touched(table, *key)

        def delete_item(table: Any, hash_key: Any, range_key: Any) -> Any:
            try:
                return delete(table, hash_key, range_key)
            finally:
                fast._touched(table, hash_key, range_key)

        def update_item(backend: Any, *a: Any, **kw: Any) -> Any:
            try:
                return update(backend, *a, **kw)
            finally:  # changes an item in place: index every table again at its next query
                for lookup in fast.lookups.values():
                    lookup.stale = True

        def same_table(obj: Any, memo: Any = None) -> Any:
            return obj if isinstance(obj, table_cls) else copy.deepcopy(obj, memo)

        def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            saved: list[tuple[Any, Any, Any, Any]] = []
            for entry in transact_items:
                _, op = next(iter(entry.items()))
                table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                key = key_of(table, op.get("Item") or op.get("Key") or {}) if table else None
                if table is not None and key is not None:
                    saved.append((table, *key, copy.deepcopy(table.get_item(*key))))
            # the server serves one request at a time, so swapping the module's name is safe
            models.copy = SimpleNamespace(deepcopy=same_table)
            try:
                transact(backend, transact_items)
            except BaseException:  # cancelled: put back what it wrote (moto's own copy is ours)
                for table, h, r, old in reversed(saved):
                    if old is None:
                        table.delete_item(h, r)
                    elif r is None:
                        table.items[h] = old
                    else:
                        table.items[h][r] = old
                    fast._touched(table, h, r)
                raise
            finally:
                models.copy = copy

        transact_write_items._once = True  # type: ignore[attr-defined]
        transact_write_items._bench = True  # type: ignore[attr-defined]
        table_cls.put_item, table_cls.delete_item = put_item, delete_item
        models.DynamoDBBackend.update_item = update_item
        models.DynamoDBBackend.transact_write_items = transact_write_items

    @staticmethod
    def _item_size(dt: Any) -> None:
        """``Item.__init__`` checks the 400 KB limit once on the sum of its attributes, not at
        each attribute on the sum so far (sizes only grow: the same items are refused)."""
        from moto.dynamodb.models.utilities import bytesize

        limited, item_cls, dynamo = dt.LimitedSizeDict, dt.Item, dt.DynamoType
        too_large = dt.ItemSizeTooLarge

        def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
            self.hash_key, self.range_key = hash_key, range_key
            held = limited.__new__(limited)
            dict.__init__(held)
            size = 0
            for key, value in attrs.items():
                v = dynamo(value)
                size += bytesize(key) + v.size()
                dict.__setitem__(held, key, v)
            if size > MOTO_ITEM_LIMIT:  # moto's limit (LimitedSizeDict.__setitem__)
                raise too_large
            self.attrs = held

        item_cls.__init__ = init


FAST = FastMoto()


class Moto:
    """The local endpoint: tests/dynamo.py's MotoServer, with :data:`FAST` installed first."""

    def __init__(self) -> None:
        self.fast = FAST.install()
        from tests.dynamo import MotoServer

        self.server = MotoServer().start()
        self.url = self.server.url

    def new_url(self, shards: int = SHARDS) -> str:
        return str(self.server.new_url(shards=shards))

    def stop(self) -> None:
        self.server.stop()


# ---- counting ---------------------------------------------------------------------------------


class Meter:
    """Counts what a store is asked (port reads, commits, records) and what it sends (see the
    module docstring), from now until :meth:`close`. ``n`` only grows: take differences."""

    def __init__(self, kind: str, store: Any) -> None:
        self.kind, self.store = kind, store
        self.n: Counter[str] = Counter()
        self.writing = 0
        self._reading = 0
        self._exit = ExitStack()
        for name in PORT_READS:
            inner = getattr(store, name, None)
            if inner is not None:
                setattr(store, name, self._port(name, inner))
                self._exit.callback(delattr, store, name)
        self._wrap_commit()
        if kind == "dynamodb":
            self._hook_boto(store._client.meta.events)
        elif kind == "sqlite":
            store._db.set_trace_callback(self._sql)
            self._exit.callback(store._db.set_trace_callback, None)
        elif kind == "postgresql":
            self._wrap_pg_write()
            self._exit.enter_context(_bench("stores").counted(store, _PgSplit(self)))

    def close(self) -> None:
        self._exit.close()

    def _port(self, name: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **kw: Any) -> Any:
            if not self._reading and not self.writing:
                self.n["port reads"] += 1
                self.n[f"port:{name}"] += 1
            self._reading += 1
            try:
                return inner(*a, **kw)
            finally:
                self._reading -= 1

        return call

    def _wrap_commit(self) -> None:
        inner = self.store.commit

        def commit(changes: Changes) -> None:
            self.writing += 1
            try:
                inner(changes)
            except Exception:
                self.n["failed commits"] += 1
                raise
            finally:
                self.writing -= 1
            self.n["commits"] += 1
            if self.kind != "postgresql":  # there: counted at _write (claims write too)
                self.n["records"] += changes.size()

        self.store.commit = commit
        self._exit.callback(delattr, self.store, "commit")

    def _wrap_pg_write(self) -> None:
        inner = self.store._write

        def write(conn: Any, changes: Changes) -> None:
            self.writing += 1
            try:
                inner(conn, changes)
            finally:
                self.writing -= 1
            self.n["pg writes"] += 1
            self.n["records"] += changes.size()

        self.store._write = write
        self._exit.callback(delattr, self.store, "_write")

    def _sql(self, statement: str) -> None:
        if self.writing:
            self.n["sql write"] += 1
            if statement.lstrip()[:5].upper() == "BEGIN":
                self.n["write tx"] += 1
        else:
            self.n["sql read"] += 1

    def _hook_boto(self, events: Any) -> None:
        tag = f"bench-meter-{id(self)}"
        for event, handler in (("provide-client-params.dynamodb", self._params),
                               ("before-send.dynamodb", self._send),
                               ("after-call.dynamodb", self._after)):
            events.register(event, handler, unique_id=f"{tag}-{event}")
            self._exit.callback(events.unregister, event, unique_id=f"{tag}-{event}")

    def _params(self, params: dict[str, Any], model: Any, context: dict[str, Any],
                **_: Any) -> None:
        op = model.name
        self.n[f"call:{op}"] += 1
        if op == "TransactWriteItems":
            k = len(params.get("TransactItems", []))
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            k = 1
        elif op == "BatchWriteItem":
            k = sum(len(v) for v in params.get("RequestItems", {}).values())
        else:
            k = 0
        if k:
            self.n["items written"] += k
            self.n[f"wrote:{op}"] += k
            self.n[f"write size:{k:03d}"] += 1
        context["bench_index"] = params.get("IndexName")

    def _send(self, event_name: str, **_: Any) -> None:
        self.n[f"send:{event_name.rsplit('.', 1)[-1]}"] += 1
        # returns None: a handler's answer here would stand in for the HTTP response

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        op = model.name
        if "Error" in parsed:
            self.n[f"error:{parsed['Error'].get('Code', '?')}"] += 1
            return
        if op in ("Query", "Scan"):
            k = int(parsed.get("ScannedCount", 0))
            self.n["gsi entries" if context.get("bench_index") else "table items"] += k
            self.n[f"returned:{op}"] += int(parsed.get("Count", 0))
        elif op == "BatchGetItem":
            k = sum(len(v) for v in parsed.get("Responses", {}).values())
            self.n["batch items"] += k
            self.n["unprocessed keys"] += sum(len(v.get("Keys", []))
                                              for v in (parsed.get("UnprocessedKeys") or {}).values())
        elif op == "GetItem":
            k = 1 if parsed.get("Item") else 0
            self.n["get items"] += k
            self.n["get misses"] += 1 - k
        else:
            return
        self.n["items read"] += k
        self.n[f"read:{op}"] += k


class _PgSplit:
    """``stores.Counts``'s ``add``, into the meter: as a write while the adapter writes."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def add(self, what: str, k: int = 1) -> None:
        self.meter.n[("pgw:" if self.meter.writing else "pgr:") + what] += k


def _pg_exchanges(d: Counter[str], side: str) -> int:
    """Requests that wait for the server: statements (an ``executemany`` is one), the pool's
    checks, and on the write side each transaction's BEGIN and COMMIT (reads are autocommit)."""
    statements = sum(v for k, v in d.items() if k.startswith(side) and k[4:] not in (
        "transaction", "check", "rows in executemany"))
    extra = 2 * d[f"{side}transaction"] if side == "pgw:" else 0
    return statements + d[f"{side}check"] + extra


@dataclass
class Figures:
    """One command on one store (differences of a :class:`Meter`)."""

    write_rt: int
    read_rt: int | None
    records: int
    items: int | None
    statements: str
    port_reads: int
    raw: Counter[str]


def largest_write(d: Counter[str]) -> int:
    """The most items one write request carried (0: none)."""
    return max((int(k.split(":", 1)[1]) for k, v in d.items()
                if k.startswith("write size:") and v > 0), default=0)


def figures(kind: str, d: Counter[str]) -> Figures:
    items: int | None = None
    statements = "-"
    if kind == "dynamodb":
        write_rt = sum(d[f"send:{op}"] for op in WRITE_OPS)
        read_rt: int | None = sum(d[f"send:{op}"] for op in READ_OPS)
        items = d["items written"]
    elif kind == "sqlite":
        write_rt, read_rt = d["write tx"], d["sql read"]
        statements = f"{d['sql write']} + {d['sql read']}"
    elif kind == "postgresql":
        write_rt, read_rt = d["pg writes"], _pg_exchanges(d, "pgr:")
        statements = f"{_pg_exchanges(d, 'pgw:')} + {read_rt}"
    else:
        write_rt, read_rt = d["commits"], None
    return Figures(write_rt, read_rt, d["records"], items, statements, d["port reads"], d)


@contextmanager
def metered(meter: Meter, out: list[Counter[str]]) -> Iterator[None]:
    before = Counter(meter.n)
    try:
        yield
    finally:
        diff = Counter(meter.n)
        diff.subtract(before)
        out.append(+diff)


# ---- part 4: per command and store ------------------------------------------------------------


def big_definition(n: int = BIG_TASKS) -> dict[str, Any]:
    """``n`` tasks over three phases (as tests/unit/test_large_bundles.py's), no proof."""
    phases = ["one", "two", "three"]
    return {
        "template_id": "big", "version": 1, "title": "Big", "timezone": "Europe/Berlin",
        "default_assignee": "ops", "phases": [{"phase_id": p, "title": p.title()} for p in phases],
        "tasks": [{"task_ref": f"t{i:03d}", "title": f"Task {i}", "phase": phases[i * 3 // n],
                   "offset_days": i % 20} for i in range(n)],
    }


def content_with_big(folder: Path) -> Content:
    """The shipped content (copied) with ``big.yaml`` beside its definitions."""
    root = folder / "content"
    shutil.copytree(CONTENT, root)
    (root / "workflows" / "big.yaml").write_text(yaml.safe_dump(big_definition()),
                                                 encoding="utf-8")
    content = load_content(root)
    assert "big" in content.workflows and not content.broken, content.broken
    return content


class MemorySink:
    """Keeps every payload (as sweep.py's)."""

    url = "memory://bench"

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def deliver(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def close(self) -> None:
        pass


@dataclass
class Step:
    name: str
    minimum: Callable[[Any], int | None]  # the fewest writes it needs on a store (None: -)
    run: Callable[[], Any]


def min_create(tasks: int) -> Callable[[Any], int | None]:
    """One write; over a store's limit, the resumable protocol's steps (bundles.py
    ``_create_in_steps``): the bundle ``creating``, its tasks ``limit // 2`` records a write
    (a task and its event), ``publish``."""
    def minimum(store: Any) -> int:
        limit = store.max_items
        if limit is None or 2 + 2 * tasks <= limit:
            return 1
        return 1 + math.ceil(tasks / (limit // 2)) + 1
    return minimum


def steps_for(svc: Services, sweep_svc: Services, content: Content,
              sweep_out: dict[str, Any]) -> list[Step]:
    views: dict[str, Any] = {}

    def one(_: Any) -> int | None:
        return 1

    def never(_: Any) -> int | None:
        return None

    def create(template: str) -> Callable[[], None]:
        def run() -> None:
            views[template] = engine.create_bundle(svc, template, ANCHOR)
        return run

    out: list[Step] = []
    for template in ("newsletter", "podcast-episode", "vat-return", "big"):
        n = len(content.workflows[template].tasks)
        label = (f"create_bundle {template} ({n} tasks)" if template != "big" else
                 f"create_bundle big ({n} tasks, over DynamoDB's limit)")
        out.append(Step(label, min_create(n), create(template)))

    def task(i: int) -> str:
        return str(views["newsletter"].tasks[i].task_id)

    def sweep() -> None:
        report = SweepReport()
        sink = MemorySink()
        record_due(sweep_svc, SWEEP_AT, report=report)
        deliver_pending(sweep_svc, [sink], SWEEP_AT, report=report)
        assert not report.failed and not report.retried, report.line()
        assert len(sink.payloads) == len(report.delivered), report.line()
        sweep_out.update(recorded=len(report.recorded), delivered=len(report.delivered),
                         found=report.found)

    out += [
        Step("task start", one, lambda: engine.fire_task(svc, task(1), "start")),
        Step("task assign", one, lambda: engine.assign_task(svc, task(1), "dana")),
        Step("task wait", one, lambda: engine.fire_task(
            svc, task(2), "wait", waiting_for="the printer", follow_up_at=NOW + timedelta(days=3))),
        Step("task comment", one, lambda: engine.comment_task(svc, task(1), "first draft is up")),
        Step("task attach (comment proof)", one,
             lambda: engine.attach_comment(svc, task(0), "topics: a, b, c")),
        Step("task done", one, lambda: engine.fire_task(svc, task(0), "complete")),
        Step("sweep: record_due + deliver_pending", never, sweep),
    ]
    return out


@dataclass
class CommandsResult:
    names: list[str]
    minimum: dict[tuple[str, str], int | None]
    figures: dict[tuple[str, str], Figures]
    stores: list[str]
    skipped: dict[str, str]
    sweep: dict[str, dict[str, Any]]
    max_items: dict[str, int | None]
    checked: int
    mismatches: list[str]
    seconds: float


def _const(content: Content) -> Callable[[], Content]:
    return lambda: content


def open_store(kind: str, folder: Path, moto: Moto, pg_url: Callable[[], str] | None) -> Any:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        from runtime.store.sqlite import SqliteStore

        return SqliteStore(f"sqlite:///{folder / 'counts.db'}")
    if kind == "postgresql":
        from runtime.store.postgres import PostgresStore

        assert pg_url is not None
        return PostgresStore(pg_url())
    from runtime.store.dynamodb import DynamoStore

    return DynamoStore(moto.new_url(SHARDS))


def measure_commands(moto: Moto, pg_url: Callable[[], str] | None,
                     log: Callable[[str], None]) -> CommandsResult:
    t0 = time.perf_counter()
    FAST.check_all = True  # small tables: every query answered both ways
    figs: dict[tuple[str, str], Figures] = {}
    minimum: dict[tuple[str, str], int | None] = {}
    sweeps: dict[str, dict[str, Any]] = {}
    max_items: dict[str, int | None] = {}
    skipped: dict[str, str] = {}
    names: list[str] = []
    stores = [s for s in STORES if s != "postgresql" or pg_url is not None]
    if pg_url is None:
        skipped["postgresql"] = "no PostgreSQL server (initdb not found, or --no-postgres)"
    try:
        for kind in stores:
            with tempfile.TemporaryDirectory(prefix="dataops-counts-") as tmp:
                folder = Path(tmp)
                content = content_with_big(folder)
                store = open_store(kind, folder, moto, pg_url)
                max_items[kind] = store.max_items
                art = LocalArtifactStore(folder / "artifacts")
                svc = Services(store, FixedClock(NOW), "bench", art, _const(content))
                sweep_svc = Services(store, FixedClock(SWEEP_AT), "bench", art, _const(content))
                sweeps[kind] = {}
                steps = steps_for(svc, sweep_svc, content, sweeps[kind])
                meter = Meter(kind, store)
                diffs: list[Counter[str]] = []
                try:
                    for step in steps:
                        with metered(meter, diffs):
                            step.run()
                finally:
                    meter.close()
                    if kind == "dynamodb":
                        store.drop()
                    store.close()
                names = [s.name for s in steps]
                for step, d in zip(steps, diffs, strict=True):
                    figs[(step.name, kind)] = figures(kind, d)
                    minimum[(step.name, kind)] = step.minimum(store)
                log(f"  {kind}: {len(steps)} commands counted")
    finally:
        FAST.check_all = False
    return CommandsResult(names, minimum, figs, stores, skipped, sweeps, max_items,
                          FAST.checked, list(FAST.mismatches), time.perf_counter() - t0)


def _goal(f: Figures, least: int | None) -> str:
    if least is None:
        return "-"
    return "met" if f.write_rt == least else f"NOT met ({f.write_rt} for {least})"


def report_commands(res: CommandsResult) -> None:
    print("part 4: round trips and items written per command, per store (counted, not timed; "
          "each store fresh, the commands in this order)")
    rows = []
    for name in res.names:
        for kind in res.stores:
            f = res.figures[(name, kind)]
            least = res.minimum[(name, kind)]
            rows.append((name, kind, f"{f.write_rt}", "-" if f.read_rt is None else f"{f.read_rt}",
                         f"{f.records}", "-" if f.items is None else f"{f.items}",
                         f.statements, f"{f.port_reads}", "-" if least is None else f"{least}",
                         _goal(f, least)))
    print_table(("command", "store", "write round trips", "read round trips",
                 "items written (records)", "DynamoDB items (actions)", "SQL statements (w + r)",
                 "port reads", "fewest writes", "goal"), rows)
    print()
    print("  write round trips: DynamoDB: HTTP requests that write (TransactWriteItems, PutItem, "
          "BatchWriteItem, UpdateItem, DeleteItem; retries included); PostgreSQL and SQLite: "
          "write transactions; memory: commits. read round trips: DynamoDB: HTTP requests that "
          "read (GetItem, BatchGetItem, Query); PostgreSQL: read exchanges (autocommit "
          "statements and pool checks); SQLite: statements run outside writes (no server: "
          "library calls); memory: none (in process).")
    print("  SQL statements (w + r): PostgreSQL: exchanges with the server while writing (pool "
          "check, BEGIN, each statement, an executemany as one, COMMIT) + while reading; SQLite: "
          "statements run (an executemany once per row, BEGIN and COMMIT included). port reads: "
          "calls of the store's read methods by the engine (outermost only). items written "
          "(records): Changes.size() of every commit (records and audit events); DynamoDB "
          "items: the items its requests carried (a task create is 2: the task and its place; "
          "an audit event is 2: its place in the chain and its ID guard).")
    print("  fewest writes: 1 per command; a definition over a store's limit "
          f"(max_items: {', '.join(f'{k} {v}' for k, v in res.max_items.items())}) in the "
          "protocol's steps: 1 (the bundle 'creating') + ceil(tasks / (max_items // 2)) (tasks "
          "and their events) + 1 (publish). The sweep's writes are batched (commit_batched, "
          "each write at most max_items records): no per-command goal.")
    alike: dict[tuple[Any, ...], list[str]] = {}
    for kind, v in res.sweep.items():
        alike.setdefault((v.get("found"), v.get("recorded"), v.get("delivered")), []).append(kind)
    for (found, recorded, delivered), kinds in alike.items():
        print(f"  the sweep at {format_instant(SWEEP_AT)} ({', '.join(kinds)}): {found} records "
              f"due, {recorded} reminders recorded, {delivered} delivered (the rest were recorded "
              f"by the commands before it: task done closed the newsletter's plan phase, a "
              f"stage_change reminder)")
    if "dynamodb" in res.stores:
        print("  DynamoDB requests per command:")
        for name in res.names:
            raw = res.figures[(name, "dynamodb")].raw
            ops = [f"{raw[f'send:{op}']} {op}" for op in (*READ_OPS, *WRITE_OPS)
                   if raw[f"send:{op}"]]
            extra = []
            if raw["get misses"]:
                extra.append(f"{raw['get misses']} GetItem found nothing")
            if raw["gsi entries"] or raw["table items"]:
                extra.append(f"Query read {raw['gsi entries']} index entries, {raw['table items']} "
                             f"table items")
            if raw["batch items"]:
                extra.append(f"BatchGetItem read {raw['batch items']} items")
            if largest_write(raw):
                extra.append(f"largest write {largest_write(raw)} items")
            errors = [f"{v} {k}" for k, v in raw.items() if k.startswith("error:")]
            print(f"    {name}: {', '.join(ops)}" + (f" ({'; '.join(extra)})" if extra else "")
                  + (f"; errors {', '.join(errors)}" if errors else ""))
    big = next((n for n in res.names if n.startswith("create_bundle big")), None)
    if big is not None:
        limited = [k for k in res.stores if res.minimum[(big, k)] not in (None, 1)]
        if limited:
            print(f"  {big} on {', '.join(limited)}: in steps, so the bundle is written twice "
                  f"('creating', then its publish update) with an event each: 2 records more "
                  f"than in one write")
    for kind, why in res.skipped.items():
        print(f"  {kind} skipped: {why}")
    odd = []
    for name in res.names:
        recs = {k: res.figures[(name, k)].records for k in res.stores}
        if len(set(recs.values())) > 1:
            odd.append(f"{name} ({', '.join(f'{k} {v}' for k, v in recs.items())})")
    print("  records written are the same on every store" + (
        "" if not odd else ", but for: " + "; ".join(odd)))
    print(f"  moto's answers: {res.checked} queries answered both by moto's own query and by "
          f"the faster one: " + ("identical" if not res.mismatches else
                                 f"{len(res.mismatches)} DIFFERENT: {res.mismatches[:3]}"))
    print()
    bad = []
    for name in res.names:
        for kind in res.stores:
            f, least = res.figures[(name, kind)], res.minimum[(name, kind)]
            if least is not None and f.write_rt != least:
                bad.append(f"{name} on {kind}: {f.write_rt} (fewest {least})")
    dyn = [n for n in res.names if res.minimum.get((n, "dynamodb")) is not None]
    if "dynamodb" in res.stores:
        met = sum(1 for n in dyn if res.figures[(n, "dynamodb")].write_rt
                  == res.minimum[(n, "dynamodb")])
        print(f"goal: exactly one write round trip per command on DynamoDB (a definition over "
              f"the limit: the fewest its protocol needs): {met} of {len(dyn)} commands -> "
              f"{'met' if met == len(dyn) else 'NOT met'}")
    print("goal, every store: " + ("met (every command wrote the fewest times it can)" if not bad
                                   else "NOT met: " + "; ".join(bad)))


# ---- part 5: the sweep at scale on DynamoDB ---------------------------------------------------

_D, _N, _U, _S = "\x01", "\x02", "\x04", "\x03"  # marks: anchor date, instant, its us, serial


def created_items(store: Any, wf: WorkflowDefinition, anchor: date) -> list[dict[str, Any]]:
    """The items ``DynamoStore.commit`` sends for ``create_bundle(wf, anchor)`` (clock:
    sweep.CREATED), built by the adapter from the ``Changes`` the engine committed."""
    sw = _bench("sweep")
    mem = MemoryStore()
    cap = _bench("stores").Capture(mem)
    engine.create_bundle(_bench("instantiate").services(mem, wf, sw.CREATED), wf.template_id,
                         anchor)
    (changes,) = cap.log
    assert not changes.updates
    return [action["Put"]["Item"] for action, _, _ in store._actions(changes)]


class DynamoTemplates:
    """Per definition, the JSON of one bundle's items at sweep.SENTINEL with the anchor date,
    the reminder instant (as text and as its microseconds) and the bundle's part of its event
    IDs made marks; a bundle costs four ``str.replace``, a parse, and its due entries' shards
    recomputed. Every bundle keeps its template's hashes (right sizes; chains that would not
    verify; nothing in a sweep reads them)."""

    def __init__(self, store: Any, count: int) -> None:
        from runtime.store.dynamodb import _us

        self.store, self._us = store, _us
        sw = self.sw = _bench("sweep")
        self.wfs = [sw.definition(j) for j in range(count)]
        at = local_instant(sw.SENTINEL, sw.AT, sw.ZONE)
        self.texts: list[str] = []
        for wf in self.wfs:
            items = created_items(store, wf, sw.SENTINEL)
            text = orjson.dumps(items).decode()
            assert format_instant(at) in text and _us(at) in text
            assert not any(m in text for m in (_D, _N, _U, _S))
            text = text.replace(format_instant(at), _N).replace(_us(at), _U)
            text = text.replace(sw.SENTINEL.isoformat(), _D)
            events = list(dict.fromkeys(re.findall(r"evt-[0-9a-f]{32}", text)))
            assert len(events) == 1 + sw.TASKS, len(events)
            for i, e in enumerate(events):
                text = text.replace(e, f"evt-{_S}{i:08x}")
            self.texts.append(text)
            self.per_bundle = len(items)

    def fill(self, j: int, anchor: date, serial: int) -> list[dict[str, Any]]:
        at = local_instant(anchor, self.sw.AT, self.sw.ZONE)
        text = (self.texts[j].replace(_N, format_instant(at)).replace(_U, self._us(at))
                .replace(_D, anchor.isoformat()).replace(_S, f"{serial:024x}"))
        items: list[dict[str, Any]] = orjson.loads(text)
        for item in items:
            if "qk" in item:  # the shard is crc32 of the ID, which holds the anchor
                queue = item["qk"]["S"].split("#", 1)[0]
                item["qk"] = {"S": self.store._shard(queue, item["id"]["S"])}
        return items

    def check(self, samples: Sequence[tuple[int, date]]) -> None:
        """The generated items are what the adapter sends for create_bundle, every attribute,
        but for the event IDs and the hashes over them."""
        for j, anchor in samples:
            real = _HEX.sub("#", orjson.dumps(created_items(self.store, self.wfs[j], anchor)).decode())
            made = _HEX.sub("#", orjson.dumps(self.fill(j, anchor, 0)).decode())
            if real != made:
                a, b = orjson.loads(real), orjson.loads(made)
                diff = [(x, y) for x, y in zip(a, b, strict=False) if x != y][:1]
                raise AssertionError(f"generated items differ from the adapter's for {j}, "
                                     f"{anchor}: {diff}")


@dataclass
class SweepResult:
    n: int
    items: int
    bundles: int
    due: int
    load_s: float
    gen_s: float
    find: Counter[str]
    find_found: int
    sweep: Counter[str]
    sweep_report: dict[str, int]
    after: int
    checked: int
    mismatches: list[str]
    seconds: dict[str, float]
    small: Counter[str]
    small_pages: int


def load_table(moto: Moto, store: Any, tpl: DynamoTemplates, pairs: list[tuple[int, int]],
               log: Callable[[str], None]) -> float:
    """BatchWriteItem, 25 items a request, from a client of its own (not counted)."""
    import boto3
    from botocore.config import Config

    sw = tpl.sw
    loader = boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1",
                          config=Config(parameter_validation=False,
                                        retries={"mode": "standard", "max_attempts": 8}))
    t0 = time.perf_counter()
    pending: list[dict[str, Any]] = []
    sent = 0

    def flush(batch: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {store.table: [{"PutRequest": {"Item": it}} for it in batch]}
        for _ in range(20):
            got = loader.batch_write_item(RequestItems=requests)
            requests = got.get("UnprocessedItems") or {}
            if not requests:
                return
        raise SystemExit("part 5: the endpoint kept items unprocessed")

    step = max(1, len(pairs) // 4)
    for serial, (j, d) in enumerate(pairs):
        pending += tpl.fill(j, sw.TODAY + timedelta(days=d), serial)
        while len(pending) >= 25:
            flush(pending[:25])
            del pending[:25]
            sent += 25
        if (serial + 1) % step == 0 and serial + 1 < len(pairs):
            log(f"    {serial + 1:,} of {len(pairs):,} bundles loaded "
                f"({time.perf_counter() - t0:.0f} s)")
    if pending:
        flush(pending)
    return time.perf_counter() - t0


def measure_sweep(moto: Moto, n: int, log: Callable[[str], None]) -> SweepResult:
    from runtime.store.dynamodb import DynamoStore

    sw = _bench("sweep")
    per_day = DUE_TEMPLATES * sw.TASKS
    if n % per_day:
        raise SystemExit(f"part 5: give a multiple of {per_day} tasks")
    days = n // per_day
    url = moto.new_url(SHARDS)
    store = DynamoStore(url)
    t0 = time.perf_counter()
    tpl = DynamoTemplates(store, DUE_TEMPLATES)
    pairs = [(j, d) for j in range(DUE_TEMPLATES) for d in range(days)]
    random.Random(n).shuffle(pairs)  # creation order unrelated to due order
    tpl.check([(0, sw.TODAY), (1, sw.TODAY + timedelta(days=days - 1)), (2, date(2026, 3, 8)),
               (3, date(2026, 7, 1)), (4, date(2026, 11, 1)),
               *[(j, sw.TODAY + timedelta(days=d)) for j, d in random.Random(1).sample(pairs, 5)]])
    gen_s = time.perf_counter() - t0
    log(f"  part 5: {len(pairs):,} bundles of {sw.TASKS} tasks = {n:,} open tasks, "
        f"{tpl.per_bundle} items a bundle; generated items checked against the adapter's for 10 "
        f"anchors ({gen_s:.1f} s)")
    load_s = load_table(moto, store, tpl, pairs, log)
    expected = len(pairs) * tpl.per_bundle + 1  # + the meta item
    count = int(store._client.describe_table(TableName=store.table)["Table"]["ItemCount"])
    assert count == expected, (count, expected)
    log(f"  loaded {count:,} items in {load_s:.0f} s (moto; not a speed figure)")

    fresh = DynamoStore(url)  # a new store: nothing cached, as a daemon's sweep starts
    meter = Meter("dynamodb", fresh)
    out: list[Counter[str]] = []
    FAST.check_next = 1  # the first shard's query also answered by moto's own (a whole-table sort)
    checked0 = FAST.checked
    t1 = time.perf_counter()
    with metered(meter, out):
        page = fresh.due_for_reminders(sw.NOW, 1_000)
        found = list(page.items)
        while page.next_cursor is not None:
            page = fresh.due_for_reminders(sw.NOW, 1_000, cursor=page.next_cursor)
            found += page.items
    t2 = time.perf_counter()
    assert len(found) == sw.TASKS * DUE_TEMPLATES and all(isinstance(r, Task) for r in found), \
        len(found)
    small: list[Any] = []
    pages = 0
    with metered(meter, out):  # more due than a page holds (a backlog), as SMALL_PAGE at a time
        cursor: str | None = None
        while True:
            if pages == 1:  # the first query from a cursor (BETWEEN) also answered by moto's own
                FAST.check_next = 1
            page = fresh.due_for_reminders(sw.NOW, SMALL_PAGE, cursor=cursor)
            small += page.items
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    assert sorted(r.id for r in small) == sorted(r.id for r in found), len(small)
    t2b = time.perf_counter()
    svc = Services(store=fresh, clock=FixedClock(sw.NOW), actor="bench")
    sink = MemorySink()
    report = SweepReport()
    with metered(meter, out):
        record_due(svc, sw.NOW, report=report)
        deliver_pending(svc, [sink], sw.NOW, report=report)
    t3 = time.perf_counter()
    meter.close()
    due = sw.TASKS * DUE_TEMPLATES
    assert report.found == due and len(report.recorded) == due, report.line()
    assert len(report.delivered) == due and len(sink.payloads) == due, report.line()
    assert not report.failed and not report.retried and not report.skipped, report.line()
    after = len(fresh.due_for_reminders(sw.NOW, 10_000).items)
    fresh.drop()
    return SweepResult(n, count, len(pairs), due, load_s, gen_s, out[0], len(found), out[2],
                       {"found": report.found, "recorded": len(report.recorded),
                        "delivered": len(report.delivered)}, after,
                       FAST.checked - checked0, list(FAST.mismatches),
                       {"find": t2 - t1, "small": t2b - t2, "sweep": t3 - t2b}, out[1], pages)


def report_sweep(r: SweepResult) -> None:
    due, bound = r.due, r.due + SHARDS
    f, g, pages = r.find, r.small, r.small_pages

    def sends(c: Counter[str]) -> int:
        return sum(v for k, v in c.items() if k.startswith("send:"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"part 5: due_for_reminders page walks on DynamoDB ({SHARDS} shards) with {r.n:,} open "
          f"tasks ({r.items:,} items: {r.bundles:,} bundles), {due} due (counted, not timed): "
          f"limit 1,000 (record_due's: one page), and limit {SMALL_PAGE} (more due than a page "
          f"holds, as in a backlog: {pages} pages)")
    rows: list[tuple[str, ...]] = [
        ("Query round trips (the due index)", f"{f['send:Query']}", f"{g['send:Query']}",
         f"{SHARDS} a page (one page per shard)", verdict(f["send:Query"] <= SHARDS),
         verdict(g["send:Query"] <= SHARDS * pages)),
        ("index entries read (ScannedCount)", f"{f['gsi entries']}", f"{g['gsi entries']}",
         f"{bound} (due + one per shard)", verdict(f["gsi entries"] <= bound),
         verdict(g["gsi entries"] <= bound)),
        ("items re-read (consistent BatchGetItem)", f"{f['batch items']}", f"{g['batch items']}",
         f"{due} (due)", verdict(f["batch items"] <= due), verdict(g["batch items"] <= due)),
        ("BatchGetItem round trips", f"{f['send:BatchGetItem']}", f"{g['send:BatchGetItem']}",
         "1 a page (100 keys a request)", verdict(f["send:BatchGetItem"] <= 1),
         verdict(g["send:BatchGetItem"] <= pages)),
        ("other requests", f"{sends(f) - f['send:Query'] - f['send:BatchGetItem']}",
         f"{sends(g) - g['send:Query'] - g['send:BatchGetItem']}", "0", "-", "-"),
        ("records returned", f"{r.find_found}", f"{due}", f"{due}", "-", "-"),
    ]
    print_table(("what", "limit 1,000", f"limit {SMALL_PAGE}", "bound", "goal (1,000)",
                 f"goal ({SMALL_PAGE})"), rows)
    print()
    s = r.sweep
    rows = []
    print(f"part 5: one whole sweep (record_due + deliver_pending into a memory sink, a new "
          f"store) on the same table: found {r.sweep_report['found']}, recorded "
          f"{r.sweep_report['recorded']}, delivered {r.sweep_report['delivered']}; per operation")
    ops = sorted({k.split(":", 1)[1] for k in s if k.startswith("send:")},
                 key=lambda o: (o not in READ_OPS, o))
    for op in ops:
        trips = s[f"send:{op}"]
        read = s[f"read:{op}"] if op in READ_OPS else 0
        wrote = s[f"wrote:{op}"]
        detail = ""
        if op == "Query":
            detail = f"{s['gsi entries']} index entries, {s['table items']} table items"
        elif op == "GetItem":
            detail = f"{s['get misses']} found nothing"
        elif op == "TransactWriteItems":
            detail = f"largest {largest_write(s)} items"
        rows.append((op, f"{trips}", f"{read}", f"{wrote}", f"{trips / due:.2f}",
                     f"{read / due:.2f}", detail))
    rows.append(("total", f"{sum(s[f'send:{o}'] for o in ops)}", f"{s['items read']}",
                 f"{s['items written']}", f"{sum(s[f'send:{o}'] for o in ops) / due:.2f}",
                 f"{s['items read'] / due:.2f}", ""))
    print_table(("operation", "round trips", "items read", "items written", "round trips/due",
                 "items read/due", "detail"), rows)
    print()
    print(f"  bound: a walk of a sharded index costs one Query page per shard ({SHARDS}); each "
          f"shard's page may read one entry past the due ones (Limit=limit+1): at most due + "
          f"{SHARDS} index entries. The re-read (GSIs are eventually consistent) reads the due "
          f"items once more. items read: ScannedCount of each query, the items of each "
          f"BatchGetItem, a GetItem's item (0 when there is none).")
    print(f"  after the sweep due_for_reminders finds {r.after} (the due tasks' next reminders "
          f"are on later days). moto's answers: {r.checked} quer{'y' if r.checked == 1 else 'ies'} "
          f"answered both by moto's own query and by the faster one: "
          + ("identical" if not r.mismatches else "DIFFERENT"))
    print(f"  seconds against moto are not a speed figure (an in-process Python emulation, one "
          f"request at a time): items generated and checked {r.gen_s:.1f} s, loaded "
          f"{r.load_s:.0f} s ({r.items / r.load_s:,.0f} items/s), the page walks "
          f"{r.seconds['find']:.2f} s (its first query also answered by moto's own: a sort of the "
          f"whole table) and {r.seconds['small']:.2f} s, the sweep {r.seconds['sweep']:.1f} s")
    print()
    walk_ok = (f["send:Query"] <= SHARDS and f["gsi entries"] <= bound
               and f["batch items"] <= due)
    print(f"goal: the sweep's finding reads no more than due + one page per shard: "
          f"{f['send:Query']} pages, {f['gsi entries']} index entries and {f['batch items']} items "
          f"re-read for {due} due -> {verdict(walk_ok)}")
    small_ok = g["gsi entries"] <= bound and g["batch items"] <= due
    print(f"  with more due than a page holds (limit {SMALL_PAGE}, {pages} pages): "
          f"{g['gsi entries']} index entries ({g['gsi entries'] / due:.1f} per due) and "
          f"{g['batch items']} items re-read for {due} due -> {verdict(small_ok)} (the store "
          f"goes on with the shard merge of the page before, kept by its cursor: each due entry "
          f"is read about once, each shard's read-ahead once; a cursor taken to another process "
          f"queries every shard again from where it points)")
    walks = s["send:Query"] / SHARDS
    other = s["items read"] - s["gsi entries"] - s["batch items"]
    whole_ok = s["items read"] <= bound
    print(f"  the whole sweep: {s['items read']} items read for {due} due "
          f"({s['items read'] / due:.2f} per due) -> {verdict(whole_ok)} if the bound is read as "
          f"the whole sweep's: {s['send:Query']} Query pages ({walks:g} walks of {SHARDS} shards: "
          f"the due index once, the deliveries index per delivery page), {s['gsi entries']} index "
          f"entries, {s['batch items']} items re-read, {other} by GetItem; "
          f"{sum(s[f'send:{o}'] for o in READ_OPS)} read round trips ({s['send:GetItem']} "
          f"GetItem, {s['get misses']} of them finding nothing)")


# ---- output, running -------------------------------------------------------------------------


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    _bench("stores").print_table(header, rows)


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def revision() -> str:
    """The commit, and whether the DynamoDB adapter and the engine differ from it."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True,
                              check=False).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        status = git("status", "--porcelain", "--", "runtime/store/dynamodb.py")
        engine_dirty = bool(git("status", "--porcelain", "--", "runtime/engine"))
    except OSError:
        return "?"
    adapter = ROOT / "runtime" / "store" / "dynamodb.py"
    digest = hashlib.sha256(adapter.read_bytes()).hexdigest()[:12]
    state = ("not committed (untracked)" if status.startswith("??") else
             "MODIFIED in the work tree" if status else "as committed")
    return (f"commit {head}, runtime/store/dynamodb.py {state} (sha256 {digest}), runtime/engine/ "
            f"{'MODIFIED' if engine_dirty else 'as committed'}")


def header_lines(moto: Moto) -> list[str]:
    import boto3
    import botocore
    import moto as moto_pkg

    return [
        f"store counts: DynamoStore against moto {moto_pkg.__version__} on {moto.url} (tests/"
        f"dynamo.py's MotoServer: in this process, one request at a time), boto3 "
        f"{boto3.__version__}, botocore {botocore.__version__}; {revision()}",
        f"moto's CPU cost (FastMoto, see store_counts.py): {moto.fast}",
        "seconds against moto are not a speed figure: only counts are measured here",
    ]


@dataclass
class CountsResult:
    commands: CommandsResult | None
    sweep: SweepResult | None
    seconds: dict[str, float]


def measure(*, quick: bool, pg_url: Callable[[], str] | None, parts: set[int],
            log: Callable[[str], None], tasks: int | None = None,
            header: Callable[[list[str]], None] | None = None) -> CountsResult:
    """Parts 4 and/or 5 against one moto server started (and stopped) here."""
    moto = Moto()
    try:
        if header is not None:
            header(header_lines(moto))
        res = CountsResult(None, None, {})
        if 4 in parts:
            t0 = time.perf_counter()
            res.commands = measure_commands(moto, pg_url, log)
            res.seconds["part 4"] = time.perf_counter() - t0
        if 5 in parts:
            t0 = time.perf_counter()
            res.sweep = measure_sweep(moto, tasks or (10_000 if quick else 100_000), log)
            res.seconds["part 5"] = time.perf_counter() - t0
        return res
    finally:
        moto.stop()


def report(res: CountsResult) -> None:
    if res.commands is not None:
        report_commands(res.commands)
        print()
    if res.sweep is not None:
        report_sweep(res.sweep)
        print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="part 5 at 10k open tasks; under a minute")
    p.add_argument("--tasks", type=int, help="part 5: open tasks (a multiple of 100; default "
                   "100000, quick 10000)")
    p.add_argument("--parts", default="4,5", help="which parts to run (default 4,5)")
    p.add_argument("--no-postgres", action="store_true", help="part 4 without PostgreSQL")
    args = p.parse_args(argv)
    parts = {int(x) for x in args.parts.split(",")}
    t_all = time.perf_counter()
    print(f"store counts ({time.strftime('%Y-%m-%d %H:%M %Z')}): python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPU cores; load average before {load()}", flush=True)
    with ExitStack() as stack:
        pg_url: Callable[[], str] | None = None
        if 4 in parts and not args.no_postgres:
            try:
                from tests.pg import PgServer

                server = PgServer().start()  # counts, not timings: the tests' settings do
                stack.callback(server.stop)
                pg_url = server.new_url
                print(f"PostgreSQL: a PgServer started for this run on port {server.port}")
            except (RuntimeError, OSError) as e:
                print(f"PostgreSQL: not started ({e}); part 4 runs without it")
        res = measure(quick=args.quick, pg_url=pg_url, parts=parts, tasks=args.tasks,
                      log=lambda s: print(s, flush=True),
                      header=lambda lines: print("\n".join(lines), flush=True))
    print()
    report(res)
    took = ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items())
    print(f"(total {time.perf_counter() - t_all:.1f} s: {took}; load average after {load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
