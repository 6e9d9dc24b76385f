"""How a message leaves: SMTP with STARTTLS when `PERPETUA_SMTP_URL` is set,
otherwise a file in `<data-dir>/mail` for local use, where the console can show it.

The SMTP transport refuses to send without TLS: a message holding a one-time link
or an attached agreement must not cross the network in clear. The server's
certificate is verified against the system's trust store. Both transports send
the same MIME message, attachments included.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from anyio import to_thread

from perpetua.errors import ConfigError
from perpetua.mail.attachments import Attachment

DEFAULT_SENDER = "Perpetua <no-reply@localhost>"


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    to: str
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()


class Transport(Protocol):
    async def send(self, message: Message) -> None: ...


def build(message: Message, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    email["Message-ID"] = make_msgid(idstring=message.id.hex)
    email.set_content(message.body)
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        email.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
        )
    return email


class FolderTransport:
    """Writes each message as `<id>.eml` into a folder only the service can read."""

    def __init__(self, folder: Path, sender: str = DEFAULT_SENDER) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, message: Message) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.folder / f"{message.id}.eml"
        data = bytes(build(message, self.sender))
        await to_thread.run_sync(lambda: _write_private(target, data))


def _write_private(target: Path, data: bytes) -> None:
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(data)
    temporary.chmod(0o600)
    temporary.replace(target)


class SmtpTransport:
    """SMTP submission with STARTTLS (port 587 by default) or implicit TLS
    (`smtps://`, port 465)."""

    def __init__(self, url: str, timeout: float = 20) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigError("PERPETUA_SMTP_URL must start with smtp:// or smtps://")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or ""
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        self.sender = unquote(query.get("from", "")) or DEFAULT_SENDER
        self.timeout = timeout
        self.context = ssl.create_default_context()

    async def send(self, message: Message) -> None:
        email = build(message, self.sender)
        await to_thread.run_sync(lambda: self._send_blocking(email))

    def _send_blocking(self, email: EmailMessage) -> None:
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if not self.implicit_tls:
                client.ehlo()
                # starttls raises if the server does not offer it: never send in clear.
                client.starttls(context=self.context)
                client.ehlo()
            if self.username and self.password:
                client.login(self.username, self.password)
            client.send_message(email)


def transport_for(smtp_url: str | None, data_dir: Path) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url)
    return FolderTransport(data_dir / "mail")


def local_messages(folder: Path, limit: int = 50) -> list[Path]:
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return files[:limit]
