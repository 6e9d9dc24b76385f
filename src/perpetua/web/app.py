"""Assembles the application: services, routes, error mapping, security headers and
the background jobs that live as long as the web service does."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from perpetua import __version__
from perpetua.access.permissions import load_permissions
from perpetua.api import (
    audit_routes,
    audit_witness_routes,
    calls_routes,
    contracts_routes,
    identity_routes,
    incidents_routes,
    records_routes,
    v1,
)
from perpetua.audit import witness
from perpetua.audit.sealing import Sealer
from perpetua.audit.witness_store import open_witness_store
from perpetua.blobs import BlobStore
from perpetua.calls import fetch as call_fetch
from perpetua.calls import retention as call_retention
from perpetua.calls.service import Calls
from perpetua.calls.twilio import api_base as twilio_api_base
from perpetua.clock import Clock
from perpetua.config import Settings
from perpetua.contracts.announcements import announce_new_version
from perpetua.db.pool import Database
from perpetua.identity import secret_box
from perpetua.identity.sessions import SessionPolicy, purge_ended_sessions
from perpetua.incidents.overdue import escalate_overdue
from perpetua.jobs.runner import Job, JobRunner
from perpetua.mail.outbox import deliver_due
from perpetua.mail.transport import transport_for
from perpetua.monitoring import runner as monitoring
from perpetua.records.gate import RecordsGate
from perpetua.records.service import Records
from perpetua.records.vault import Vault
from perpetua.web import (
    console,
    console_audit,
    console_calls,
    console_contracts,
    console_identity,
    console_incidents,
    console_records,
    health,
)
from perpetua.web.context import Services
from perpetua.web.errors import LastResortMiddleware, install_error_handlers
from perpetua.web.headers import SecurityMiddleware

WEB_DIR = Path(str(resources.files("perpetua.web")))


def background_jobs(svc: Services) -> list[Job]:
    sealer = Sealer(svc.db, svc.settings.data_dir)
    # Checked here, before anything listens: a base that is not https stops the
    # start.
    twilio_base = twilio_api_base(svc.settings)
    return [
        Job("audit.seal", 5, sealer.run),
        Job(
            "audit.witness",
            witness.JOB_EVERY_SECONDS,
            witness.Witnesses(
                svc.db,
                svc.clock,
                console_origin=svc.settings.origin,
                data_dir=svc.settings.data_dir,
                store=open_witness_store(svc.settings),
            ).run,
        ),
        Job(
            "calls.retention_sweep",
            3600,
            lambda: call_retention.run_job(svc.db, svc.settings, svc.clock),
        ),
        Job(
            "calls.fetch_twilio",
            call_fetch.JOB_EVERY_SECONDS,
            lambda: call_fetch.run_job(svc.db, svc.settings, svc.clock, twilio_base),
        ),
        Job(
            "monitor.detect",
            monitoring.DEFAULT_EVERY_SECONDS,
            lambda: monitoring.run_tick(
                svc.db,
                svc.clock,
                indexer=svc.records.vault.index if svc.records else None,
            ),
        ),
        Job(
            "incidents.escalate_overdue",
            60,
            lambda: escalate_overdue(svc.db, svc.clock, svc.settings.origin),
        ),
        Job(
            "contracts.announce_new_version",
            3600,
            lambda: announce_new_version(svc.db, svc.clock, svc.settings.origin),
        ),
        Job(
            "sessions.purge_ended",
            600,
            lambda: purge_ended_sessions(svc.db, svc.clock),
        ),
        Job(
            "mail.deliver",
            30,
            lambda: deliver_due(
                svc.db,
                svc.clock,
                transport_for(svc.settings.smtp_url, svc.settings.data_dir),
                # Attachments are encrypted under the practices' document keys.
                keystore=Vault.open(svc.settings.data_dir).keystore,
            ),
        ),
    ]


def create_app(
    settings: Settings,
    db: Database,
    clock: Clock | None = None,
    *,
    run_jobs: bool = True,
) -> FastAPI:
    svc = Services(
        settings=settings,
        db=db,
        clock=clock or Clock(),
        session_policy=SessionPolicy(
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
            absolute=dt.timedelta(hours=settings.session_absolute_hours),
        ),
    )
    runner = JobRunner(background_jobs(svc) if run_jobs else [])

    vault = Vault.open(settings.data_dir)
    secret_box.configure(vault.cipher)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.open()
        permissions = await load_permissions(db)
        svc.records = Records(RecordsGate(db, permissions), vault)
        _app.state.calls = Calls(
            db,
            svc.records.gate,
            vault,
            BlobStore.open(settings, vault.keystore, db),
            svc.clock,
        )
        runner.start()
        try:
            yield
        finally:
            await runner.stop()
            await db.close()

    app = FastAPI(
        title="Perpetua API",
        version=__version__,
        summary="Front office for medical practices, with HIPAA safeguards enforced "
        "by the system itself.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.templates = Jinja2Templates(directory=WEB_DIR / "templates")
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(identity_routes.router)
    app.include_router(records_routes.exports)
    # Before the records routes: /calls/log must not be read as /calls/{id}.
    app.include_router(calls_routes.router)
    app.include_router(records_routes.router)
    app.include_router(contracts_routes.router)
    app.include_router(incidents_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(audit_witness_routes.router)
    app.include_router(console_audit.router)
    app.include_router(console.router)
    app.include_router(console_identity.router)
    app.include_router(console_records.router)
    app.include_router(console_calls.router)
    app.include_router(console_contracts.router)
    app.include_router(console_incidents.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    # Added innermost first: the last-resort handler sits inside the security
    # headers, so even an unexpected failure is answered with them.
    app.add_middleware(LastResortMiddleware)
    app.add_middleware(SecurityMiddleware)
    return app
