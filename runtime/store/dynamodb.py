"""The DynamoDB store (port v2): boto3's low-level client, one table, a single-table design.

``dynamodb://TABLE?region=REGION&endpoint_url=URL&shards=N``. ``endpoint_url`` points at a
local or test endpoint; ``shards`` (default 16) is how many partitions each time index is
written across, fixed when the table is made (kept in its meta item). The table and its
indexes are made by ``dataops store init`` or on first use. docs/store-schemas.md has the keys,
every index, the item shapes and which command reads and writes which items.

* One ``TransactWriteItems`` per :meth:`commit` (one conditional ``PutItem`` when the write is
  a single item), every update conditional on the version read, every create on
  ``attribute_not_exists``, with a ``ClientRequestToken``: a call whose answer was lost is
  sent again with the same token, which DynamoDB takes as the same transaction. The
  cancellation reasons name the item that failed: a version that moved on or an item that
  exists is a conflict, an item in another transaction is a conflict too (the engine
  re-reads and retries), throttling is "busy".
* Throttling and transient errors are retried by botocore's ``standard`` retry mode.
* The time indexes (due, deliveries, digests, claimable jobs, expiring keys) are sparse GSIs
  written across ``shards`` partition keys (``due#<crc32(id) mod N>``, the instant in the sort
  key) so that no partition is hot; a query reads every shard, and the records it names are
  re-read with a consistent read (GSIs are eventually consistent) before they are returned.
* DynamoDB has no read snapshot. :meth:`snapshot` makes a consistent cut of its own: it copies
  every kind, children before parents, with consistent reads into a spool on local disk, and
  serves each entity's audit chain cut at the head of the record it copied (see
  :class:`_Spool`).
"""

from __future__ import annotations

import heapq
import re
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain, groupby, islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import orjson

from runtime import aws
from runtime.errors import (
    ConflictError,
    DataopsError,
    InputError,
    NotFoundError,
    StoreFault,
    StoreUnreachable,
    ThrottledError,
)
from runtime.model import (
    ENTITY_KINDS,
    KIND_BY_NAME,
    ApiToken,
    Artifact,
    AssistantJob,
    AuditEvent,
    Bundle,
    Digest,
    IdempotencyKey,
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
    check_filters,
    check_size,
    decode,
    decode_list_cursor,
    decode_or_raise,
    due_cursor,
    encode_cursor,
    get_or_raise,
    list_key,
    micros,
)
from runtime.store.postgres_schema import columns_of

