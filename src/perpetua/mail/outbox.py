"""Guards the delivery of email: one outbox table, one way in (`enqueue`, inside
the transaction that decides to send, so a message exists only if the change that
caused it committed), one way out (`deliver_due`, run by the background job).

Messages carry one-time links, so a body is erased from the database once the
message is delivered; so is the ciphertext of its attachments
(`attachments.py`), which are encrypted before they are queued. Logs name a
message only by its id and a failure only by the error's type: never an address,
a subject, a body or a file name.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from perpetua.access.claims import system_claims
from perpetua.clock import Clock
from perpetua.crypto import Keystore
from perpetua.db.pool import Conn, Database
from perpetua.mail import attachments as attached
from perpetua.mail.attachments import Attachment
from perpetua.mail.transport import Message, Transport
from perpetua.observability.logging import get_logger

log = get_logger("perpetua.mail")

# After this many failed attempts a message is marked failed and shown as such.
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    retrying: int
    failed: int


async def enqueue(
    conn: Conn,
    now: dt.datetime,
    *,
    kind: str,
    to: str,
    subject: str,
    body: str,
    practice_id: uuid.UUID | None = None,
    attachments: Sequence[Attachment] = (),
    keystore: Keystore | None = None,
) -> uuid.UUID:
    """Queue a message; attachments are encrypted under the practice's keys."""
    if attachments and (practice_id is None or keystore is None):
        raise ValueError("attachments need the practice and its keystore")
    message_id = uuid.uuid4()
    await conn.execute(
        "insert into app.mail_outbox (id, practice_id, kind, to_address, subject, "
        "body_text, created_at, next_attempt_at) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s)",
        (message_id, practice_id, kind, to, subject, body, now, now),
    )
    if attachments:
        assert practice_id is not None
        assert keystore is not None
        await attached.store(
            conn,
            keystore,
            now,
            message_id=message_id,
            practice_id=practice_id,
            attachments=list(attachments),
        )
    return message_id


def _backoff(attempts: int) -> dt.timedelta:
    # Four minutes, then doubling: the last attempt comes about two hours after
    # the first, so a mail server that is down for an hour still gets the message.
    return dt.timedelta(minutes=2 ** (max(1, attempts) + 1))


async def deliver_due(
    db: Database,
    clock: Clock,
    transport: Transport,
    batch: int = 20,
    *,
    keystore: Keystore | None = None,
) -> DeliveryReport:
    """Send every message that is due; record each outcome on its row. Messages
    with attachments need the keystore; without it they wait and retry."""
    sent = retrying = failed = 0
    claims = system_claims("mail-deliver")
    async with db.transaction(claims) as conn:
        cur = await conn.execute(
            "select id, to_address, subject, body_text, attempts from app.mail_outbox "
            "where status = 'pending' and next_attempt_at <= %s "
            "order by next_attempt_at limit %s for update skip locked",
            (clock.now(), batch),
        )
        due = list(await cur.fetchall())
        for row in due:
            outcome = await _deliver_one(conn, clock, transport, row, keystore)
            sent += outcome == "sent"
            retrying += outcome == "pending"
            failed += outcome == "failed"
    return DeliveryReport(sent=sent, retrying=retrying, failed=failed)


async def _deliver_one(
    conn: Conn,
    clock: Clock,
    transport: Transport,
    row: dict[str, Any],
    keystore: Keystore | None,
) -> str:
    attempts = int(row["attempts"]) + 1
    try:
        message = Message(
            id=row["id"],
            to=str(row["to_address"]),
            subject=str(row["subject"]),
            body=str(row["body_text"] or ""),
            attachments=tuple(await attached.load(conn, keystore, row["id"])),
        )
        await transport.send(message)
    except Exception as exc:
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        log.warning(
            "mail_delivery_failed",
            message_id=str(row["id"]),
            attempts=attempts,
            error_type=type(exc).__name__,
        )
        await conn.execute(
            "update app.mail_outbox set attempts = %s, status = %s, last_error = %s, "
            "next_attempt_at = %s where id = %s",
            (
                attempts,
                status,
                type(exc).__name__,
                clock.now() + _backoff(attempts),
                row["id"],
            ),
        )
        return status
    await conn.execute(
        "update app.mail_outbox set attempts = %s, status = 'sent', sent_at = %s, "
        "body_text = null, last_error = null where id = %s",
        (attempts, clock.now(), row["id"]),
    )
    await attached.erase(conn, row["id"])
    log.info("mail_delivered", message_id=str(row["id"]), attempts=attempts)
    return "sent"


async def practice_messages(
    conn: Conn, practice_id: uuid.UUID, limit: int = 50
) -> list[dict[str, Any]]:
    """Delivery status of the practice's messages, without their bodies."""
    cur = await conn.execute(
        "select id, kind, to_address, subject, status, attempts, last_error, "
        "created_at, sent_at from app.mail_outbox where practice_id = %s "
        "order by created_at desc limit %s",
        (practice_id, limit),
    )
    return list(await cur.fetchall())


async def failed_count(db: Database) -> int:
    async with db.transaction(system_claims("mail-status")) as conn:
        cur = await conn.execute(
            "select count(*) as n from app.mail_outbox where status = 'failed'"
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0
