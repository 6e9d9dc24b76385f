"""The email outbox: without a mail server a message becomes a file in
`<data-dir>/mail` that the console shows to a browser on the same machine; with
one, it is sent over STARTTLS and never in clear. A failed delivery is retried
with growing delays and, when it gives up, shows as failed to the practice: a
failure is never silent.

The SMTP server is a real one (aiosmtpd) on a local port, with a certificate from
a throwaway authority made here and trusted through `SSL_CERT_FILE`, exactly as an
operator would trust a private mail relay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import stat
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.testclient import TestClient
from tests.conftest import admin_connection, scratch_dir
from tests.functional.identity.helpers import bearer
from tests.support.factories import sign_up
from tests.support.server import free_port

from perpetua.config import load_settings
from perpetua.db.pool import Database
from perpetua.mail.outbox import MAX_ATTEMPTS, DeliveryReport, deliver_due
from perpetua.mail.transport import transport_for
from perpetua.web.app import create_app
from perpetua.web.context import SESSION_COOKIE

INVITEE = "new.front.desk@example.test"
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def make_client(target, clock, monkeypatch) -> Iterator[Callable[..., TestClient]]:
    """The application as `perpetua serve` would load it from its environment,
    with a data directory of its own so its mail folder holds only this test's
    messages."""
    opened: list[TestClient] = []

    def make(smtp_url: str | None = None, peer=LOOPBACK) -> TestClient:
        if smtp_url:
            monkeypatch.setenv("PERPETUA_SMTP_URL", smtp_url)
        else:
            monkeypatch.delenv("PERPETUA_SMTP_URL", raising=False)
        data_dir = scratch_dir("perpetua-mail-") / "data"
        settings = dataclasses.replace(
            load_settings(data_dir=str(data_dir)), host="testserver", port=443
        )
        app = create_app(
            settings,
            Database(target.conninfo("service"), min_size=1),
            clock,
            run_jobs=False,
        )
        client = TestClient(app, base_url="https://testserver", client=peer)
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def run_delivery_job(client: TestClient) -> DeliveryReport:
    """One run of the `mail.deliver` background job, on the application's loop."""
    svc = client.app.state.services  # type: ignore[attr-defined]
    transport = transport_for(svc.settings.smtp_url, svc.settings.data_dir)
    assert client.portal is not None
    return client.portal.call(deliver_due, svc.db, svc.clock, transport)


def invite_someone(client: TestClient) -> dict[str, Any]:
    owner = sign_up(client)
    sent = client.post(
        "/api/v1/invitations",
        json={"email": INVITEE, "role": "front_desk"},
        headers=owner["auth"],
    )
    assert sent.status_code == 201, sent.text
    return owner


def outbox_row(target) -> dict[str, Any]:
    with admin_connection(target) as conn:
        cur = conn.execute(
            "select status, attempts, last_error, body_text, next_attempt_at, sent_at "
            "from app.mail_outbox where to_address = %s",
            (INVITEE,),
        )
        row = cur.fetchone()
        assert row is not None
        assert cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


# Without a mail server: the local folder


