"""Files attached to outbox messages, encrypted at rest.

An attachment (an executed agreement, a certificate of destruction) is encrypted
under the practice's `documents` class key before its row is written, so the
outbox never holds it in plaintext; the database check refuses anything that is
not one of Perpetua's encrypted streams. The delivery job opens it in memory,
hands it to the transport, and erases the ciphertext once the message is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
from dataclasses import dataclass

from perpetua.crypto import BlobCipher, DataClass, Keystore
from perpetua.db.pool import Conn


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


class AttachmentUnreadable(Exception):
    """The attachment did not decrypt or does not match its recorded digest."""


async def store(
    conn: Conn,
    keystore: Keystore,
    now: dt.datetime,
    *,
    message_id: uuid.UUID,
    practice_id: uuid.UUID,
    attachments: list[Attachment],
) -> None:
    """Encrypt and record attachments, in the transaction that queues the message."""
    cipher = BlobCipher(keystore)
    for position, attachment in enumerate(attachments):
        attachment_id = uuid.uuid4()
        sealed = io.BytesIO()
        wrapped = cipher.encrypt(
            practice_id,
            DataClass.DOCUMENTS,
            attachment_id,
            io.BytesIO(attachment.data),
            sealed,
        )
        await conn.execute(
            "insert into app.mail_attachments (id, message_id, practice_id, "
            "position, filename, content_type, size_bytes, sha256, wrapped_key, "
            "ciphertext, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            (
                attachment_id,
                message_id,
                practice_id,
                position,
                attachment.filename,
                attachment.content_type,
                len(attachment.data),
                hashlib.sha256(attachment.data).hexdigest(),
                wrapped,
                sealed.getvalue(),
                now,
            ),
        )


async def load(
    conn: Conn, keystore: Keystore | None, message_id: uuid.UUID
) -> list[Attachment]:
    """A message's attachments, decrypted and checked against their digests."""
    cur = await conn.execute(
        "select id, practice_id, filename, content_type, sha256, wrapped_key, "
        "ciphertext from app.mail_attachments where message_id = %s "
        "order by position",
        (message_id,),
    )
    rows = await cur.fetchall()
    if not rows:
        return []

    # Fail closed: a message is never sent without the files it promises.
    if keystore is None:
        raise AttachmentUnreadable("no keystore to open the attachments")
    cipher = BlobCipher(keystore)
    opened: list[Attachment] = []
    for row in rows:
        if row["ciphertext"] is None:
            raise AttachmentUnreadable("the attachment was already erased")
        out = io.BytesIO()
        try:
            cipher.decrypt(
                row["practice_id"],
                DataClass.DOCUMENTS,
                row["id"],
                bytes(row["wrapped_key"]),
                io.BytesIO(bytes(row["ciphertext"])),
                out,
            )
        except Exception as exc:
            raise AttachmentUnreadable(type(exc).__name__) from exc
        data = out.getvalue()
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise AttachmentUnreadable("digest mismatch")
        opened.append(Attachment(str(row["filename"]), str(row["content_type"]), data))
    return opened


async def erase(conn: Conn, message_id: uuid.UUID) -> None:
    """Drop the ciphertext of a delivered message's attachments; keep the facts."""
    await conn.execute(
        "update app.mail_attachments set ciphertext = null where message_id = %s",
        (message_id,),
    )
