"""The audit page's witnessing panel: which signed checkpoint last left Perpetua,
where to and when (owners and managers).

`audit_witness_section(request, principal)` renders `_audit_witness.html` for the
`/audit` page; it is empty for roles that may not see the audit log, so the page
can include it unconditionally. The database decides who may read it
(`audit_api.witnessed`).
"""

from __future__ import annotations

from fastapi import Request
from markupsafe import Markup

from perpetua.audit.witness import EMAIL, OBJECT_STORE, last_witnessed
from perpetua.identity.sessions import Principal
from perpetua.web.claims import request_claims
from perpetua.web.context import services

_ROLES = ("owner", "manager")

_CHANNEL_NAMES = {
    EMAIL: "Emailed to the owners",
    OBJECT_STORE: "Stored under Object Lock",
}


async def audit_witness_section(request: Request, principal: Principal) -> Markup:
    """The rendered witnessing panel, or nothing for other roles."""
    if principal.practice_id is None or principal.role not in _ROLES:
        return Markup("")
    svc = services(request)
    found = await last_witnessed(svc.db, request_claims(request, principal))
    template = request.app.state.templates.get_template("_audit_witness.html")
    # The template environment autoescapes every value it renders.
    return Markup(  # noqa: S704
        template.render(
            witnessed=found,
            channel_names=_CHANNEL_NAMES,
            store_configured=bool(svc.settings.witness_store_url),
        )
    )
