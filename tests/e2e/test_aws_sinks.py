"""The sns:// and sqs:// sinks over HTTP against a moto server on 127.0.0.1 (no patching
of boto3 inside the process: the sink talks to the endpoint like it would to AWS)."""

from __future__ import annotations

import json

import boto3  # a dev dependency: a missing one fails loudly, it is never skipped
import pytest

from runtime.model import Reminder, ReminderKind
from runtime.model.common import utc
from runtime.notify import AwsSink, DeliveryError, open_sink, payload_of


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture
def aws_env(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # boto3 reads it for every client
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return endpoint


def _reminder() -> Reminder:
    return Reminder(
        reminder_id="rem-0123456789abcdef01234567", kind=ReminderKind.DUE, entity_type="task",
        entity_id="b/2026-12-01/t", bundle_id="b/2026-12-01", task_id="b/2026-12-01/t",
        fire_at=utc(2026, 12, 1, 8), recorded_at=utc(2026, 12, 1, 8), summary="due today",
    )


def _receive(sqs, queue_url: str) -> list[dict]:
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_sqs_sink_sends_the_payload(aws_env: str) -> None:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="reminders")["QueueUrl"]
    sink = open_sink(f"sqs://{queue_url}")
    assert isinstance(sink, AwsSink)
    sink.deliver(payload_of(_reminder()))
    [body] = _receive(sqs, queue_url)
    assert body["idempotency_key"] == "rem-0123456789abcdef01234567"
    assert body["kind"] == "due" and body["task_id"] == "b/2026-12-01/t"


def test_sns_sink_publishes_to_the_topic(aws_env: str) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="reminders")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="from-sns")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    open_sink(f"sns://{topic}").deliver(payload_of(_reminder()))
    [body] = _receive(sqs, queue_url)
    assert body["idempotency_key"] == "rem-0123456789abcdef01234567"


def test_a_missing_queue_is_a_delivery_error_not_a_crash(aws_env: str) -> None:
    sink = open_sink(f"sqs://{aws_env}/123456789012/no-such-queue")
    with pytest.raises(DeliveryError):
        sink.deliver(payload_of(_reminder()))
