"""The boto3 client the DynamoDB store and the S3 artifact store share how to make: botocore's
``standard`` retry mode (throttling and transient errors retried with backoff, not a loop of
ours), bounded timeouts, the endpoint and region from the location's URL. boto3 is imported
only when such a location is opened (``pip install 'dataops-runtime[aws]'``)."""

from __future__ import annotations

import os
from typing import Any

from runtime.errors import InputError

TIMEOUT_S = 30
"""Connect and read timeout of one request, seconds (a hung endpoint is a fault, not a wait)."""


def client(service: str, what: str, options: dict[str, str], *, attempts: int) -> Any:
    """A boto3 client of ``service`` for the location ``what`` names (``store 'dynamodb://t'``)
    with the URL's ``endpoint_url`` and ``region`` (else AWS_REGION / AWS_DEFAULT_REGION).

    :raises InputError: boto3 is not installed, or the client cannot be made (no region, a
        bad endpoint), in one line naming the location.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise InputError(f"{what} needs boto3: pip install 'dataops-runtime[aws]'") from None
    config = Config(retries={"mode": "standard", "max_attempts": attempts},
                    connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, tcp_keepalive=True)
    kwargs: dict[str, Any] = {"config": config}
    if options.get("endpoint_url"):
        kwargs["endpoint_url"] = options["endpoint_url"]
    region = options.get("region") or os.environ.get("AWS_REGION") or \
        os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region_name"] = region
    try:
        return boto3.client(service, **kwargs)
    except Exception as e:  # NoRegionError, a bad endpoint: one line
        raise InputError(f"{what}: {e}; add ?region=REGION to the URL") from None