SCHEMA_VERSION = 1
MAX_ACTIONS = 100
"""DynamoDB's limit on the items of one TransactWriteItems."""
MAX_BYTES = 4 * 1024 * 1024
"""DynamoDB's limit on the size of one TransactWriteItems."""
MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's limit on one item (the record's JSON and its attributes)."""
MAX_ITEMS = MAX_ACTIONS // 2
"""The records one write may hold: a task create is two items (the task and its place in its
bundle) and an audit event is two (its place in its chain and its ID), so 50 records are at
most 100 items."""
DEFAULT_SHARDS = 16
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
OPTIONS = frozenset({"region", "endpoint_url", "shards"})

# Index names and their key attributes.
BY_KIND = ("by_kind", "gk", "gs")
"""Every record of a kind in scan order (ID; audit events: entity, then seq)."""
BY_TIME = ("by_time", "tk", "ts")
"""Reminders, audit events and seals in list order (their instant, then ID)."""
BY_PARENT = ("by_parent", "pk2", "sk2")
"""Tasks by bundle, reminders by entity, jobs by task, in list order."""
QUEUE = ("queue", "qk", "qs")
"""The sharded time index: ``due`` (tasks, bundles), ``deliver`` (reminders),
``deliver_digest`` (digests), ``claim`` (assistant jobs), ``expire`` (idempotency keys)."""
DIGEST_QUEUE = ("digest_queue", "dk", "ds")
"""Reminders still to be gathered into a digest (sharded)."""
INDEXES = (BY_KIND, BY_TIME, BY_PARENT, QUEUE, DIGEST_QUEUE)
FILTERED = ("status", "assignee", "template_id", "kind", "bundle_id", "task_id", "entity_id")
"""Attributes projected into the list indexes, so a filtered list is filtered by DynamoDB."""
KINDS_ATTR = "record_kind"
_END = "\U0010ffff"
"""Sorts after every character an ID can hold."""
_WALKS = 8
"""Due-index walks a store keeps going between pages (the sweep walks one at a time)."""
SPOOL_ORDER: tuple[type[Record], ...] = (Reminder, Digest, AssistantJob, Artifact, Task, Bundle,
                                        ApiToken, Seal, IdempotencyKey)
"""The order a snapshot copies kinds in: children before their parents. Records are never
deleted, so a parent of a child that was read existed then, and is read after it."""


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """``(table, options)``.

    :raises InputError: not a DynamoDB URL, a bad table name or an unknown option."""
    parsed = urlparse(url)
    if parsed.scheme != "dynamodb" or not _TABLE_NAME.match(parsed.netloc or ""):
        raise InputError(f"store URL {url!r}: write a DynamoDB store as "
                         "dynamodb://TABLE?region=REGION (a table name of 3-255 letters, "
                         "digits, '_', '-', '.')")
    options = dict(parse_qsl(parsed.query, keep_blank_values=True))
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise InputError(f"store URL {url!r}: unknown option {unknown[0]!r}; dynamodb:// takes "
                         "region=, endpoint_url= and shards=")
    return parsed.netloc, options


def _s(value: object) -> dict[str, str]:
    return {"S": str(value)}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _us(at: datetime) -> str:
    return f"{micros(at):020d}"


def _sk_of(kind: str, key: Sequence[Any]) -> str:
    """A list position (:func:`list_key` or a cursor) as the sort key of its list index."""
    if kind == "reminder" or kind == "seal":
        return f"{key[0]:020d}#{key[1]}"
    if kind == "audit_event":
        return f"{key[0]:020d}#{key[1]}\x00{key[2]:010d}"
    return str(key[0])


def _event_place(entity_id: str, seq: int) -> str:
    return f"{entity_id}\x00{seq:010d}"


def _chain_key(entity_id: str, seq: int) -> dict[str, Any]:
    return {"pk": _s(f"chain#{entity_id}"), "sk": _s(f"E#{seq:010d}")}


def _record_key(kind: str, rid: str) -> dict[str, Any]:
    return {"pk": _s(f"{kind}#{rid}"), "sk": _s("R")}


def _member_key(bundle_id: str, position: int, task_id: str) -> dict[str, Any]:
    return {"pk": _s(f"bundle#{bundle_id}"), "sk": _s(f"T#{position:06d}#{task_id}")}


class DynamoStore:
    """See the module docstring. Safe to share between the threads of one process."""

    max_items: int | None = MAX_ITEMS

    def __init__(self, url: str, *, client: Any = None, migrate: bool = False) -> None:
        self.table, options = parse_url(url)
        self.url = url
        self.quarantined: dict[str, str] = {}
        self._client = client if client is not None else aws.client(
            "dynamodb", f"store {url!r}", options, attempts=8)
        self._walks: OrderedDict[tuple[str, str], Iterator[dict[str, Any]]] = OrderedDict()
        """Due-index walks in progress, by (instant, the cursor of their next page): the
        shard merge itself, positioned there (see :meth:`due_for_reminders`)."""
        self._walks_lock = threading.Lock()
        self._ensure_table(options.get("shards"))

    # -- errors, table -----------------------------------------------------------------------
    @contextmanager
    def _driver(self) -> Iterator[None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            NoRegionError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        try:
            yield
        except DataopsError:
            raise
        except ClientError as e:
            raise translate(self.url, e) from e
        except NoCredentialsError:
            raise InputError(f"store {self.url}: no AWS credentials; set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE") from None
        except NoRegionError:
            raise InputError(f"store {self.url}: no AWS region; add ?region=REGION to the URL "
                             "or set AWS_DEFAULT_REGION") from None
        except (BotoConnectionError, HTTPClientError) as e:
            raise StoreUnreachable(self.url, f"cannot reach DynamoDB ({e}); check the "
                                   "endpoint_url and the network") from None
        except BotoCoreError as e:
            raise StoreFault(self.url, f"unexpected error from boto3 ({e})") from None

    def _call(self, op: str, **kwargs: Any) -> Any:
        with self._driver():
            return getattr(self._client, op)(**kwargs)

    def _ensure_table(self, shards: str | None) -> None:
        wanted: int | None = None
        if shards is not None:
            try:
                wanted = int(shards)
            except ValueError:
                wanted = 0
            if not 1 <= wanted <= 1000:
                raise InputError(f"store URL {self.url!r}: shards={shards!r} must be a whole "
                                 "number from 1 to 1000")
        from botocore.exceptions import ClientError

        with self._driver():
            try:
                self._client.describe_table(TableName=self.table)
            except ClientError as e:
                if e.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                self._create_table()
        meta = self._meta()
        if meta is None:
            item = {"pk": _s("meta"), "sk": _s("schema"),
                    "schema_version": _n(SCHEMA_VERSION), "shards": _n(wanted or DEFAULT_SHARDS)}
            try:
                with self._driver():
                    self._client.put_item(TableName=self.table, Item=item,
                                          ConditionExpression="attribute_not_exists(pk)")
            except ConflictError:
                pass  # another process made it first: read theirs
            meta = self._meta()
            assert meta is not None
        version = int(meta["schema_version"]["N"])
        if version != SCHEMA_VERSION:
            raise InputError(f"store {self.url!r} has schema {version}; this runtime reads "
                             f"schema {SCHEMA_VERSION}: " +
                             ("upgrade dataops" if version > SCHEMA_VERSION else
                              "export it with the dataops that wrote it and import it here"))
        self.shards = int(meta["shards"]["N"])
        if wanted is not None and wanted != self.shards:
            raise InputError(f"store {self.url!r}: the table was made with shards={self.shards}; "
                             "the shard count cannot change (drop shards= from the URL)")

    def _meta(self) -> dict[str, Any] | None:
        got = self._call("get_item", TableName=self.table, ConsistentRead=True,
                         Key={"pk": _s("meta"), "sk": _s("schema")})
        item: dict[str, Any] | None = got.get("Item")
        return item

    def _create_table(self) -> None:
        from botocore.exceptions import ClientError

        names = {"pk", "sk"} | {a for _, k, s in INDEXES for a in (k, s)}
        indexes = []
        for name, key, sort in INDEXES:
            projection: dict[str, Any] = {"ProjectionType": "KEYS_ONLY"}
            if name in ("by_kind", "by_parent", "queue"):
                projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(FILTERED)}
            indexes.append({"IndexName": name, "Projection": projection,
                            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"},
                                          {"AttributeName": sort, "KeyType": "RANGE"}]})
        try:
            self._client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                      for n in sorted(names)],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "sk", "KeyType": "RANGE"}],
                GlobalSecondaryIndexes=indexes)
        except ClientError as e:  # another process is making it: wait for theirs
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self._client.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def drop(self) -> None:
        """Delete the table (tests, benchmarks)."""
        self._call("delete_table", TableName=self.table)

    # -- items -------------------------------------------------------------------------------
    def _item(self, rec: Record, doc: str) -> dict[str, Any]:
        """The item that keeps ``rec``: its JSON, ID, version, relationship fields as plain
        attributes, and its index keys."""
        kind, rid = kind_of(rec), record_id(rec)
        item: dict[str, Any] = {**_record_key(kind, rid), KINDS_ATTR: _s(kind), "id": _s(rid),
                                "version": _n(record_version(rec)), "doc": _s(doc)}
        for col, value in columns_of(rec).items():
            if value is None:
                continue
            if isinstance(value, datetime):
                item[col] = _s(value.isoformat())
            elif isinstance(value, int) and not isinstance(value, bool):
                item[col] = _n(value)
            else:
                item[col] = _s(value)
        item["gk"], item["gs"] = _s(kind), _s(rid)
        if isinstance(rec, Reminder):
            item["tk"], item["ts"] = _s(kind), _s(_sk_of(kind, list_key(rec)))
        elif isinstance(rec, Seal):
            item["tk"], item["ts"] = _s(kind), _s(f"{_us(rec.at)}#{rid}")
        parent = {"task": "bundle_id", "reminder": "entity_id",
                  "assistant_job": "task_id"}.get(kind)
        if parent and getattr(rec, parent, None) is not None:
            item["pk2"] = _s(f"{kind}#{getattr(rec, parent)}")
            item["sk2"] = _s(_sk_of(kind, list_key(rec)))
        queued = self._queued(rec)
        if queued is not None:
            queue, at = queued
            item["qk"], item["qs"] = _s(self._shard(queue, rid)), _s(f"{_us(at)}#{rid}")
        if isinstance(rec, Reminder) and rec.digest_after is not None:
            item["dk"] = _s(self._shard("digest", rid))
            item["ds"] = _s(f"{_us(rec.digest_after)}#{rid}")
        return item

    @staticmethod
    def _queued(rec: Record) -> tuple[str, datetime] | None:
        at: datetime | None
        match rec:
            case Task() | Bundle():
                queue, at = "due", rec.next_reminder_at
            case Reminder():
                queue, at = "deliver", rec.deliver_after
            case Digest():
                queue, at = "deliver_digest", rec.deliver_after
            case AssistantJob():
                queue, at = "claim", rec.claimable_at
            case IdempotencyKey():
                queue, at = "expire", rec.expires_at
            case _:
                return None
        return None if at is None else (queue, at)

    def _shard(self, queue: str, rid: str) -> str:
        return f"{queue}#{zlib.crc32(rid.encode()) % self.shards}"

    def _event_item(self, ev: AuditEvent, doc: str) -> dict[str, Any]:
        return {**_chain_key(ev.entity_id, ev.seq), KINDS_ATTR: _s("audit_event"),
                "id": _s(ev.event_id), "event_id": _s(ev.event_id), "doc": _s(doc),
                "entity_type": _s(ev.entity_type), "entity_id": _s(ev.entity_id),
                "seq": _n(ev.seq), "at": _s(ev.at.isoformat()),
                "gk": _s("audit_event"), "gs": _s(_event_place(ev.entity_id, ev.seq)),
                "tk": _s("audit_event"), "ts": _s(_sk_of("audit_event", list_key(ev)))}

    # -- reads -------------------------------------------------------------------------------
    def _get_doc(self, kind: str, rid: str) -> str | None:
        found = self._call("get_item", TableName=self.table, ConsistentRead=True,
                           Key=_record_key(kind, rid)).get("Item")
        if found is not None and kind == "audit_event":  # the ID item names the chain place
            found = self._call("get_item", TableName=self.table, ConsistentRead=True,
                               Key=_chain_key(found["entity_id"]["S"],
                                              int(found["seq"]["N"]))).get("Item")
        return None if found is None else str(found["doc"]["S"])

    def find(self, kind: type[R], record_id: str) -> R | None:
        doc = self._get_doc(kind.record_kind, record_id)  # type: ignore[attr-defined]
        return None if doc is None else decode_or_raise(kind, record_id, doc, self.quarantined)

    def get(self, kind: type[R], record_id: str) -> R:
        return get_or_raise(self, kind, record_id)

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of ``keys`` (consistent reads; missing ones left out), in ``keys`` order."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {self.table: {"Keys": keys[start:start + 100],
                                                    "ConsistentRead": True}}
            for attempt in range(10):
                got = self._call("batch_get_item", RequestItems=pending)
                for item in got["Responses"].get(self.table, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                pending = got.get("UnprocessedKeys") or {}
                if not pending:
                    break
                # UnprocessedKeys is part of the API's answer, not an error botocore retries
                time.sleep(min(1.0, 0.01 * 2 ** attempt))
            else:
                raise ThrottledError(f"{self.url}: reads kept coming back unprocessed; retry later")
        return [found[k] for key in keys if (k := (key["pk"]["S"], key["sk"]["S"])) in found]

    def _decoded(self, kind: type[R], items: Iterable[dict[str, Any]]) -> list[R]:
        return [r for item in items
                if (r := decode(kind, item["id"]["S"], item["doc"]["S"], self.quarantined))]

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a query names, page by page."""
        while True:
            got = self._call("query", TableName=self.table, **kwargs)
            yield from got.get("Items", [])
            if "LastEvaluatedKey" not in got:
                return
            kwargs["ExclusiveStartKey"] = got["LastEvaluatedKey"]

    def _index_query(self, index: tuple[str, str, str], key: str, *, after: str | None = None,
                     upto: str | None = None, where: dict[str, str] | None = None,
                     limit: int | None = None, forward: bool = True) -> Iterator[dict[str, Any]]:
        """Index entries of ``key`` in sort order, after ``after`` (exclusive) and up to ``upto``
        (inclusive), filtered by equality on ``where``, page by page."""
        name, hk, sk = index
        names = {"#h": hk, "#s": sk}
        values: dict[str, Any] = {":h": _s(key)}
        cond = "#h = :h"
        if after is not None and upto is not None:
            cond += " AND #s BETWEEN :a AND :u"
            values[":a"], values[":u"] = _s(after), _s(upto)
        elif after is not None:
            cond += " AND #s > :a"
            values[":a"] = _s(after)
        elif upto is not None:
            cond += " AND #s <= :u"
            values[":u"] = _s(upto)
        if "#s" not in cond:
            del names["#s"]
        kwargs: dict[str, Any] = {"IndexName": name, "KeyConditionExpression": cond,
                                  "ScanIndexForward": forward}
        if where:
            parts = []
            for n, (field, value) in enumerate(sorted(where.items())):
                names[f"#f{n}"], values[f":f{n}"] = field, _s(value)
                parts.append(f"#f{n} = :f{n}")
            kwargs["FilterExpression"] = " AND ".join(parts)
        kwargs["ExpressionAttributeNames"], kwargs["ExpressionAttributeValues"] = names, values
        if limit is not None:
            kwargs["Limit"] = limit
        for item in self._query(**kwargs):
            if after is not None and item[sk]["S"] == after:
                continue  # BETWEEN is inclusive
            yield item

    def tasks_of(self, bundle_id: str) -> list[Task]:
        places = list(self._query(
            ConsistentRead=True, KeyConditionExpression="pk = :p AND begins_with(sk, :t)",
            ExpressionAttributeValues={":p": _s(f"bundle#{bundle_id}"), ":t": _s("T#")}))
        keys = [_record_key("task", p["task_id"]["S"]) for p in places]
        tasks = self._decoded(Task, self._batch_get(keys))
        return sorted(tasks, key=lambda t: (t.position, t.task_id))

    def _list_index(self, name: str, where: dict[str, str]) -> tuple[tuple[str, str, str], str,
                                                                       dict[str, str]]:
        """The index a list reads, its partition key, and the filters left for DynamoDB."""
        parent = {"task": "bundle_id", "reminder": "entity_id",
                  "assistant_job": "task_id"}.get(name)
        if parent and parent in where:
            rest = {k: v for k, v in where.items() if k != parent}
            return BY_PARENT, f"{name}#{where[parent]}", rest
        if name in ("reminder", "audit_event", "seal"):
            return BY_TIME, name, where
        return BY_KIND, name, where

    def page(self, kind: type[R], *, where: dict[str, str] | None = None, limit: int = 100,
             cursor: str | None = None) -> Page[R]:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        after = tuple(decode_list_cursor(name, cursor)) if cursor else None
        if name == "audit_event" and "entity_id" in where:
            events = sorted(self.audit_events(where["entity_id"]), key=list_key)
            hits = [e for e in events if after is None or list_key(e) > after]
            items: list[Any] = hits[:limit]
            more = len(hits) > limit
            return Page(items, encode_cursor(list_key(items[-1])) if more and items else None)
        index, key, rest = self._list_index(name, where)
        found: list[R] = []
        entries = self._index_query(index, key, where=rest or None, limit=min(limit + 1, 1000),
                                    after=_sk_of(name, after) if after else None)
        while len(found) <= limit:  # records that do not decode are skipped: read on
            batch = list(islice(entries, min(100, limit + 1 - len(found))))
            if not batch:
                break
            found += self._records_of(kind, batch)
        items = found[:limit]
        more = len(found) > limit
        return Page(items, encode_cursor(list_key(items[-1])) if more and items else None)

    def _records_of(self, kind: type[R], entries: list[dict[str, Any]]) -> list[R]:
        """The records index ``entries`` name, read again consistently, in ``entries`` order."""
        if not entries:
            return []
        return self._decoded(kind, self._batch_get([{"pk": e["pk"], "sk": e["sk"]}
                                                     for e in entries]))

    def count(self, kind: type[R], *, where: dict[str, str] | None = None) -> int | None:
        name = kind.record_kind  # type: ignore[attr-defined]
        where = where or {}
        check_filters(name, where)
        if name == "audit_event" and "entity_id" in where:
            return len(self.audit_events(where["entity_id"]))
        index, key, rest = self._list_index(name, where)
        return sum(1 for _ in self._index_query(index, key, where=rest or None))

    def audit_events(self, entity_id: str) -> list[AuditEvent]:
        items = self._query(ConsistentRead=True, KeyConditionExpression="pk = :p",
                            ExpressionAttributeValues={":p": _s(f"chain#{entity_id}")})
        return self._decoded(AuditEvent, items)

    def _merged(self, index: tuple[str, str, str], queue: str, at: datetime, want: int, *,
                after: str | None = None, where: dict[str, str] | None = None,
                ) -> Iterator[dict[str, Any]]:
        """The entries of a sharded time index due at ``at``, oldest first, after ``after``.

        The shards are merged lazily: each is queried in pages of about ``want / shards`` (+1)
        entries and asked for its next page only when the merge has used up the last one, so
        the first ``want`` entries cost about ``want + 2 x shards`` entries read however many
        are due (not ``shards x want``), and each entry after them about one."""
        upto = f"{_us(at)}${_END}"  # '$' sorts after '#': every ID at that instant
        _, _, sk = index
        per = -(-want // self.shards) + 1
        shards = [self._index_query(index, f"{queue}#{shard}", after=after, upto=upto,
                                    where=where, limit=per) for shard in range(self.shards)]
        return heapq.merge(*shards, key=lambda e: e[sk]["S"])

    def _queue_keys(self, index: tuple[str, str, str], queue: str, at: datetime, want: int, *,
                    where: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The first ``want`` entries of a sharded time index due at ``at``, oldest first."""
        return list(islice(self._merged(index, queue, at, want, where=where), want))

    def due_for_reminders(self, at: datetime, limit: int,
                          cursor: str | None = None) -> Page[Task | Bundle]:
        """A page of what is due. A walk of many pages in one process goes on with the shard
        merge of its previous page (kept by the cursor it gave, a few walks at most), so
        the whole walk reads each due entry about once and each shard's read-ahead once
        (due + about two per shard), not every shard again per page; a cursor from elsewhere
        (another process, an API client) queries every shard again from where it points.
        An entry added during the walk behind a shard's read-ahead (a task that fell due just
        now, between the cursor and entries already read) is found by the next sweep."""
        after = due_cursor(cursor)
        merged = None
        if cursor is not None:
            with self._walks_lock:
                merged = self._walks.pop((_us(at), cursor), None)
        if merged is None:
            merged = self._merged(QUEUE, "due", at, limit + 1,
                                  after=f"{after[0]:020d}#{after[1]}" if after else None)
        entries = list(islice(merged, limit + 1))
        taken = entries[:limit]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for e in taken:  # the partition key is KIND#ID
            by_kind.setdefault(e["pk"]["S"].split("#", 1)[0], []).append(e)
        found: list[Task | Bundle] = []
        for name, group in by_kind.items():
            model: Any = Task if name == "task" else Bundle
            found += [r for r in self._records_of(model, group)
                      if r.next_reminder_at is not None and r.next_reminder_at <= at]
        found.sort(key=lambda r: (micros(r.next_reminder_at), r.id))
        more = len(entries) > limit
        last = taken[-1]["qs"]["S"].split("#", 1) if more else None
        next_cursor = encode_cursor([int(last[0]), last[1]]) if last else None
        if next_cursor is not None:  # the entry read ahead goes first on the next page
            with self._walks_lock:
                self._walks[(_us(at), next_cursor)] = chain(entries[limit:], merged)
                while len(self._walks) > _WALKS:
                    self._walks.popitem(last=False)
        return Page(found, next_cursor)

    def _pending(self, kind: type[R], index: tuple[str, str, str], queue: str, at: datetime,
                 limit: int, field: str, where: dict[str, str] | None = None) -> list[R]:
        entries = self._queue_keys(index, queue, at, limit, where=where)
        records = [r for r in self._records_of(kind, entries)
                   if (when := getattr(r, field)) is not None and when <= at]
        return sorted(records, key=lambda r: (getattr(r, field), record_id(r)))

    def pending_deliveries(self, at: datetime, limit: int) -> list[Reminder]:
        return self._pending(Reminder, QUEUE, "deliver", at, limit, "deliver_after")

    def pending_digest_deliveries(self, at: datetime, limit: int) -> list[Digest]:
        return self._pending(Digest, QUEUE, "deliver_digest", at, limit, "deliver_after")

    def pending_digests(self, at: datetime, limit: int) -> list[Reminder]:
        return self._pending(Reminder, DIGEST_QUEUE, "digest", at, limit, "digest_after")

    def claimable_jobs(self, at: datetime, kinds: Sequence[str] | None,
                       limit: int) -> list[AssistantJob]:
        if not kinds:
            return self._pending(AssistantJob, QUEUE, "claim", at, limit, "claimable_at")
        found: list[AssistantJob] = []
        for k in kinds:
            found += self._pending(AssistantJob, QUEUE, "claim", at, limit, "claimable_at",
                                   where={"kind": k})
        return sorted(found, key=lambda j: (j.claimable_at, j.assistant_job_id))[:limit]

    def purge_idempotency_keys(self, before: datetime, limit: int = 1000) -> int:
        entries = self._queue_keys(QUEUE, "expire", before, limit)
        gone = 0
        for e in entries:
            with self._driver():
                try:
                    self._client.delete_item(
                        TableName=self.table, Key={"pk": e["pk"], "sk": e["sk"]},
                        ConditionExpression="attribute_exists(pk)")
                    gone += 1
                except self._client.exceptions.ConditionalCheckFailedException:
                    pass  # another daemon purged it
        return gone

    def latest_seal(self) -> Seal | None:
        entries = list(self._index_query(BY_TIME, "seal", limit=1, forward=False))[:1]
        found = self._records_of(Seal, entries)
        return found[0] if found else None

    @contextmanager
    def snapshot(self) -> Iterator[_Spool]:
        with tempfile.TemporaryDirectory(prefix="dataops-dynamodb-cut-") as folder:
            spool = _Spool(self, Path(folder))
            spool.copy()
            yield spool

    def is_empty(self) -> bool:
        kinds = [k for k in KIND_BY_NAME if k not in TRANSIENT_KINDS]  # audit events included
        return not any(next(self._index_query(BY_KIND, k, limit=1), None) for k in kinds)

    # -- writes ------------------------------------------------------------------------------
    def _actions(self, changes: Changes) -> list[tuple[dict[str, Any], Record, str]]:
        """Each item of ``changes`` as ``(TransactItem, record, what)``; updates first, so that a
        lost race names the record."""
        out: list[tuple[dict[str, Any], Record, str]] = []
        new = "attribute_not_exists(pk)"
        for rec, expected in _collapsed(changes.updates):
            out.append(({"Put": {"TableName": self.table, "Item": self._item(rec, changes.doc(rec)),
                                 "ConditionExpression": "version = :v",
                                 "ExpressionAttributeValues": {":v": _n(expected)},
                                 "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                        rec, f"update:{expected}"))
        for rec in changes.creates:
            out.append(({"Put": {"TableName": self.table, "Item": self._item(rec, changes.doc(rec)),
                                 "ConditionExpression": new}}, rec, "create"))
            if isinstance(rec, Task):
                member = {**_member_key(rec.bundle_id, rec.position, rec.task_id),
                          KINDS_ATTR: _s("task_place"), "task_id": _s(rec.task_id),
                          "bundle_id": _s(rec.bundle_id), "position": _n(rec.position)}
                out.append(({"Put": {"TableName": self.table, "Item": member,
                                     "ConditionExpression": new}}, rec, "create"))
        for ev in changes.events:
            out.append(({"Put": {"TableName": self.table,
                                 "Item": self._event_item(ev, changes.doc(ev)),
                                 "ConditionExpression": new}}, ev, "place"))
            guard = {**_record_key("audit_event", ev.event_id), KINDS_ATTR: _s("audit_event_id"),
                     "event_id": _s(ev.event_id), "entity_id": _s(ev.entity_id),
                     "seq": _n(ev.seq)}
            out.append(({"Put": {"TableName": self.table, "Item": guard,
                                 "ConditionExpression": new}}, ev, "create"))
        return out

    def commit(self, changes: Changes) -> None:
        check_size(self, changes)
        if not changes:
            return
        actions = self._actions(changes)
        seen: set[tuple[str, str]] = set()
        size = 0
        for action, rec, what in actions:
            item = action["Put"]["Item"]
            key = (item["pk"]["S"], item["sk"]["S"])
            if key in seen:
                detail = ("it is written twice in one write" if what.startswith("update")
                          else "it exists already" if what == "create"
                          else "two events at one place in its chain")
                raise ConflictError(record_id(rec), detail)
            seen.add(key)
            bytes_ = len(orjson.dumps(item))
            if bytes_ > MAX_ITEM_BYTES:
                raise InputError(f"{kind_of(rec)} {record_id(rec)} is {bytes_ // 1024} KiB, more "
                                 f"than the {MAX_ITEM_BYTES // 1024} KiB one DynamoDB item may "
                                 "hold; nothing was written")
            size += bytes_
        if len(actions) > MAX_ACTIONS or size > MAX_BYTES:
            raise InputError(f"one write to {self.url} may hold at most {MAX_ACTIONS} items and "
                             f"{MAX_BYTES // 2 ** 20} MiB; this one holds {len(actions)} items, "
                             f"{size / 2 ** 20:.1f} MiB; nothing was written")
        if len(actions) == 1:
            self._put_one(*actions[0])
        else:
            self._transact(actions)

    def _put_one(self, action: dict[str, Any], rec: Record, what: str) -> None:
        """A write of one item: a conditional PutItem (half the cost of a transaction). An answer
        lost on the way back is settled by reading the item: ours if it holds our JSON."""
        from botocore.exceptions import ClientError

        put = action["Put"]
        for attempt in range(2):
            try:
                with self._driver():
                    try:
                        self._client.put_item(**put)
                        return
                    except ClientError as e:
                        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise
                        old = e.response.get("Item")
                        if attempt and self._holds(put["Item"]):
                            return  # our first try went through; its answer was lost
                        raise self._refused(rec, what, old) from None
            except StoreUnreachable:
                if attempt == 1:
                    raise
                if self._holds(put["Item"]):
                    return

    def _holds(self, item: dict[str, Any]) -> bool:
        got = self._call("get_item", TableName=self.table, ConsistentRead=True,
                         Key={"pk": item["pk"], "sk": item["sk"]}).get("Item")
        return got is not None and got.get("doc") == item.get("doc")

    def _transact(self, actions: list[tuple[dict[str, Any], Record, str]]) -> None:
        from botocore.exceptions import ClientError

        token = uuid.uuid4().hex  # the same on every send of this write: DynamoDB's idempotency
        items = [a for a, _, _ in actions]
        for attempt in range(2):
            try:
                with self._driver():
                    try:
                        self._client.transact_write_items(TransactItems=items,
                                                          ClientRequestToken=token)
                        return
                    except ClientError as e:
                        if e.response["Error"]["Code"] != "TransactionCanceledException":
                            raise
                        reasons = e.response.get("CancellationReasons") or []
                        raise self._cancelled(actions, reasons, e) from None
            except StoreUnreachable:
                # the answer may be lost after DynamoDB applied it: the same token again is
                # the same transaction, applied at most once
                if attempt == 1:
                    raise

    def _cancelled(self, actions: list[tuple[dict[str, Any], Record, str]],
                   reasons: list[dict[str, Any]], e: Exception) -> DataopsError:
        """The error a cancelled transaction means: the first item whose reason is not None."""
        for (_, rec, what), reason in zip(actions, reasons, strict=False):
            code = reason.get("Code") or "None"
            if code == "None":
                continue
            if code == "ConditionalCheckFailed":
                return self._refused(rec, what, reason.get("Item"))
            if code == "TransactionConflict":
                return ConflictError(record_id(rec), "another write to it was in progress")
            if code in ("ThrottlingError", "ProvisionedThroughputExceeded",
                        "RequestLimitExceeded"):
                return ThrottledError(f"{self.url}: DynamoDB is throttling writes ({code}); "
                                      "retry later")
            if code == "ItemCollectionSizeLimitExceeded":
                return StoreFault(self.url, f"{code} writing {record_id(rec)}")
            return InputError(f"store {self.url}: DynamoDB refused {kind_of(rec)} "
                              f"{record_id(rec)} ({code}: {reason.get('Message', '')}); "
                              "nothing was written")
        return translate(self.url, e)

    @staticmethod
    def _refused(rec: Record, what: str, old: dict[str, Any] | None) -> DataopsError:
        if what.startswith("update:"):
            if old is None:
                return NotFoundError(kind_of(rec), record_id(rec))
            return ConflictError(record_id(rec), f"version is {old['version']['N']}, expected "
                                 f"{what.split(':', 1)[1]}")
        if what == "place":
            assert isinstance(rec, AuditEvent)
            return ConflictError(rec.entity_id, f"its audit event #{rec.seq} exists already")
        return ConflictError(record_id(rec), "it exists already")

    def close(self) -> None:
        pass

    # -- test hooks: tamper with stored items like an attacker or a damaged disk would ------
    def _put_raw(self, kind: str, rid: str, doc: bytes) -> None:
        self._call("update_item", TableName=self.table, Key=_record_key(kind, rid),
                   UpdateExpression="SET doc = :d",
                   ExpressionAttributeValues={":d": _s(doc.decode(errors="replace"))})



def _collapsed(updates: list[tuple[Record, int]]) -> list[tuple[Record, int]]:
    """``updates`` with a record updated twice, the second from the version the first wrote, as
    one update (one transaction may not write an item twice; SQL would apply both in turn). A
    second update from any other version is a conflict, as it would be in SQL."""
    out: dict[tuple[str, str], tuple[Record, int]] = {}
    for rec, expected in updates:
        key = (kind_of(rec), record_id(rec))
        if key in out:
            first, since = out[key]
            wrote = getattr(first, "version", 1)
            if expected != wrote:
                raise ConflictError(key[1], f"version is {wrote}, expected {expected}")
            out[key] = (rec, since)
        else:
            out[key] = (rec, expected)
    return list(out.values())


class _Spool:
    """A consistent cut of a store without snapshots.

    When it opens it copies, with consistent reads in scan order, every audit event and then
    every kind, children before parents (:data:`SPOOL_ORDER`), into files on local disk; every
    scan of the cut then reads those files. Records are never deleted and a record and its
    events are written together, so: a parent of a child that was copied is copied after it;
    an event that was copied belongs to a record whose copy is at its seq or later. A record
    copied ahead of its copied chain (it moved on between the two copies, or the eventually
    consistent index did not show every event yet) gets the missing events read from its chain
    with a consistent read when its chain is served, so each chain ends at its record's head.
    Chains are merged with the records (both are in ID order), not looked up: memory stays
    flat; the disk holds one copy.
    """

    def __init__(self, store: DynamoStore, folder: Path) -> None:
        self.store, self.folder = store, folder

    def _file(self, kind: str) -> Path:
        return self.folder / f"{kind}.jsonl"

    def copy(self) -> None:
        for kind in (AuditEvent, *SPOOL_ORDER):
            name = kind.record_kind  # type: ignore[attr-defined]
            with open(self._file(name), "wb") as out:
                entries = self.store._index_query(BY_KIND, name)
                while batch := list(islice(entries, 100)):
                    keys = [{"pk": e["pk"], "sk": e["sk"]} for e in batch]
                    for item in self.store._batch_get(keys):
                        out.write(orjson.dumps([item["id"]["S"], item["doc"]["S"]]) + b"\n")

    def _rows(self, name: str) -> Iterator[tuple[str, str]]:
        with open(self._file(name), "rb") as f:
            for line in f:
                rid, doc = orjson.loads(line)
                yield rid, doc

    def scan(self, kind: type[R]) -> Iterator[R]:
        if kind is AuditEvent:
            yield from self._events()  # type: ignore[misc]
            return
        for rid, doc in self._rows(kind.record_kind):  # type: ignore[attr-defined]
            rec = decode(kind, rid, doc, self.store.quarantined)
            if rec is not None:
                yield rec

    def _heads(self) -> Iterator[tuple[str, int]]:
        """``(entity_id, audit_seq)`` of every copied entity, in ID order."""
        def of(name: str) -> Iterator[tuple[str, int]]:
            for rid, doc in self._rows(name):
                try:
                    seq = int(orjson.loads(doc).get("audit_seq") or 0)
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    seq = 0  # does not decode: its chain is shown as copied, verify names it
                yield rid, seq
        return heapq.merge(*(of(k.record_kind) for k in ENTITY_KINDS))  # type: ignore[attr-defined]

    def _events(self) -> Iterator[AuditEvent]:
        quarantined = self.store.quarantined
        copied = ((e, doc) for rid, doc in self._rows("audit_event")
                  if (e := decode(AuditEvent, rid, doc, quarantined)) is not None)
        heads = self._heads()
        head = next(heads, None)
        for entity, group in groupby(copied, key=lambda pair: pair[0].entity_id):
            while head is not None and head[0] < entity:  # a chain the copy has none of
                yield from self._missing(head[0], head[1], set())
                head = next(heads, None)
            events = [e for e, _ in group]
            upto = 0
            while head is not None and head[0] == entity:
                upto = max(upto, head[1])
                head = next(heads, None)
            have = {e.seq for e in events}
            if all(seq in have for seq in range(1, upto + 1)):
                yield from events
            else:
                merged = {e.seq: e for e in events}
                merged.update((e.seq, e) for e in self._missing(entity, upto, have))
                yield from (merged[k] for k in sorted(merged))
        while head is not None:
            yield from self._missing(head[0], head[1], set())
            head = next(heads, None)

    def _missing(self, entity: str, upto: int, have: set[int]) -> Iterator[AuditEvent]:
        """The events of ``entity``'s chain up to ``upto`` that the copy lacks (consistent)."""
        if upto <= 0 or len(have) >= upto and all(s in have for s in range(1, upto + 1)):
            return
        for ev in self.store.audit_events(entity):
            if ev.seq <= upto and ev.seq not in have:
                yield ev


def translate(url: str, e: Any) -> DataopsError:
    """The error of ours that a DynamoDB error answer means (see :data:`ERRORS`)."""
    code = e.response.get("Error", {}).get("Code", "")
    message = e.response.get("Error", {}).get("Message", "") or str(e)
    cls, text = ERRORS.get(code, (StoreFault, "unexpected DynamoDB error"))
    if cls is ThrottledError:
        return ThrottledError(f"{url}: {text} ({code})")
    if cls is InputError:
        return InputError(f"store {url}: {text} ({code}: {message})")
    return cls(url, f"{text} ({code}: {message})")


ERRORS: dict[str, tuple[type[DataopsError], str]] = {
    "ProvisionedThroughputExceededException": (ThrottledError, "DynamoDB is throttling; retry later"),
    "ThrottlingException": (ThrottledError, "DynamoDB is throttling; retry later"),
    "RequestLimitExceeded": (ThrottledError, "the account's request limit is reached; retry later"),
    "LimitExceededException": (ThrottledError, "too many table operations at once; retry later"),
    "TransactionInProgressException": (ThrottledError, "the same write is still in progress"),
    "InternalServerError": (ThrottledError, "DynamoDB had an internal error; retry later"),
    "ServiceUnavailable": (ThrottledError, "DynamoDB is unavailable; retry later"),
    "ResourceNotFoundException": (InputError, "the table does not exist; run dataops store init"),
    "ResourceInUseException": (ThrottledError, "the table is being changed; retry later"),
    "AccessDeniedException": (StoreFault, "access denied; check the IAM policy of these "
                              "credentials"),
    "UnrecognizedClientException": (StoreFault, "the credentials are not valid"),
    "InvalidSignatureException": (StoreFault, "the credentials are not valid"),
    "ExpiredTokenException": (StoreFault, "the credentials have expired"),
    "ValidationException": (InputError, "DynamoDB refused the request"),
    "ConditionalCheckFailedException": (ConflictError, "a condition failed"),
    "IdempotentParameterMismatchException": (StoreFault, "a retried write did not match its "
                                             "first try"),
}
"""DynamoDB error codes -> our errors. Anything else is a :class:`StoreFault` naming the code."""


__all__ = ["DynamoStore", "parse_url"]
