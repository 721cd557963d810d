"""DynamoDB-only facts (the contract suite runs on DynamoDB too): the URL, the table made once,
the limits the adapter enforces itself (moto ignores them), and what moto cannot show: a
transaction whose answer was lost is sent again with the same ClientRequestToken, and each
cancellation reason maps to its error. Those use a fault-injecting wrapper around the real
client; every request still goes to moto's server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from runtime.errors import ConflictError, InputError, ThrottledError
from runtime.model import AuditEvent, Bundle, Task
from runtime.store import Changes, open_store
from runtime.store.dynamodb import DynamoStore, parse_url
from tests.store.test_contract import at, bundle, created, event, task


@pytest.fixture
def url(moto_endpoint: str) -> str:
    from tests.dynamo import RUNNING

    return str(RUNNING[0].new_url())


class Faulty:
    """The real client, with scripted faults on writes. ``lose`` answers to lose (the call
    goes through, then a connection error is raised); ``honour_tokens`` answers a repeated
    ClientRequestToken as DynamoDB does (success, nothing applied again), which moto does
    not; ``cancel`` a cancellation to answer instead of sending."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.exceptions = real.exceptions
        self.lose = 0
        self.honour_tokens = True
        self.tokens: list[str] = []
        self.cancel: list[dict[str, Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _lost(self) -> None:
        if self.lose:
            self.lose -= 1
            raise EndpointConnectionError(endpoint_url="http://dynamodb")

    def transact_write_items(self, **kw: Any) -> Any:
        token = kw["ClientRequestToken"]
        if self.cancel is not None:
            raise ClientError({"Error": {"Code": "TransactionCanceledException",
                                         "Message": "cancelled"},
                               "CancellationReasons": self.cancel}, "TransactWriteItems")
        if self.honour_tokens and token in self.tokens:
            self.tokens.append(token)
            return {}
        self.tokens.append(token)
        answer = self.real.transact_write_items(**kw)
        self._lost()
        return answer

    def put_item(self, **kw: Any) -> Any:
        answer = self.real.put_item(**kw)
        if "ConditionExpression" in kw and kw["Item"]["sk"]["S"] == "R":
            self._lost()
        return answer


@pytest.fixture
def faulty(url: str) -> Iterator[tuple[DynamoStore, Faulty]]:
    _, options = parse_url(url)
    real = boto3.client("dynamodb", endpoint_url=options["endpoint_url"], region_name="us-east-1")
    wrapper = Faulty(real)
    store = DynamoStore(url, client=wrapper)
    yield store, wrapper
    store.drop()


def test_a_transaction_whose_answer_was_lost_is_sent_again_with_the_same_token(faulty):
    store, client = faulty
    client.lose = 1
    changes = created(bundle("b"), task("b/t", bundle_id="b"))
    store.commit(changes)
    assert len(client.tokens) == 2 and client.tokens[0] == client.tokens[1]
    assert [t.task_id for t in store.tasks_of("b")] == ["b/t"]
    assert len(store.audit_events("b/t")) == 1
    # the next write has a token of its own
    store.commit(created(bundle("c")))
    assert client.tokens[2] != client.tokens[0]


def test_without_the_token_a_replay_would_be_refused(faulty):
    """What the token is for: moto ignores it, and the second send then meets its own write."""
    store, client = faulty
    client.lose, client.honour_tokens = 1, False
    with pytest.raises(ConflictError, match="exists already"):
        store.commit(created(bundle("b"), task("b/t", bundle_id="b")))


def test_a_single_put_whose_answer_was_lost_is_settled_by_reading_it_back(faulty):
    store, client = faulty
    store.commit(Changes(creates=[bundle("b")]))
    b = store.get(Bundle, "b")
    client.lose = 1
    store.commit(Changes(updates=[(b.model_copy(update={"title": "new", "version": 2}), 1)]))
    assert store.get(Bundle, "b").title == "new"
    # a real conflict after a lost answer is still a conflict
    client.lose = 1
    with pytest.raises(ConflictError, match="version is 2"):
        store.commit(Changes(updates=[(b.model_copy(update={"title": "x", "version": 2}), 1)]))


@pytest.mark.parametrize("code, error, match", [
    ("ConditionalCheckFailed", ConflictError, "exists already"),
    ("TransactionConflict", ConflictError, "in progress"),
    ("ThrottlingError", ThrottledError, "throttling"),
    ("ProvisionedThroughputExceeded", ThrottledError, "throttling"),
    ("ValidationError", InputError, "ValidationError"),
])
def test_each_cancellation_reason_maps_to_its_error_naming_the_item(faulty, code, error, match):
    store, client = faulty
    client.cancel = [{"Code": "None"}, {"Code": "None"}, {"Code": code, "Message": "m"}]
    changes = created(bundle("b"), task("b/t", bundle_id="b"))
    with pytest.raises(error, match=match) as err:
        store.commit(changes)
    if error is not ThrottledError:
        assert "b/t" in str(err.value)  # the third item is the task's place in its bundle
    client.cancel = None
    assert store.is_empty()


def test_more_than_4_mb_in_one_write_is_refused_before_sending(url: str):
    store = open_store(url)
    big = [task(f"b/t{i}", bundle_id="b", title="x" * 150_000) for i in range(30)]
    with pytest.raises(InputError, match="4 MiB"):
        store.commit(Changes(creates=big))
    with pytest.raises(InputError, match="b/huge.*400 KiB"):
        store.commit(Changes(creates=[task("b/huge", bundle_id="b", title="x" * 450_000)]))
    assert store.is_empty()
    store.commit(Changes(creates=big[:20]))  # 3 MB: fine
    assert len(store.tasks_of("b")) == 20


def test_more_than_100_items_is_refused(url: str):
    store = open_store(url)
    assert store.max_items == 50
    too_many = Changes(creates=[task(f"b/t{i}", bundle_id="b") for i in range(26)],
                       events=[event(f"ev-{i}", f"b/t{i}") for i in range(24)])
    assert too_many.size() == 50  # within the records, but 52 + 48 = 100 items: fine
    store.commit(too_many)
    assert len(store.tasks_of("b")) == 26 and len(store.audit_events("b/t3")) == 1
    assert store.get(AuditEvent, "ev-3").entity_id == "b/t3"


def test_the_table_is_made_once_and_its_shard_count_is_kept(moto_endpoint: str, url: str):
    first = open_store(url)
    assert first.shards == 4  # type: ignore[attr-defined]
    first.commit(Changes(creates=[task("t", bundle_id="b")]))
    again = open_store(url.replace("&shards=4", ""))
    assert again.get(Task, "t").task_id == "t"
    with pytest.raises(InputError, match="shards=4"):
        open_store(url.replace("shards=4", "shards=8"))


@pytest.mark.parametrize("bad, match", [
    ("dynamodb://", "TABLE"), ("dynamodb://ab", "TABLE"), ("dynamodb://a b", "TABLE"),
    ("dynamodb://tbl?colour=red", "colour"), ("dynamodb://tbl?shards=0", "shards"),
    ("dynamodb://tbl?shards=many", "shards"),
])
def test_a_bad_url_is_one_line(moto_endpoint: str, bad: str, match: str):
    if "?" in bad:
        bad += f"&endpoint_url={moto_endpoint}&region=us-east-1"
    with pytest.raises(InputError, match=match):
        open_store(bad)


def test_a_walk_of_small_pages_reads_each_due_entry_about_once(url: str):
    """A walk of many pages in one process goes on with its shard merge: the index entries it
    reads are the due ones plus each shard's read-ahead, not every shard again per page
    (counted from each Query's ScannedCount, as DynamoDB bills them). A cursor taken to
    another store object (another process) walks on from where it points."""
    store = open_store(url)
    assert isinstance(store, DynamoStore)
    due = 60
    recs = [task(f"t-{i:03d}", next_reminder_at=at(i)) for i in range(due)] + [
        task(f"later-{i:03d}", next_reminder_at=at(999)) for i in range(20)]
    for k in range(0, len(recs), 40):  # within the adapter's limit per write
        store.commit(Changes(creates=recs[k:k + 40]))
    scanned: list[int] = []
    store._client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed["ScannedCount"]))

    def walk(next_store: Any) -> list[str]:
        got: list[str] = []
        page = store.due_for_reminders(at(500), limit=5)
        got += [r.id for r in page.items]
        while page.next_cursor is not None:
            page = next_store().due_for_reminders(at(500), limit=5, cursor=page.next_cursor)
            got += [r.id for r in page.items]
        return got

    assert walk(lambda: store) == [f"t-{i:03d}" for i in range(due)]
    assert sum(scanned) <= due + 2 * store.shards, (sum(scanned), len(scanned))
    assert walk(lambda: DynamoStore(url)) == [f"t-{i:03d}" for i in range(due)]
    store.drop()
