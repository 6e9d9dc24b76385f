"""Who may work on alerts and incidents, and the database's refusals from the
incident functions turned into named errors.

The database decides in the end (forced row-level security, and the checks in
incidents_api); refusing early here gives the caller a clear 403 instead of an
empty list or a 404 that would hide the reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from perpetua.access.claims import Claims
from perpetua.errors import PerpetuaError
from perpetua.incidents.errors import (
    IncidentConflict,
    IncidentInputInvalid,
    IncidentNotFound,
    IncidentsForManagers,
    StaffOnly,
)

MANAGER_ROLES = ("owner", "manager")


def require_manager(claims: Claims) -> None:
    """A signed-in owner or manager acting in a practice (not a token or agent)."""
    if (
        claims.actor_kind != "user"
        or claims.practice_id is None
        or claims.practice_role not in MANAGER_ROLES
    ):
        raise IncidentsForManagers()


def require_staff(claims: Claims) -> None:
    if claims.actor_kind != "staff":
        raise StaffOnly()


@contextlib.contextmanager
def refusals(
    not_found: type[PerpetuaError] = IncidentNotFound,
    conflict: type[PerpetuaError] = IncidentConflict,
) -> Iterator[None]:
    """Map the SQLSTATEs the incident functions raise (PI404, PI409, PI422). The
    database's messages are fixed sentences that never quote a value."""
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate == "PI404":
            raise not_found() from exc
        if exc.sqlstate == "PI409":
            raise conflict() from exc
        if exc.sqlstate == "PI422":
            message = exc.diag.message_primary or None
            raise IncidentInputInvalid(message) from exc
        raise