def test_without_smtp_a_message_is_written_to_the_data_dirs_mail_folder(
    make_client, target
):
    client = make_client()
    invite_someone(client)

    report = run_delivery_job(client)

    assert report == DeliveryReport(sent=1, retrying=0, failed=0)
    folder = client.app.state.services.settings.data_dir / "mail"  # type: ignore[attr-defined]
    files = list(folder.glob("*.eml"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    message = message_from_bytes(files[0].read_bytes())
    assert message["To"] == INVITEE
    assert "/invitations/accept#" in message.get_payload()
    # Delivered: the one-time link no longer sits in the database.
    row = outbox_row(target)
    assert (row["status"], row["attempts"], row["body_text"]) == ("sent", 1, None)
    assert run_delivery_job(client) == DeliveryReport(sent=0, retrying=0, failed=0)


def test_the_console_lists_the_local_mail_folder_to_this_machine(make_client):
    client = make_client()
    invite_someone(client)
    run_delivery_job(client)

    page = client.get("/mail")

    assert page.status_code == 200
    assert page.text.count('data-testid="local-message"') == 1
    assert INVITEE in page.text
    assert "/invitations/accept#" in page.text


def test_the_local_mail_folder_is_not_shown_to_another_machine(make_client):
    client = make_client(peer=("198.51.100.9", 50000))
    invite_someone(client)
    run_delivery_job(client)

    assert client.get("/mail").status_code == 404


# With a mail server


@dataclasses.dataclass
class Received:
    envelopes: list[Any] = dataclasses.field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted"


def throwaway_authority(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test mail CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def mail_server(monkeypatch) -> Iterator[tuple[int, Received, Callable[..., Any]]]:
    """Start a local SMTP server; `start(tls=True)` offers STARTTLS (and demands it)."""
    import ssl

    received = Received()
    port = free_port()
    running: list[Controller] = []

    def start(tls: bool = True) -> None:
        kwargs: dict[str, Any] = {}
        if tls:
            ca, cert, key = throwaway_authority(scratch_dir("perpetua-smtp-ca-"))
            monkeypatch.setenv("SSL_CERT_FILE", str(ca))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            kwargs = {"tls_context": context, "require_starttls": True}
        controller = Controller(received, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        running.append(controller)

    yield port, received, start
    for controller in running:
        controller.stop()


def test_with_smtp_a_message_is_sent_over_starttls(make_client, target, mail_server):
    port, received, start = mail_server
    start(tls=True)
    client = make_client(
        f"smtp://127.0.0.1:{port}?from=Perpetua%20%3Cno-reply%40example.test%3E"
    )
    invite_someone(client)

    report = run_delivery_job(client)

    assert report == DeliveryReport(sent=1, retrying=0, failed=0)
    [envelope] = received.envelopes
    assert envelope.rcpt_tos == [INVITEE]
    assert envelope.mail_from == "no-reply@example.test"
    body = envelope.content.decode()
    assert "/invitations/accept#" in body
    row = outbox_row(target)
    assert (row["status"], row["body_text"]) == ("sent", None)
    # Nothing is written locally, and the local folder is not served.
    assert client.get("/mail").status_code == 404


def test_a_server_without_starttls_gets_nothing_in_clear(
    make_client, target, mail_server
):
    port, received, start = mail_server
    start(tls=False)
    client = make_client(f"smtp://127.0.0.1:{port}")
    invite_someone(client)

    report = run_delivery_job(client)

    assert report == DeliveryReport(sent=0, retrying=1, failed=0)
    assert received.envelopes == []
    row = outbox_row(target)
    assert row["status"] == "pending"
    assert row["last_error"] == "SMTPNotSupportedError"


# Failures


def test_a_failed_delivery_is_retried_later_with_growing_delays(
    make_client, target, clock
):
    client = make_client(f"smtp://127.0.0.1:{free_port()}")
    invite_someone(client)

    assert run_delivery_job(client) == DeliveryReport(sent=0, retrying=1, failed=0)
    first = outbox_row(target)
    assert first["attempts"] == 1
    assert first["status"] == "pending"
    assert first["last_error"] == "ConnectionRefusedError"
    # Still undelivered, so the message keeps its body for the next attempt.
    assert first["body_text"] is not None
    first_delay = first["next_attempt_at"] - clock.now()
    assert first_delay > dt.timedelta(0)

    # Not due again until its delay has passed.
    clock.advance(seconds=first_delay.total_seconds() - 1)
    assert run_delivery_job(client) == DeliveryReport(sent=0, retrying=0, failed=0)
    clock.advance(seconds=1)
    assert run_delivery_job(client) == DeliveryReport(sent=0, retrying=1, failed=0)
    second = outbox_row(target)
    assert second["attempts"] == 2
    assert second["next_attempt_at"] - clock.now() > first_delay


def test_a_delivery_that_keeps_failing_is_shown_as_failed(
    make_client, target, clock, capfd
):
    client = make_client(f"smtp://127.0.0.1:{free_port()}")
    owner = invite_someone(client)

    reports = []
    for _ in range(MAX_ATTEMPTS):
        reports.append(run_delivery_job(client))
        clock.advance(hours=2)
    assert reports[:-1] == [DeliveryReport(sent=0, retrying=1, failed=0)] * (
        MAX_ATTEMPTS - 1
    )
    assert reports[-1] == DeliveryReport(sent=0, retrying=0, failed=1)
    assert run_delivery_job(client) == DeliveryReport(sent=0, retrying=0, failed=0)

    # The owner sees it, through the API and on the practice's security page.
    token = client.post(
        "/api/v1/sessions",
        json={"email": owner["input"]["email"], "password": owner["input"]["password"]},
    ).json()["token"]
    mail = client.get("/api/v1/practice/mail", headers=bearer(token))
    [shown] = mail.json()
    assert (shown["status"], shown["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert shown["last_error"] == "ConnectionRefusedError"
    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/")
    page = client.get("/settings/security")
    assert page.status_code == 200
    assert "failed" in page.text
    assert "ConnectionRefusedError" in page.text

    # The operator's logs name the message, never its address or link.
    logged = capfd.readouterr()
    assert "mail_delivery_failed" in logged.out + logged.err
    assert INVITEE not in logged.out + logged.err


def test_a_mail_server_down_for_an_hour_still_gets_the_message(
    make_client, target, clock, mail_server
):
    port, received, start = mail_server
    client = make_client(f"smtp://127.0.0.1:{port}")
    invite_someone(client)
    down_since = clock.now()

    # Each attempt runs as soon as it is due, while nothing listens on the port.
    while clock.now() - down_since < dt.timedelta(hours=1):
        assert run_delivery_job(client).sent == 0
        row = outbox_row(target)
        assert row["status"] == "pending", row["attempts"]
        clock.advance(seconds=(row["next_attempt_at"] - clock.now()).total_seconds())

    start(tls=True)
    report = run_delivery_job(client)

    assert report == DeliveryReport(sent=1, retrying=0, failed=0)
    assert [e.rcpt_tos for e in received.envelopes] == [[INVITEE]]
