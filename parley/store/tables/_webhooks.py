"""Webhook endpoints, the outbox of their deliveries, and each delivery's attempts."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from parley.store.tables._columns import Json, Name, metadata

#: Webhook endpoints (``/v1/webhooks``): where a user's run-end events are POSTed, signed
#: with the endpoint's secret (``parley.webhooks``).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    #: ``wh_`` and 24 hex digits.
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    #: The event types it is subscribed to (``response.completed``, ``thread.run.failed``, ...).
    Column("events", Json, nullable=False),
    Column("description", Name(512)),
    #: ``whsec_`` and the base64 of 32 random bytes: the HMAC key of its signatures.
    Column("secret", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "user_id", "created_at"),
)

#: The outbox: one row per event and endpoint, written in the transaction that ended the
#: run, then sent (and retried) by the delivery worker of any replica.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    #: ``whd_`` and 24 hex digits.
    Column("id", String(40), primary_key=True),
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: ``evt_`` and 24 hex digits: the payload's ``id`` and the ``webhook-id`` header.
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(64), nullable=False),
    #: The JSON body, fixed when the event was written: every attempt sends the same bytes.
    Column("payload", Text, nullable=False),
    #: ``pending``, ``delivered`` or ``failed``.
    Column("status", String(16), nullable=False),
    #: Attempts made (claims taken) so far.
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    #: When a worker may take it next: a retry's time, or the end of a worker's claim.
    Column("next_attempt_at", Float),
    #: Whose claim it is while an attempt is under way.
    Column("lease_owner", String(64)),
    #: After this no retry is scheduled: the delivery ends ``failed``. None: its
    #: ``created_at`` plus the server's ``webhook_retry_hours`` (a replay sets it).
    Column("retry_until", Float),
    Column("last_status_code", Integer),
    Column("last_error", String(512)),
    Column("delivered_at", Float),
    Index(None, "endpoint_id", "created_at"),
    # Workers look for pending deliveries that are due.
    Index(None, "status", "next_attempt_at"),
)

#: Each attempt of a delivery: when, the HTTP status or the error, and how long it took.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column(
        "delivery_id",
        String(40),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("number", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", String(512)),
    Column("duration_ms", Float, nullable=False),
)
